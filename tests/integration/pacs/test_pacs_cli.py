"""`dicom-ops pacs echo|query|history` as a user runs them, against Orthanc as the PACS,
with the connection from AIRFLOW_CONN_<ID> (no Airflow import in the command)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.pacs import PACS_PASSWORD, PACS_USER
from tests.support.postgres import free_port


def dicom_ops(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dicom_ops.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def _env(cli_env, pacs_orthanc, **extra) -> dict[str, str]:
    env = dict(cli_env)
    env["DICOM_OPS_PACS_CONN"] = "pacs"
    env["DICOM_OPS_LISTENER_PORT"] = str(free_port())  # nothing listens there
    env["AIRFLOW_CONN_PACS"] = json.dumps({"conn_type": "dicom", "host": "127.0.0.1",
                                           "port": pacs_orthanc.dicom_port,
                                           "schema": "ORTHANC", "extra": extra})
    env["AIRFLOW_CONN_PACS_WEB"] = (f"dicomweb://{PACS_USER}:{PACS_PASSWORD}@127.0.0.1:"
                                    f"{pacs_orthanc.http_port}/http?path=/dicom-web")
    return env


def test_dry_run_prints_each_series_with_its_decision_and_retrieves_nothing(
        cli_env, pacs_orthanc, department):
    env = _env(cli_env, pacs_orthanc, retrieve="get")

    result = dicom_ops(env, "pacs", "query", "--dry-run", "--from", "2026-11-24", "--to",
                       "2026-12-02", "--station-exclude", "diag",
                       "--series-description-exclude", "topogram")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("PACS pacs (ORTHANC@127.0.0.1:")
    assert "[dry run: nothing retrieved]" in lines[0]
    assert lines[1].split() == ["DECISION", "STUDY", "DATE", "MOD", "STATION", "STUDY",
                                "SERIES", "N", "WHY"]
    rows = {line.split()[0] + " " + line.split()[3] for line in lines[2:6]}
    assert rows == {"retrieve CTSIM01", "filtered CTSIM01", "retrieve CTSIM02",
                    "filtered CTDIAG1"}
    assert lines[-1] == "3 studies, 4 series: 2 retrieve, 2 filtered"
    history = dicom_ops(env, "pacs", "history")
    assert history.stdout.strip() == "no PACS queries yet"


def test_query_retrieves_and_history_shows_the_counts(cli_env, pacs_orthanc, department):
    env = _env(cli_env, pacs_orthanc, retrieve="get")

    result = dicom_ops(env, "pacs", "query", "--days-back", "3650", "--series-description-"
                       "exclude", "topogram,abd")

    assert result.returncode == 0, result.stderr
    history = dicom_ops(env, "pacs", "history", "--json")
    [query] = json.loads(history.stdout)
    assert (query["status"], query["requested"], query["received_instances"]) == ("done", 2, 8)
    assert query["filters"]["series_description_exclude"] == ["topogram", "abd"]


def test_echo_names_our_listener_when_it_does_not_answer(cli_env, pacs_orthanc):
    result = dicom_ops(_env(cli_env, pacs_orthanc), "pacs", "echo")

    assert result.returncode == 1
    assert "our listener DRAWCLIENT@127.0.0.1:" in result.stderr
    assert "is `dicom-ops listener` running?" in result.stderr


def test_echo_of_a_dicomweb_pacs_from_a_uri_connection(cli_env, pacs_orthanc):
    result = dicom_ops(_env(cli_env, pacs_orthanc), "pacs", "echo", "--pacs", "pacs_web")

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("PACS pacs_web (DICOMweb pacs_web): echo OK")


def test_no_pacs_configured_is_said_plainly(cli_env):
    result = dicom_ops(cli_env, "pacs", "query", "--dry-run")

    assert result.returncode == 1
    assert "no PACS configured: set DICOM_OPS_PACS_CONN" in result.stderr
