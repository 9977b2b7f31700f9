"""`dicom-ops series list`: what an operator sees of the series intake knows."""

from __future__ import annotations

import json
import subprocess
import sys

from dicom_ops.db.models import Series, utcnow
from dicom_ops.db.session import session_scope


def _series_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dicom_ops.cli", "series", "list", *args],
                          env=env, capture_output=True, text=True, timeout=60)


def _add(db_url: str) -> None:
    with session_scope(db_url) as session:
        session.add_all([
            Series(study_uid="1.2.3", series_uid="1.2.3.4", modality="CT",
                   description="Thorax 2.5mm", instance_count=50, folder="/data/1.2.3/1.2.3.4",
                   origin_folder="/data/1.2.3/1.2.3.4", source="scp", calling_aet="CT1",
                   state="ready", ready_at=utcnow()),
            Series(study_uid="1.2.3", series_uid="1.2.3.5", modality="CT", instance_count=7,
                   folder="/data/1.2.3/1.2.3.5.tmp-1", source="scp", state="receiving",
                   state_detail="sent again while done"),
        ])


def test_series_list_shows_one_row_per_series_with_its_state(settings, cli_env):
    _add(settings.db_url)

    result = _series_cli(cli_env)

    assert result.returncode == 0, result.stderr
    header, first, second = result.stdout.splitlines()
    assert header.split()[:5] == ["ID", "STATE", "SOURCE", "MOD", "N"]
    assert first.split()[:7] == ["1", "ready", "scp", "CT", "50", "1.2.3", "1.2.3.4"]
    assert "Thorax 2.5mm" in first and first.endswith("/data/1.2.3/1.2.3.4")
    assert second.split()[:2] == ["2", "receiving"]
    assert "(sent again while done)" in second


def test_series_list_json_and_state_filter(settings, cli_env):
    _add(settings.db_url)

    rows = json.loads(_series_cli(cli_env, "--json", "--state", "receiving").stdout)

    assert [r["series_uid"] for r in rows] == ["1.2.3.5"]
    assert {"id", "study_uid", "series_uid", "modality", "description", "instances", "folder",
            "source", "state"} <= rows[0].keys()
    assert (rows[0]["instances"], rows[0]["folder"]) == (7, "/data/1.2.3/1.2.3.5.tmp-1")


def test_series_list_on_an_empty_db_says_so(cli_env):
    assert _series_cli(cli_env).stdout.strip() == "no series"
