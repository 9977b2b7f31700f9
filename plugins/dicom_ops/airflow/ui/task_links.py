"""The Airflow task instances that worked on a job, from Airflow's metadata DB.

The pipelines' mapped tasks are labelled "job <id>" (``map_index_template`` in
``dags/draw_export.py`` and ``dags/draw_import.py``), which Airflow stores as the task
instance's ``rendered_map_index``: that label is how a job finds its tasks, in every run
that touched it (a retry of the export, a resume by a later run, the import).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from airflow.models.taskinstance import TaskInstance
from airflow.utils.session import create_session
from sqlalchemy import select

PIPELINE_DAG_IDS = ("draw_export", "draw_import")
MAX_TASKS = 50


@dataclass(frozen=True)
class TaskLink:
    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    state: str | None
    try_number: int
    start_date: object

    @property
    def path(self) -> str:
        """The task instance (with its log) in the Airflow UI, relative to its root."""
        return (f"/dags/{quote(self.dag_id, safe='')}/runs/{quote(self.run_id, safe='')}"
                f"/tasks/{quote(self.task_id, safe='')}/mapped/{self.map_index}")

    @property
    def log_path(self) -> str:
        return f"{self.path}?try_number={max(self.try_number, 1)}"


def task_links(job_id: int) -> list[TaskLink]:
    """The job's task instances, oldest first (at most ``MAX_TASKS``)."""
    label = f"job {int(job_id)}"
    with create_session() as session:
        rows = session.execute(
            select(TaskInstance.dag_id, TaskInstance.run_id, TaskInstance.task_id,
                   TaskInstance.map_index, TaskInstance.state, TaskInstance.try_number,
                   TaskInstance.start_date)
            .where(TaskInstance.dag_id.in_(PIPELINE_DAG_IDS),
                   TaskInstance.rendered_map_index == label)
            .order_by(TaskInstance.start_date.asc().nulls_last())
            .limit(MAX_TASKS)).all()
    return [TaskLink(dag_id, run_id, task_id, map_index, str(state) if state else None,
                     try_number or 0, start)
            for dag_id, run_id, task_id, map_index, state, try_number, start in rows]
