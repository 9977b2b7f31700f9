"""`dag.test()` of the generated service DAGs (dags/services.py) on ready series in a
real app DB: run order, callbacks, timeouts, isolation, and broken definitions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dicom_ops.config import get_settings
from dicom_ops.db.models import ServiceRun
from dicom_ops.db.session import session_scope
from sqlalchemy import select

from tests.support.pipeline import ready_series_on_disk
from tests.support.services import load_service_dags, trace, write_service


@pytest.fixture
def services_dir(dag_settings_env, tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "services"
    folder.mkdir()
    monkeypatch.setenv("DICOM_OPS_SERVICES_DIR", str(folder))
    get_settings.cache_clear()
    return folder


def runs_by_job(db_url: str) -> dict[tuple[int, str], ServiceRun]:
    with session_scope(db_url) as session:
        return {(run.item_id, run.job_name): run for run in session.scalars(select(ServiceRun))}


def task_states(run) -> dict[tuple[str, int], str]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        return {(ti.task_id, ti.map_index): str(ti.state) for ti in session.query(TaskInstance)
                .filter(TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id)}


def test_jobs_run_pre_first_then_by_dependency_and_sort_position_then_post(services_dir):
    settings = get_settings()
    write_service(services_dir, "ordered", [
        {"jobName": "finish", "workerEntry": "worker:work", "kind": "post"},
        {"jobName": "second", "workerEntry": "worker:work", "sortPosition": 1},
        {"jobName": "first", "workerEntry": "worker:work", "sortPosition": 2,
         "dependsOn": []},
        {"jobName": "after-second", "workerEntry": "worker:work", "sortPosition": 0,
         "dependsOn": ["second"]},
        {"jobName": "prepare", "workerEntry": "worker:work", "kind": "pre", "sortPosition": 9},
    ])
    ready_series_on_disk(settings, patient_index=1)

    run = load_service_dags()["service_ordered"].test()

    assert run.state == "success"
    assert [entry["job"] for entry in trace(services_dir)] == [
        "prepare", "second", "after-second", "first", "finish"]
    assert all(r.status == "succeeded" for r in runs_by_job(settings.db_url).values())


def as_modality(folder: Path, modality: str) -> None:
    import pydicom

    for path in folder.iterdir():
        ds = pydicom.dcmread(path)
        ds.Modality = modality
        ds.save_as(path)


def test_a_registry_callback_skips_an_item_visibly_and_adds_params_to_another(services_dir):
    settings = get_settings()
    write_service(services_dir, "ct-only", [
        {"jobName": "measure", "workerEntry": "worker:work", "registryEntry": "worker:only_ct",
         "params": {"defined": 1}},
        {"jobName": "summarise", "workerEntry": "worker:work", "dependsOn": ["measure"]},
    ])
    ct = ready_series_on_disk(settings, patient_index=2)
    mr = ready_series_on_disk(settings, patient_index=3)
    as_modality(mr.folder, "MR")

    run = load_service_dags()["service_ct-only"].test()

    assert run.state == "success"
    runs = runs_by_job(settings.db_url)
    ct_item, mr_item = sorted({item for item, _ in runs})
    measured = runs[(ct_item, "measure")]
    assert measured.status == "succeeded"
    assert json.loads(measured.result)["params"] == {"defined": 1, "from_callback": "yes"}
    assert runs[(mr_item, "measure")].status == "skipped"
    assert "not a CT" in runs[(mr_item, "measure")].reason
    assert runs[(mr_item, "summarise")].status == "skipped"
    assert "dependency 'measure' was skipped" in runs[(mr_item, "summarise")].reason
    states = task_states(run)
    assert sorted(state for (task, _), state in states.items() if task == "series_ready.measure"
                  ) == ["skipped", "success"]
    assert [e["item"] for e in trace(services_dir)] == [ct_item, ct_item]
    assert ct.series_id != mr.series_id


def test_one_failing_job_fails_alone_and_other_jobs_and_items_still_run(services_dir):
    settings = get_settings()
    write_service(services_dir, "mixed", [
        {"jobName": "breaks", "workerEntry": "worker:work", "params": {"fail": True}},
        {"jobName": "needs-breaks", "workerEntry": "worker:work", "dependsOn": ["breaks"]},
        {"jobName": "independent", "workerEntry": "worker:work", "sortPosition": 5},
    ])
    ready_series_on_disk(settings, patient_index=4)
    ready_series_on_disk(settings, patient_index=5)

    run = load_service_dags()["service_mixed"].test()

    assert run.state == "failed"  # red in the UI, with the failing task named
    runs = runs_by_job(settings.db_url)
    items = sorted({item for item, _ in runs})
    assert len(items) == 2
    for item in items:
        assert runs[(item, "breaks")].status == "failed"
        assert "RuntimeError: this job was told to fail" in runs[(item, "breaks")].reason
        assert runs[(item, "needs-breaks")].status == "skipped"
        assert runs[(item, "independent")].status == "succeeded"
    states = task_states(run)
    assert sorted(s for (t, _), s in states.items() if t == "series_ready.independent") == [
        "success", "success"]


def test_a_job_over_its_timeout_fails_as_timed_out_and_the_next_job_runs(services_dir):
    settings = get_settings()
    write_service(services_dir, "slow", [
        {"jobName": "sleepy", "workerEntry": "worker:work", "timeout": 1,
         "params": {"sleep": 30}, "priority": 7},
        {"jobName": "after", "workerEntry": "worker:work", "sortPosition": 1},
    ])
    ready_series_on_disk(settings, patient_index=6)
    dag = load_service_dags()["service_slow"]
    sleepy = dag.get_task("series_ready.sleepy")
    assert sleepy.execution_timeout.total_seconds() == 1 and sleepy.priority_weight == 7

    run = dag.test()

    runs = runs_by_job(settings.db_url)
    (item,) = {item for item, _ in runs}
    assert runs[(item, "sleepy")].status == "failed"
    assert runs[(item, "sleepy")].reason == "timed out after 1 s (the job's timeout)"
    assert runs[(item, "after")].status == "succeeded"
    assert run.state == "failed"


def test_a_broken_definition_is_its_own_dags_failed_task_and_others_still_load(services_dir):
    settings = get_settings()
    write_service(services_dir, "good", [{"jobName": "ok", "workerEntry": "worker:work"}])
    write_service(services_dir, "bad-json", '[{"jobName": "x", "workerEntry": "worker:work",]')
    write_service(services_dir, "cyclic", [
        {"jobName": "a", "workerEntry": "worker:work", "dependsOn": ["b"]},
        {"jobName": "b", "workerEntry": "worker:work", "dependsOn": "a"},
    ])
    write_service(services_dir, "bad name", [{"jobName": "ok", "workerEntry": "worker:work"}])
    ready_series_on_disk(settings, patient_index=7)

    dags = load_service_dags()

    assert {"service_good", "service_bad-json", "service_cyclic", "service_bad_name"} <= set(dags)
    assert "the folder name is the service name" in dags["service_bad_name"].description
    broken = dags["service_bad-json"]
    assert "bad-json/dcm-processor.json: invalid JSON at line 1" in broken.description
    assert "dependsOn: a cycle: a -> b -> a" in dags["service_cyclic"].doc_md
    failed = broken.test()
    assert failed.state == "failed"
    assert task_states(failed) == {("definition_error", -1): "failed"}
    assert dags["service_good"].test().state == "success"


def test_a_service_on_two_events_runs_per_series_and_per_study_on_either_asset(services_dir):
    settings = get_settings()
    write_service(services_dir, "two-events", [
        {"jobName": "check", "workerEntry": "worker:work", "kind": "pre",
         "events": ["series_ready", "study_ready"]},
        {"jobName": "per-series", "workerEntry": "worker:work"},
        {"jobName": "per-study", "workerEntry": "worker:work", "events": "study_ready"},
    ])
    ready_series_on_disk(settings, patient_index=8, series_number=1)
    ready_series_on_disk(settings, patient_index=8, series_number=2)
    dag = load_service_dags()["service_two-events"]
    assert {asset.name for asset in dag.timetable.asset_condition.objects} == {
        "series_ready", "study_ready"}

    run = dag.test()

    assert run.state == "success"
    jobs = sorted((entry["job"], entry["item"]) for entry in trace(services_dir))
    assert [job for job, _ in jobs] == ["check", "check", "check", "per-series", "per-series",
                                        "per-study"]


def test_a_failed_pre_service_skips_the_jobs_after_it_saying_why(services_dir):
    settings = get_settings()
    write_service(services_dir, "guarded", [
        {"jobName": "guard", "workerEntry": "worker:work", "kind": "pre", "params": {"fail": 1}},
        {"jobName": "main", "workerEntry": "worker:work"},
        {"jobName": "tidy", "workerEntry": "worker:work", "kind": "post"},
    ])
    ready_series_on_disk(settings, patient_index=9)

    run = load_service_dags()["service_guarded"].test()

    assert run.state == "failed"
    runs = runs_by_job(settings.db_url)
    (item,) = {item for item, _ in runs}
    assert runs[(item, "main")].reason == "pre-service 'guard' failed for this item"
    assert runs[(item, "tidy")].status == "skipped"
    assert task_states(run)[("summary_series_ready", -1)] == "failed"


def test_a_service_runs_at_most_the_configured_number_of_tasks_at_once(services_dir,
                                                                        monkeypatch):
    # a burst of ready series gives one item each: the scheduler runs only this many of
    # the service's tasks at a time, leaving the CPU to the same patients' export
    write_service(services_dir, "measure", [{"jobName": "measure", "workerEntry": "worker:work"}])
    default = load_service_dags()["service_measure"]
    monkeypatch.setenv("DICOM_OPS_SERVICES_MAX_ACTIVE_TASKS", "5")
    get_settings.cache_clear()
    configured = load_service_dags()["service_measure"]
    assert (default.max_active_tasks, configured.max_active_tasks) == (2, 5)
