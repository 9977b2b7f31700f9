"""pacs_query: fetch planning CTs from the PACS on a schedule (OpenREM-style), for a
department whose scanner cannot push to us.

Runs every DICOM_OPS_PACS_QUERY_INTERVAL_MINUTES (default 30) against the Airflow
connection DICOM_OPS_PACS_CONN (a `dicom` connection, or `dicomweb`). With none
configured every run skips its tasks and says so in the log.

1. echo: C-ECHO the PACS, then our own listener (a DICOMweb PACS: a QIDO-RS search);
   either not answering fails the run with the node named; the next interval tries again.
2. find_and_filter: C-FIND the studies in the date range, then their series, oldest
   first; drop what the filters exclude, what the app DB already has (from any source)
   and what an earlier run requested that is still arriving; keep at most max_series.
   Every decision is recorded (`dicom-ops pacs history`; `dicom-ops pacs query --dry-run`
   shows them without retrieving).
3. retrieve: C-MOVE each series to our listener (or C-GET, or WADO-RS), counting what
   arrived; a series that came back partly or not at all is asked for again next run.
   The series then go through intake, readiness and draw_export as if pushed (source pacs).

Params (empty = the DICOM_OPS_PACS_* setting): modality, days_back or date_from/date_to,
station / study description / series description include and exclude (comma-separated,
case-insensitive substrings), max_series.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, DeltaTriggerTimetable, Param
from dicom_ops.airflow.assets import SERIES_READY
from dicom_ops.airflow.operators.pacs import (
    PacsEchoOperator,
    PacsFindOperator,
    PacsRetrieveOperator,
)
from dicom_ops.config import get_settings

settings = get_settings()
WORDS = "Comma-separated, case-insensitive substrings; empty = the setting."


def _text(description: str) -> Param:
    return Param("", type="string", description=description)


with DAG(
    dag_id="pacs_query",
    schedule=DeltaTriggerTimetable(timedelta(minutes=settings.pacs_query_interval_minutes)),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # two runs would ask for the same series twice
    default_args={"retries": 0},  # a failed run is retried by the next interval
    tags=["dicom-ops", "intake", "pacs"],
    params={
        "modality": _text("Modality code; empty = DICOM_OPS_PACS_MODALITY."),
        "days_back": Param(None, type=["null", "integer"], minimum=0,
                           description="Studies of the last N days; empty = the setting."),
        "date_from": Param("", type="string", description="YYYY-MM-DD (instead of days_back)."),
        "date_to": Param("", type="string", description="YYYY-MM-DD."),
        "station_include": _text(WORDS), "station_exclude": _text(WORDS),
        "study_description_include": _text(WORDS), "study_description_exclude": _text(WORDS),
        "series_description_include": _text(WORDS), "series_description_exclude": _text(WORDS),
        "max_series": Param(None, type=["null", "integer"], minimum=1,
                            description="At most this many series; empty = the setting."),
    },
    doc_md=__doc__,
):
    echo = PacsEchoOperator(task_id="echo")
    find = PacsFindOperator(task_id="find_and_filter")
    fetched = PacsRetrieveOperator(task_id="retrieve", query_id=find.output,
                                   outlets=[SERIES_READY])
    echo >> find >> fetched
