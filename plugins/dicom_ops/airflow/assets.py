"""Airflow assets of dicom-ops.

``SERIES_READY``: "a series became ready in the app DB". Its watcher
(``SeriesReadyTrigger``) turns new ready series into asset events within a poll
interval, so a DAG scheduled on it (draw_export, with its time interval as a
safety net) runs within seconds. Producers that register series from inside
Airflow (draw_queue) also name it as an outlet.

``DRAW_RESULTS``: "the DRAW server finished a task we wait for"; its watcher
(``DrawResultsTrigger``) polls the server, and draw_import is scheduled on it.

``STUDY_READY`` ("no series of a study is still receiving") and ``RTSTRUCT_DELIVERED``
("an RTSTRUCT was delivered") start services (``dags/services.py``); their watcher
(``ServiceEventTrigger``) polls the app DB, which intake and delivery write (why a
watcher and not outlets: see that trigger's docstring). ``EVENT_ASSETS`` maps each
service event to its asset.

Always import this object; never re-declare the asset in a DAG file: every DAG
file that mentions the asset must carry the same watcher, or parsing that file
would remove the watcher again.
"""

from __future__ import annotations

from airflow.sdk import Asset, AssetWatcher

from dicom_ops.airflow.triggers.draw import DrawResultsTrigger
from dicom_ops.airflow.triggers.series_ready import SeriesReadyTrigger
from dicom_ops.airflow.triggers.service_events import ServiceEventTrigger

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

STUDY_READY = Asset(
    name="study_ready",
    uri="x-dicom-ops://study/ready",
    group="dicom_ops",
    watchers=[AssetWatcher(name="study_quiet_in_app_db",
                           trigger=ServiceEventTrigger(event="study_ready", poll_seconds=5.0))],
)

RTSTRUCT_DELIVERED = Asset(
    name="rtstruct_delivered",
    uri="x-dicom-ops://rtstruct/delivered",
    group="dicom_ops",
    watchers=[AssetWatcher(name="rtstruct_delivered_in_app_db",
                           trigger=ServiceEventTrigger(event="rtstruct_delivered",
                                                       poll_seconds=5.0))],
)

EVENT_ASSETS = {"series_ready": SERIES_READY, "study_ready": STUDY_READY,
                "rtstruct_delivered": RTSTRUCT_DELIVERED}
