"""Services: one DAG `service_<name>` per folder under DICOM_OPS_SERVICES_DIR
(default include/services), generated from its dcm-processor.json (or legacy
settings.json). See the README, "Writing a service".

Each service DAG runs when one of its events' assets gets an event: `series_ready`
(a series is complete), `study_ready` (no series of a study still arriving),
`rtstruct_delivered` (an RTSTRUCT was delivered), and every
DICOM_OPS_SERVICES_INTERVAL_MINUTES (default 10) as a safety net.

For each event the service starts on:
1. find_<event>: claim the items of that event the service has not taken yet.
2. <event> (one mapped group per item; one item's failure never touches another's):
   one task per job, in run order: pre-services, then jobs in dependsOn and
   sortPosition order, then post-services. Each job runs whatever happened to the
   one before (trigger rule all_done); a job whose dependency did not succeed, or
   whose registry callback says no, is skipped with the reason in its log.
   `priority` is the task's priority weight, `timeout` its execution timeout.
3. summary_<event>: counts of succeeded / failed / skipped; fails (a red run) when any
   job failed, naming the job, the item and the reason.

A broken definition still gives its DAG: one task, `definition_error`, that fails
with each problem (file, job, key); the DAG's description says so too. The other
services' DAGs load and run as ever.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from airflow.sdk import DAG, AssetAny, AssetOrTimeSchedule, DeltaTriggerTimetable, task_group
from dicom_ops.airflow.assets import EVENT_ASSETS
from dicom_ops.airflow.operators.services import (
    ClaimServiceItemsOperator,
    ServiceDefinitionErrorOperator,
    ServiceDisabledOperator,
    ServiceJobOperator,
    ServiceSummaryOperator,
)
from dicom_ops.config import get_settings
from dicom_ops.services import InstalledService, ServiceDefinition, installed_services

settings = get_settings()
ITEM_LABEL = "item {{ task.item_id }}"
COMMON = {"start_date": datetime(2026, 1, 1), "catchup": False,
          "tags": ["dicom-ops", "service"]}


def broken_service_dag(service: InstalledService) -> DAG:
    """Runs once when it appears (and on a manual trigger) and fails, listing the problems."""
    problems = "\n".join(f"- {problem}" for problem in service.problems)
    with DAG(dag_id=service.dag_id, schedule="@once", **COMMON,
             description=f"BROKEN definition: {service.problems[0]}"[:200],
             doc_md=f"**The definition of service `{service.name}` is broken:**\n\n{problems}\n\n"
                    "Fix it, then check with `dicom-ops services check "
                    f"{service.folder}`.") as dag:
        ServiceDefinitionErrorOperator(task_id="definition_error", problems=service.problems)
    return dag


def service_dag(definition: ServiceDefinition) -> DAG:
    events = definition.events
    if not events:
        with DAG(dag_id=definition.dag_id, schedule=None, **COMMON,
                 description="every job is disabled") as dag:
            ServiceDisabledOperator(task_id="all_jobs_disabled")
        return dag
    # Any one of its events starts a run (a list of assets would wait for all of them);
    # the interval is the net for items no event brought (a burst over one run's share).
    schedule = AssetOrTimeSchedule(
        timetable=DeltaTriggerTimetable(timedelta(minutes=settings.services_interval_minutes)),
        assets=AssetAny(*(EVENT_ASSETS[str(event)] for event in events)))
    order = ", ".join(job.job_name for job in definition.enabled_jobs)
    # A burst of ready series brings one service item per series; the export and import
    # of those same patients come first, so a service runs few tasks at a time.
    with DAG(dag_id=definition.dag_id, schedule=schedule, max_active_runs=1,
             max_active_tasks=settings.services_max_active_tasks, **COMMON,
             description=f"service {definition.name}: {order}",
             default_args={"retries": 0},
             doc_md=f"Service `{definition.name}` ({definition.file}).\n\n{__doc__}") as dag:
        for event in events:
            find = ClaimServiceItemsOperator(task_id=f"find_{event}", service=definition.name,
                                             event=str(event))

            @task_group(group_id=str(event))
            def per_item(item_id: int, event=event) -> None:
                previous = None
                for job in definition.jobs_for(event):
                    task = ServiceJobOperator(
                        task_id=job.job_name, service_folder=str(definition.folder),
                        job_name=job.job_name, item_id=item_id,
                        priority_weight=job.priority, weight_rule="absolute",
                        execution_timeout=timedelta(seconds=job.timeout) if job.timeout else None,
                        trigger_rule="all_done", map_index_template=ITEM_LABEL)
                    if previous is not None:
                        previous >> task
                    previous = task

            jobs = per_item.expand(item_id=find.output)
            summary = ServiceSummaryOperator(task_id=f"summary_{event}", item_ids=find.output,
                                             trigger_rule="all_done")
            find >> jobs >> summary
    return dag


for _service in installed_services(settings.services_dir):
    try:
        _dag = (service_dag(_service.definition) if _service.definition
                else broken_service_dag(_service))
    except Exception as _error:  # one service's DAG must never stop the others loading
        _dag = broken_service_dag(dataclasses.replace(_service, problems=(
            f"{_service.name}: its DAG cannot be built ({type(_error).__name__}: {_error})",)))
    globals()[_dag.dag_id] = _dag
