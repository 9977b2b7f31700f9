"""The DAG folder imports cleanly and each pipeline is wired as documented."""

from datetime import timedelta

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.definitions.taskgroup import MappedTaskGroup
from dicom_ops.config import REPO_ROOT


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(REPO_ROOT / "dags"))


def test_dag_folder_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert {"draw_export", "draw_import", "draw_queue", "draw_cleanup", "pacs_query"} <= \
        set(dagbag.dag_ids)


def test_export_runs_on_ready_series_and_every_ten_minutes(dagbag):
    dag = dagbag.dags["draw_export"]
    timetable = dag.timetable
    assert "series_ready" in str(dag.timetable.asset_condition)
    assert timetable.timetable.delta == timedelta(minutes=10)
    assert [t.task_id for t in dag.topological_sort()] == [
        "plan_jobs", "claim_jobs", "job.deidentify_and_pack", "job.upload_to_draw"]


def test_each_export_job_is_its_own_mapped_group_so_jobs_never_share_a_task(dagbag):
    dag = dagbag.dags["draw_export"]
    group = dag.task_group_dict["job"]
    assert isinstance(group, MappedTaskGroup)
    # inside a mapped group the upload waits for the packing of its own map index only
    # (and for claim_jobs, which gives it its job id), never for the whole mapped set
    upload = dag.get_task("job.upload_to_draw")
    assert upload.upstream_task_ids == {"claim_jobs", "job.deidentify_and_pack"}
    assert upload.task_group is group


def test_uploads_share_the_draw_upload_pool_and_retry_with_backoff(dagbag):
    upload = dagbag.dags["draw_export"].get_task("job.upload_to_draw")
    assert upload.pool == "draw_upload"
    assert upload.retries >= 3 and upload.retry_exponential_backoff


def test_import_runs_on_draw_results_and_every_fifteen_minutes(dagbag):
    dag = dagbag.dags["draw_import"]
    assert "draw_results" in str(dag.timetable.asset_condition)
    assert dag.timetable.timetable.delta == timedelta(minutes=15)
    assert [t.task_id for t in dag.topological_sort()] == ["poll_draw", "fetch_and_deliver"]
