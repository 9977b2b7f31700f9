"""One patient's problem never holds up another's: `dag.test()` runs of draw_export and
draw_import with four healthy jobs next to one that fails at a given stage.

The four are delivered (an RTSTRUCT in their origin folders) after the export run and
the import run; the failing one is `failed` with the stage and reason of its error
class after exactly one try (permanent), or is delivered too after a retry (transient).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from dicom_ops.db.models import Job, JobSeries, Transfer
from dicom_ops.db.session import session_scope
from sqlalchemy import select

from tests.dags.conftest import job_tries, load_dag
from tests.factories import synthetic_patient, with_burned_in_annotation, write_series
from tests.support.pipeline import ReadySeries, ready_series_on_disk

pytestmark = pytest.mark.slow

HEALTHY_PATIENTS = (20, 21, 22, 23)
ODD_PATIENT = 24
QUICK_RETRIES = timedelta(seconds=1)


def duplicate_instance_number(ready: ReadySeries) -> None:
    """Two images with one InstanceNumber inside the automatic range."""
    ready.datasets[2].InstanceNumber = ready.datasets[1].InstanceNumber
    write_series([ready.datasets[2]], ready.folder)


def burned_in_annotation(ready: ReadySeries) -> None:
    write_series([with_burned_in_annotation(ready.datasets[0])], ready.folder)


def identifier_the_recipe_keeps(ready: ReadySeries) -> None:
    """The patient ID planted in ConvolutionKernel, which the recipe keeps: only the
    egress check stands between it and the server."""
    ready.datasets[3].ConvolutionKernel = synthetic_patient(ODD_PATIENT).patient_id
    write_series([ready.datasets[3]], ready.folder)


@dataclass(frozen=True)
class Case:
    """One error class: how the odd job is made to fail, and what the user then sees."""

    spoil_series: Callable[[ReadySeries], None] | None = None
    emulator_faults: dict | None = None  # switched on before the export run
    stage: str | None = None  # the failed job's stage; None: the odd job is delivered too
    reason: str = ""  # a part of the failed job's reason
    failing_task: str | None = None  # the task that fails once, without a retry
    retried_task: str | None = None  # the task that needs a second try (transient)

    @property
    def known_before_the_run(self) -> bool:
        """True when the odd job is made by its data, so it is known before any run;
        server-side faults hit whichever job's upload or task comes first."""
        return self.spoil_series is not None


CASES = {
    "range": Case(spoil_series=duplicate_instance_number, stage="prepare",
                  reason="instance number(s) 2 appear more than once in the series",
                  failing_task="job.deidentify_and_pack"),
    "burned-in": Case(spoil_series=burned_in_annotation, stage="deidentify",
                      reason="burned-in annotation (BurnedInAnnotation = YES); not sent",
                      failing_task="job.deidentify_and_pack"),
    "egress": Case(spoil_series=identifier_the_recipe_keeps, stage="egress check",
                   reason="image 4 of 6: (0018,1210) ConvolutionKernel: patient ID; "
                          "nothing was sent",
                   failing_task="job.deidentify_and_pack"),
    "upload rejected": Case(emulator_faults={"reject_next": 1}, stage="upload",
                            reason="the DRAW server refused the upload",
                            failing_task="job.upload_to_draw"),
    "server FAILED": Case(emulator_faults={"fail_next": 1}, stage="server",
                          reason="the DRAW server failed the task: emulated failure"),
    "invalid RTSTRUCT": Case(emulator_faults={"foreign_uid_next": 1}, stage="validate",
                             reason="RTSTRUCT rejected, kept in quarantine: RTSTRUCT "
                                    "references a frame of reference UID that is not this "
                                    "job's", failing_task="fetch_and_deliver"),
    "transient 5xx": Case(emulator_faults={"error_next": 1},
                          retried_task="job.upload_to_draw"),
}


def jobs_by_series(settings) -> dict[int, int]:
    with session_scope(settings.db_url) as session:
        return dict(session.execute(select(JobSeries.series_id, JobSeries.job_id)).all())


def wait_for_the_server(settings, draw_emulator) -> None:
    with session_scope(settings.db_url) as session:
        task_ids = session.scalars(select(Transfer.server_task_id)
                                   .where(Transfer.server_task_id.is_not(None))).all()
    for task_id in task_ids:
        draw_emulator.wait_for_status(task_id)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_one_failing_job_never_holds_up_four_healthy_ones(pipeline_env, draw_emulator, case):
    settings = pipeline_env
    healthy = [ready_series_on_disk(settings, patient_index=index) for index in HEALTHY_PATIENTS]
    odd = ready_series_on_disk(settings, patient_index=ODD_PATIENT)
    if case.spoil_series:
        case.spoil_series(odd)
    if case.emulator_faults:
        draw_emulator.set_faults(**case.emulator_faults)

    export_run = load_dag("draw_export", retry_delay=QUICK_RETRIES).test()
    wait_for_the_server(settings, draw_emulator)
    import_run = load_dag("draw_import", retry_delay=QUICK_RETRIES).test()

    with session_scope(settings.db_url) as session:
        jobs = {job.id: (job.status, job.stage, job.error) for job in session.scalars(select(Job))}
    failed = {job_id for job_id, (status, _, _) in jobs.items() if status == "failed"}
    series_of_job = {job_id: series_id for series_id, job_id in jobs_by_series(settings).items()}
    folders = {ready.series_id: ready.folder for ready in [*healthy, odd]}
    delivered = {job_id for job_id, series_id in series_of_job.items()
                 if list(folders[series_id].glob("RS.*.dcm"))}
    assert len(jobs) == 5

    if case.stage is None:  # transient: retried, then delivered like the others
        assert failed == set() and delivered == set(jobs)
        assert export_run.state == import_run.state == "success"
        retried = [job_id for job_id, tasks in job_tries(export_run).items()
                   if tasks[case.retried_task][1] == 2]
        assert len(retried) == 1
        assert job_tries(export_run)[retried[0]][case.retried_task][0] == "success"
        return

    assert len(failed) == 1
    (failed_job,) = failed
    if case.known_before_the_run:
        assert failed_job == jobs_by_series(settings)[odd.series_id]
    assert delivered == set(jobs) - failed  # the four healthy ones, in the same runs
    assert all(jobs[job_id][0] == "finished" for job_id in delivered)
    assert not list(folders[series_of_job[failed_job]].glob("RS.*.dcm"))
    _, stage, reason = jobs[failed_job]
    assert stage == case.stage
    assert case.reason in reason
    for phi in synthetic_patient(ODD_PATIENT).phi_strings():
        assert phi not in reason
    if case.failing_task:  # permanent: one try only, however many retries the DAG allows
        run = import_run if case.failing_task == "fetch_and_deliver" else export_run
        assert job_tries(run)[failed_job][case.failing_task] == ("failed", 1)
        assert run.state == "failed"
    else:  # decided by the poll, which itself succeeds
        assert import_run.state == "success"
    if case.failing_task == "job.deidentify_and_pack":
        # the failed job's upload never ran; every other job's upload succeeded
        assert job_tries(export_run)[failed_job]["job.upload_to_draw"][0] == "upstream_failed"
    assert all(job_tries(export_run)[job_id]["job.upload_to_draw"] == ("success", 1)
               for job_id in delivered)
