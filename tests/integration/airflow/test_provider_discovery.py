"""Airflow itself finds the `dicom` connection type through our provider entry point, and
its UI's connection form gets the DICOM node's fields.

The venv's installed dicom-ops may predate the entry point (it is re-installed after a
merge), so the test gives Airflow, in a fresh process, a distribution's metadata made
from pyproject.toml, with the package's own source ahead of any installed copy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

from dicom_ops.config import REPO_ROOT

ASK_THE_UI = """
import json
from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
found = {m.connection_type: m.model_dump() for m in HookMetaService.hook_meta_data()
         if m.connection_type in ("dicom", "dicomweb")}
print(json.dumps(found))
"""


def _distribution_from_pyproject(site: Path) -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\n"
                                   f"Version: {project['version']}\n")
    lines = [f"[{group}]\n" + "".join(f"{name} = {target}\n" for name, target in points.items())
             for group, points in project["entry-points"].items()]
    (info / "entry_points.txt").write_text("\n".join(lines))


def test_the_connection_form_offers_a_dicom_node_with_its_own_fields(tmp_path):
    site = tmp_path / "site"
    _distribution_from_pyproject(site)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(REPO_ROOT / "plugins")]))

    result = subprocess.run([sys.executable, "-c", ASK_THE_UI], env=env, capture_output=True,
                            text=True, timeout=120)

    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    dicom = found["dicom"]
    assert dicom["hook_class_name"] == "dicom_ops.airflow.hooks.dicom_node.DicomNodeHook"
    assert dicom["hook_name"] == "DICOM node (C-STORE destination, PACS)"
    fields = dicom["standard_fields"]
    assert fields["url_schema"]["title"] == "Called AE title"
    assert fields["login"]["hidden"] and fields["password"]["hidden"]
    assert not fields["host"]["hidden"] and not fields["port"]["hidden"]
    # DICOMweb services (STOW-RS destinations, QIDO-RS/WADO-RS PACSes) have their own type
    web = found["dicomweb"]
    assert web["hook_class_name"] == "dicom_ops.airflow.hooks.dicomweb.DicomWebHook"
    assert web["standard_fields"]["url_schema"]["title"] == "Scheme (http or https)"
    assert web["standard_fields"]["password"]["title"] == "Password, or bearer token without login"
