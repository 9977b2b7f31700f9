"""`dicom-ops jobs` and `dicom-ops templates` as an operator runs them: real subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from dicom_ops.db.models import Transfer
from dicom_ops.db.session import session_scope

from tests.factories import SeriesGeometry, make_ct_series, write_non_dicom, write_series
from tests.support.jobs import add_series

# The installed console script, as operators run it.
DICOM_OPS = str(Path(sys.executable).parent / "dicom-ops")


def dicom_ops(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([DICOM_OPS, *args], env=env, capture_output=True, text=True,
                          timeout=60)


def refused(result: subprocess.CompletedProcess, *expected: str) -> str:
    """The one-line error of a refused command (exit 1, no traceback)."""
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for text in expected:
        assert text in lines[0]
    return lines[0]


@pytest.fixture
def thorax(settings, tmp_path) -> dict[str, str]:
    """A ready thorax series of 6 images, on disk and in the app DB."""
    datasets = make_ct_series(geometry=SeriesGeometry(slices=6, rows=8, columns=8))
    folder = tmp_path / "thorax"
    write_series(datasets, folder)
    uid = str(datasets[0].SeriesInstanceUID)
    with session_scope(settings.db_url) as session:
        add_series(session, study_uid=str(datasets[0].StudyInstanceUID), series_uid=uid,
                   folder=str(folder))
    return {"uid": uid, "file": str(next(folder.iterdir()))}


def create(cli_env, *args: str) -> dict:
    result = dicom_ops(cli_env, "jobs", "create", *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_create_prints_the_new_job_and_refuses_a_duplicate_unless_forced(cli_env, thorax):
    # when a job is created for the thorax series (template name in any case)
    job = create(cli_env, "--series", thorax["uid"], "--template", "thorax oars")
    # then it is queued with the template's real name and an auto range
    assert (job["status"], job["template"], job["priority"]) == ("in_queue", "Thorax OARs", 0)
    assert [(s["series_uid"], s["range"]) for s in job["series"]] == [(thorax["uid"], "auto")]
    # and the same request again is a duplicate, until forced
    again = dicom_ops(cli_env, "jobs", "create", "--series", thorax["uid"],
                      "--template", "Thorax OARs")
    refused(again, "duplicate", f"job {job['id']}", "--force")
    forced = create(cli_env, "--series", thorax["uid"], "--template", "Thorax OARs", "--force",
                    "--priority", "7")
    assert (forced["forced"], forced["priority"]) == (True, 7)


def test_create_with_ranges_checks_the_rules_and_the_series(cli_env, thorax):
    job = create(cli_env, "--series", f"{thorax['uid']}:6:1:-1", "--template", "Thorax OARs")
    assert job["series"][0]["range"] == "6:1:-1"
    refused(dicom_ops(cli_env, "jobs", "create", "--series", f"{thorax['uid']}:1:6:0",
                      "--template", "Thorax OARs"), "delta must be a non-zero integer")
    refused(dicom_ops(cli_env, "jobs", "create", "--series", f"{thorax['uid']}:1:9:1",
                      "--template", "Thorax OARs"),
            "instance number(s) 7-9 are not images of this series (it has 1-6")


def test_create_refuses_unknown_templates_and_series(cli_env, thorax):
    refused(dicom_ops(cli_env, "jobs", "create", "--series", thorax["uid"],
                      "--template", "Brain"),
            "no template named 'Brain'", "known: Head and neck OARs, Pelvis OARs, Thorax OARs")
    refused(dicom_ops(cli_env, "jobs", "create", "--series", "1.2.3.999",
                      "--template", "Thorax OARs"), "no series with UID 1.2.3.999")


def test_list_show_cancel_invalidate_and_resend(cli_env, settings, thorax):
    job = create(cli_env, "--series", thorax["uid"], "--template", "Thorax OARs")
    job_id = str(job["id"])
    with session_scope(settings.db_url) as session:
        session.add(Transfer(job_id=job["id"], status="sent", server_task_id="task-42"))

    listed = dicom_ops(cli_env, "jobs", "list")
    assert listed.returncode == 0 and "in_queue" in listed.stdout and "Thorax OARs" in listed.stdout
    queued = json.loads(dicom_ops(cli_env, "jobs", "list", "--status", "in_queue", "--json").stdout)
    assert [j["id"] for j in queued] == [job["id"]]

    shown = json.loads(dicom_ops(cli_env, "jobs", "show", job_id, "--json").stdout)
    assert shown["transfer"]["server_task_id"] == "task-42"
    assert [e["kind"] for e in shown["events"]] == ["created"]
    text = dicom_ops(cli_env, "jobs", "show", job_id).stdout
    assert "task-42" in text and thorax["uid"] in text and "created" in text

    refused(dicom_ops(cli_env, "jobs", "invalidate", job_id),
            f"job {job_id} is in_queue: cannot invalidate it")
    cancelled = dicom_ops(cli_env, "jobs", "cancel", job_id)
    assert cancelled.returncode == 0 and f"job {job_id} cancelled" in cancelled.stdout
    refused(dicom_ops(cli_env, "jobs", "cancel", job_id), f"job {job_id} is cancelled")
    assert json.loads(dicom_ops(cli_env, "jobs", "list", "--status", "in_queue", "--json")
                      .stdout) == []

    resent = dicom_ops(cli_env, "jobs", "resend", job_id)
    assert resent.returncode == 0 and f"(resend of job {job_id})" in resent.stdout
    newest = json.loads(dicom_ops(cli_env, "jobs", "list", "--json").stdout)[0]
    assert (newest["resend_of"], newest["forced"], newest["status"]) == (job["id"], True,
                                                                        "in_queue")
    refused(dicom_ops(cli_env, "jobs", "show", "999"), "no job 999")


def test_an_unmigrated_app_db_is_one_clear_line(cli_env, data_root):
    env = dict(cli_env, DICOM_OPS_DB_URL=f"sqlite:///{data_root / 'empty.sqlite'}")
    refused(dicom_ops(env, "jobs", "list"), "dicom-ops db upgrade")


def test_templates_list_and_test(cli_env, thorax):
    listed = json.loads(dicom_ops(cli_env, "templates", "list", "--json").stdout)
    assert {t["name"] for t in listed} >= {"Thorax OARs", "Head and neck OARs"}
    thorax_template = next(t for t in listed if t["name"] == "Thorax OARs")
    assert thorax_template["rules"]["all"][0] == {"tag": "Modality", "op": "eq", "value": "CT"}

    tested = dicom_ops(cli_env, "templates", "test", thorax["file"])
    assert tested.returncode == 0, tested.stderr
    lines = tested.stdout.splitlines()
    assert lines[0] == "winner: Thorax OARs (thorax.yml, priority 10)"
    assert "- Head and neck OARs (head_neck.yml, priority 10): failed" in lines
    assert "    rules.all[1].any[0]: BodyPartExamined in [HEAD, NECK, HEADNECK]  (found: CHEST)" \
        in lines


def test_templates_test_refuses_a_file_that_is_not_dicom(cli_env, tmp_path):
    path = write_non_dicom(tmp_path / "notes.dcm")
    refused(dicom_ops(cli_env, "templates", "test", str(path)), "not a readable DICOM file")


def test_a_broken_template_is_named_by_every_templates_command(cli_env, tmp_path: Path):
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "bad.yml").write_text("name: Bad\nprotocol: X\nmodels: {}\nrules: {tag: Modality, "
                                    "op: equals, value: CT}\n")
    env = dict(cli_env, DICOM_OPS_TEMPLATES_DIR=str(folder))
    line = refused(dicom_ops(env, "templates", "list"), "bad.yml: rules.op: unknown operator")
    assert "bad.yml: models: expected a mapping of model id -> model" in line
