"""Provider metadata: how Airflow learns that dicom-ops brings the ``dicom`` connection type.

``pyproject.toml`` registers ``get_provider_info`` under the ``apache_airflow_provider``
entry point; Airflow's ProvidersManager calls it in every component (API server,
scheduler, CLI) and, from ``connection-types``, offers "DICOM node (C-STORE
destination)" in the UI's connection form, with its fields labelled for a DICOM node.

This module is the one place that metadata is written down: the hook takes its
``conn_type``, ``hook_name`` and field behaviour from here. It imports nothing heavy,
because Airflow reads it without importing the hook.
"""

from __future__ import annotations

from typing import Any

PACKAGE_NAME = "dicom-ops"  # must equal the distribution name, or Airflow refuses the provider

DICOM_NODE_CONN_TYPE = "dicom"
DICOM_NODE_HOOK_NAME = "DICOM node (C-STORE destination, PACS)"
DICOM_NODE_HOOK_CLASS = "dicom_ops.airflow.hooks.dicom_node.DicomNodeHook"

# As a hook's get_ui_field_behaviour() returns it. The called AE title lives in the
# connection's schema field (``dicom://10.1.2.3:104/ECLIPSE_STORE``); DICOM has no login
# or password, so the form hides them.
DICOM_NODE_UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden_fields": ["login", "password"],
    "relabeling": {"schema": "Called AE title"},
    "placeholders": {"host": "10.1.2.3", "port": "104", "schema": "ECLIPSE_STORE",
                     "extra": '{"tls_ca_file": "/etc/dicom-ops/pacs-ca.pem"}'},
}

# A DICOMweb service (STOW-RS destination, QIDO-RS/WADO-RS PACS): host, port, schema =
# URL scheme, extra ``path`` = the service's path prefix; login + password for HTTP basic
# auth, or the password alone as a bearer token.
DICOMWEB_CONN_TYPE = "dicomweb"
DICOMWEB_HOOK_NAME = "DICOMweb service (STOW-RS destination, PACS)"
DICOMWEB_HOOK_CLASS = "dicom_ops.airflow.hooks.dicomweb.DicomWebHook"
DICOMWEB_UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden_fields": [],
    "relabeling": {"schema": "Scheme (http or https)",
                   "password": "Password, or bearer token without login"},
    "placeholders": {"host": "pacs.example.org", "port": "8042", "schema": "https",
                     "extra": '{"path": "/dicom-web", "verify": true}'},
}


def get_provider_info() -> dict[str, Any]:
    """Provider metadata in the shape of Airflow's ``provider_info.schema.json``."""
    return {
        "package-name": PACKAGE_NAME,
        "name": "DICOM ops",
        "description": "DICOM autosegmentation pipelines: DICOM node connections, DRAW "
                       "server hooks, operators and triggers.",
        "connection-types": [
            {
                "connection-type": DICOM_NODE_CONN_TYPE,
                "hook-class-name": DICOM_NODE_HOOK_CLASS,
                "hook-name": DICOM_NODE_HOOK_NAME,
                "ui-field-behaviour": _as_provider_yaml(DICOM_NODE_UI_FIELD_BEHAVIOUR),
            },
            {
                "connection-type": DICOMWEB_CONN_TYPE,
                "hook-class-name": DICOMWEB_HOOK_CLASS,
                "hook-name": DICOMWEB_HOOK_NAME,
                "ui-field-behaviour": _as_provider_yaml(DICOMWEB_UI_FIELD_BEHAVIOUR),
            },
        ],
    }


def _as_provider_yaml(behaviour: dict[str, Any]) -> dict[str, Any]:
    """Provider metadata spells the hook's keys in kebab case (``hidden-fields``)."""
    return {key.replace("_", "-"): value for key, value in behaviour.items()}
