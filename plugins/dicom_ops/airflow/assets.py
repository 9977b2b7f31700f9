"""Airflow assets of dicom-ops.

``SERIES_READY``: "a series became ready in the app DB". Its watcher
(``SeriesReadyTrigger``) turns new ready series into asset events within a poll
interval, so a DAG scheduled on it (draw_export, with its time interval as a
safety net) runs within seconds. Producers that register series from inside
Airflow (draw_queue) also name it as an outlet.

``DRAW_RESULTS``: "the DRAW server finished a task we wait for"; its watcher
(``DrawResultsTrigger``) polls the server, and draw_import is scheduled on it.

Always import this object; never re-declare the asset in a DAG file: every DAG
file that mentions the asset must carry the same watcher, or parsing that file
would remove the watcher again.
"""

from __future__ import annotations

from airflow.sdk import Asset, AssetWatcher

from dicom_ops.airflow.triggers.draw import DrawResultsTrigger
from dicom_ops.airflow.triggers.series_ready import SeriesReadyTrigger

SERIES_READY = Asset(
    name="series_ready",
    uri="x-dicom-ops://series/ready",
    group="dicom_ops",
    watchers=[AssetWatcher(name="series_ready_in_app_db",
                           trigger=SeriesReadyTrigger(poll_seconds=2.0))],
)

# "the DRAW server finished a task we are waiting for": watched from the triggerer by
# polling the server (DrawResultsTrigger), so draw_import runs within seconds.
DRAW_RESULTS = Asset(
    name="draw_results",
    uri="x-dicom-ops://draw/results",
    group="dicom_ops",
    watchers=[AssetWatcher(name="draw_results_on_server",
                           trigger=DrawResultsTrigger(poll_seconds=5.0))],
)
