"""`dicom-ops services list|check|run|runs` as a user runs them (subprocesses), on
ready series in a real app DB; and a service delivering a DICOM object it made."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pydicom
from dicom_ops.db.models import ServiceRun
from dicom_ops.db.session import session_scope
from dicom_ops.uids import new_uid
from sqlalchemy import select

from tests.support.pipeline import ready_series_on_disk
from tests.support.postgres import free_port
from tests.support.services import EXAMPLES, copy_example, start_storescp, write_service

DELIVERING_WORKER = '''
from pydicom import dcmread


def make_and_deliver(ctx):
    first = sorted(p for p in ctx.folder.iterdir() if p.is_file())[0]
    ds = dcmread(first)
    ds.SOPInstanceUID = ctx.params["new_uid"]
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SeriesDescription = "made by a service"
    out = ctx.output_folder / "derived.dcm"
    ds.save_as(out)
    where = ctx.deliver(out, destinations=ctx.params["destinations"])
    return {"delivered_as": where.name}
'''


def dicom_ops(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dicom_ops.cli", "services", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_list_shows_jobs_in_run_order_and_a_broken_service_with_its_problems(cli_env, tmp_path):
    services = tmp_path / "services"
    write_service(services, "chain", [
        {"jobName": "last", "workerEntry": "worker:work", "kind": "post"},
        {"jobName": "first", "workerEntry": "worker:work", "kind": "pre"},
        {"jobName": "middle", "workerEntry": "worker:work", "events": ["study_ready"]},
    ])
    write_service(services, "broken", [{"jobName": "x", "workerEntry": "worker:work",
                                        "events": ["whenever"]}])
    env = {**cli_env, "DICOM_OPS_SERVICES_DIR": str(services)}

    shown = dicom_ops(env, "list")
    as_json = json.loads(dicom_ops(env, "list", "--json").stdout)

    assert shown.returncode == 0
    assert "broken  DAG service_broken  BROKEN" in shown.stdout
    assert "broken/dcm-processor.json: job 'x' (jobs[0]): events.0: Input should be" in shown.stdout
    assert "chain  DAG service_chain  on series_ready, study_ready" in shown.stdout
    chain = next(s for s in as_json if s["name"] == "chain")
    assert [job["jobName"] for job in chain["jobs"]] == ["first", "middle", "last"]


def test_check_accepts_the_examples_and_refuses_a_broken_folder(cli_env, tmp_path):
    broken = write_service(tmp_path, "svc", [{"jobName": "a", "workerEntry": "worker:nope"}])

    good = dicom_ops(cli_env, "check", str(EXAMPLES / "series-report"))
    bad = dicom_ops(cli_env, "check", str(broken))

    assert good.returncode == 0 and "ok: the definition is valid" in good.stdout
    assert bad.returncode == 1
    assert "svc/dcm-processor.json: job 'a': workerEntry: module 'worker' has no function " \
           "'nope'" in bad.stdout


def test_run_reports_each_job_and_runs_records_it_without_patient_data(cli_env, settings,
                                                                      tmp_path):
    services = tmp_path / "services"
    copy_example(services, "series-report")
    env = {**cli_env, "DICOM_OPS_SERVICES_DIR": str(services)}
    ready = ready_series_on_disk(settings, patient_index=20)
    uid = ready.datasets[0].SeriesInstanceUID

    ran = dicom_ops(env, "run", "series-report", "--series", uid)
    again = dicom_ops(env, "run", "series-report", "--series", uid, "--json")
    runs = dicom_ops(env, "runs", "--json")
    unknown = dicom_ops(env, "run", "series-report", "--series", "1.2.3.999")

    assert ran.returncode == 0, ran.stderr
    assert "report: succeeded" in ran.stdout and '"slices": 6' in ran.stdout
    assert json.loads(again.stdout)["jobs"][0]["status"] == "succeeded"
    records = json.loads(runs.stdout)
    assert [r["status"] for r in records] == ["succeeded", "succeeded"]
    assert records[0]["result"]["slices"] == 6
    assert ready.datasets[0].PatientID not in runs.stdout
    assert unknown.returncode == 1 and "no series with that Series Instance UID" in unknown.stderr


def test_a_service_output_is_delivered_into_the_origin_folder_and_by_c_store(settings,
                                                                           tmp_path):
    from dicom_ops.services import load_service
    from dicom_ops.services.events import claim_item, item_now
    from dicom_ops.services.nodes import node_from_environment
    from dicom_ops.services.runner import run_item

    folder = write_service(tmp_path / "services", "derive", [
        {"jobName": "derive", "workerEntry": "worker:make_and_deliver",
         "params": {"new_uid": (uid := new_uid()), "destinations": ["archive"]}}],
        {"worker": DELIVERING_WORKER})
    ready = ready_series_on_disk(settings, patient_index=21)
    with session_scope(settings.db_url) as session:
        item = claim_item(session, "derive", item_now(
            session, "series_ready", series_uid=ready.datasets[0].SeriesInstanceUID))
    port = free_port()
    env = {"AIRFLOW_CONN_ARCHIVE": f"dicom://127.0.0.1:{port}/ARCHIVE"}
    archive = start_storescp(tmp_path / "archive", port)
    try:
        (name, outcome), = run_item(settings, load_service(folder), item, "series_ready",
                                    nodes=lambda conn_id: node_from_environment(conn_id, env))
    finally:
        archive.terminate()
        archive.wait(timeout=30)

    assert (name, str(outcome.status)) == ("derive", "succeeded"), outcome.reason
    delivered = Path(ready.folder) / f"CT.{uid}.dcm"
    assert outcome.result == {"delivered_as": delivered.name}
    assert pydicom.dcmread(delivered).SeriesDescription == "made by a service"
    (stored,) = (tmp_path / "archive").iterdir()
    assert pydicom.dcmread(stored).SOPInstanceUID == uid
    with session_scope(settings.db_url) as session:
        assert session.scalars(select(ServiceRun.status)).all() == ["succeeded"]


def test_run_applies_each_jobs_timeout_and_goes_on_with_the_next_job(cli_env, settings,
                                                                     tmp_path):
    services = tmp_path / "services"
    write_service(services, "slow", [
        {"jobName": "sleepy", "workerEntry": "worker:work", "timeout": 1,
         "params": {"sleep": 30}},
        {"jobName": "after", "workerEntry": "worker:work", "sortPosition": 1}])
    env = {**cli_env, "DICOM_OPS_SERVICES_DIR": str(services)}
    ready = ready_series_on_disk(settings, patient_index=22)

    ran = dicom_ops(env, "run", "slow", "--series", ready.datasets[0].SeriesInstanceUID,
                    "--json")

    assert ran.returncode == 1
    jobs = {job["job"]: job for job in json.loads(ran.stdout)["jobs"]}
    assert jobs["sleepy"]["status"] == "failed"
    assert jobs["sleepy"]["reason"] == "timed out after 1 s (the job's timeout)"
    assert jobs["after"]["status"] == "succeeded"
