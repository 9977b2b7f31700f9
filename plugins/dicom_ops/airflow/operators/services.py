"""Operators of the service DAGs (``dags/services.py``): claim a service's new items,
run one job for one item, and show a broken definition as a failed task."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException, AirflowTaskTimeout

from dicom_ops.airflow.app_settings import task_settings
from dicom_ops.airflow.hooks.dicom_node import DicomNodeHook
from dicom_ops.db.models import utcnow
from dicom_ops.db.session import session_scope
from dicom_ops.services.definition import ServiceDefinitionError, load_service
from dicom_ops.services.events import claim_items
from dicom_ops.services.runner import ServiceJobFailed, run_job
from dicom_ops.services.runs import RunStatus, summarise


class ClaimServiceItemsOperator(BaseOperator):
    """The items of ``event`` this service has not taken yet (within
    DICOM_OPS_SERVICES_LOOKBACK_HOURS), claimed; returns their ids, one mapped unit each."""

    ui_color = "#e4ecf7"

    def __init__(self, *, service: str, event: str, max_items: int = 100, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service = service
        self.event = event
        self.max_items = max_items

    def execute(self, context: Context) -> list[int]:
        settings = task_settings()
        since = utcnow() - timedelta(hours=settings.services_lookback_hours)
        with session_scope(settings.db_url) as session:
            claimed = claim_items(session, self.service, self.event, since, self.max_items)
        self.log.info("service %s: %d new %s item(s): %s", self.service, len(claimed),
                      self.event, claimed)
        return claimed


class ServiceJobOperator(BaseOperator):
    """One job of a service for one item (``dicom_ops.services.runner.run_job``).

    A skip (a dependency did not succeed, the registry callback said no) is a skipped
    task with the reason in its log; a failure fails this task only, at once (a service
    job has no retries: its run record says why, and clearing the task runs it again)."""

    template_fields: Sequence[str] = ("item_id",)
    ui_color = "#eef7e4"

    def __init__(self, *, service_folder: str, job_name: str, item_id: int | str,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service_folder = service_folder
        self.job_name = job_name
        self.item_id = item_id

    def execute(self, context: Context) -> None:
        # Returns nothing: the worker's dict is the service's to shape, so it is kept in
        # the app DB (service_run) and never put in XCom, where PHI must never go.
        try:
            definition = load_service(Path(self.service_folder))
        except ServiceDefinitionError as exc:
            raise AirflowFailException(f"the service definition is broken: {exc}") from None
        settings = task_settings()
        try:
            outcome = run_job(settings, definition, self.job_name, int(self.item_id),
                              nodes=lambda conn_id: DicomNodeHook(conn_id).get_node(),
                              timeout_errors=(AirflowTaskTimeout,))
        except ServiceJobFailed as exc:
            raise AirflowFailException(str(exc)) from None
        except KeyError as exc:  # the job was removed from the definition since the parse
            raise AirflowFailException(str(exc.args[0])) from None
        if outcome.status is RunStatus.SKIPPED:
            raise AirflowSkipException(outcome.reason)


class ServiceSummaryOperator(BaseOperator):
    """After every item's jobs: the run's outcome in one line, and a failed task (so a
    red run) when any job failed. A DAG run's state follows its last tasks only, and each
    item's last job runs whatever its earlier jobs did; this task is what keeps a
    failure visible on the run."""

    template_fields: Sequence[str] = ("item_ids",)
    ui_color = "#e4ecf7"

    def __init__(self, *, item_ids: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.item_ids = item_ids

    def execute(self, context: Context) -> dict[str, int]:
        item_ids = [int(i) for i in (self.item_ids or [])]
        with session_scope(task_settings().db_url) as session:
            counts, failed = summarise(session, item_ids)
        self.log.info("%d item(s): %s", len(item_ids),
                      ", ".join(f"{n} {status}" for status, n in counts.items()))
        if failed:
            for line in failed:
                self.log.error("failed: %s", line)
            raise AirflowFailException(f"{len(failed)} job run(s) failed: " + "; ".join(failed))
        return counts


class ServiceDefinitionErrorOperator(BaseOperator):
    """The one task of a broken service's DAG: it fails with every problem of the
    definition, each naming the file, the job and the key."""

    ui_color = "#f7e4e4"

    def __init__(self, *, problems: Sequence[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.problems = list(problems)

    def execute(self, context: Context) -> None:
        for problem in self.problems:
            self.log.error("%s", problem)
        raise AirflowFailException("the service definition is broken: " + "; ".join(self.problems))


class ServiceDisabledOperator(BaseOperator):
    """The one task of a service whose jobs are all disabled: skipped, saying so."""

    def execute(self, context: Context) -> None:
        raise AirflowSkipException("every job of this service is disabled in its definition")
