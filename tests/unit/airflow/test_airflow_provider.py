"""Provider metadata: Airflow accepts it, it names the DICOM node hook, and the package
registers it under the entry point Airflow reads."""

from __future__ import annotations

import importlib
import json
import tomllib
from pathlib import Path

import airflow
import jsonschema
from dicom_ops.airflow.hooks.dicom_node import DicomNodeHook
from dicom_ops.airflow.provider import get_provider_info
from dicom_ops.config import REPO_ROOT
from packaging.utils import canonicalize_name

AIRFLOW_PACKAGE = Path(airflow.__file__).parent


def _airflow_schema(name: str) -> dict:
    return json.loads((AIRFLOW_PACKAGE / name).read_text())


def _dicom_connection_type() -> dict:
    [entry] = [c for c in get_provider_info()["connection-types"]
               if c["connection-type"] == "dicom"]
    return entry


def test_provider_info_passes_the_schema_airflow_checks_it_with():
    jsonschema.validate(get_provider_info(), _airflow_schema("provider_info.schema.json"))


def test_the_dicom_connection_type_is_served_by_the_dicom_node_hook():
    entry = _dicom_connection_type()

    module_name, _, class_name = entry["hook-class-name"].rpartition(".")
    hook_class = getattr(importlib.import_module(module_name), class_name)

    assert hook_class is DicomNodeHook
    assert (hook_class.conn_type, hook_class.hook_name) == ("dicom", entry["hook-name"])


def test_the_connection_form_labels_the_schema_field_as_the_called_ae_title():
    behaviour = DicomNodeHook.get_ui_field_behaviour()

    jsonschema.validate(behaviour, _airflow_schema("customized_form_field_behaviours.schema.json"))
    assert behaviour["relabeling"] == {"schema": "Called AE title"}
    assert set(behaviour["hidden_fields"]) == {"login", "password"}
    assert {"host", "port"}.isdisjoint(behaviour["hidden_fields"])
    # the provider metadata carries the same behaviour, spelled as Airflow reads it there
    assert _dicom_connection_type()["ui-field-behaviour"] == {
        "hidden-fields": behaviour["hidden_fields"], "relabeling": behaviour["relabeling"],
        "placeholders": behaviour["placeholders"]}


def test_pyproject_registers_get_provider_info_under_airflows_entry_point():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]

    [target] = project["entry-points"]["apache_airflow_provider"].values()
    module_name, _, attribute = target.partition(":")

    assert getattr(importlib.import_module(module_name), attribute) is get_provider_info
    # Airflow refuses a provider whose package-name is not its distribution's name
    assert get_provider_info()["package-name"] == canonicalize_name(project["name"])
