"""The Airflow plugin: the jobs page's app at ``/dicom-ops`` and its nav entry.

Airflow's plugin loader imports ``plugins/jobs_page_plugin.py`` (the plugins folder's
``.airflowignore`` keeps it out of the ``dicom_ops`` package itself), which imports this.
The nav entry is an external view: the Airflow UI shows ``/dicom-ops/jobs`` in a frame
under its own navigation, at ``/plugin/dicom-jobs``, with the user's session cookie.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from dicom_ops.airflow.ui.app import create_app

URL_PREFIX = "/dicom-ops"
NAV_ROUTE = "dicom-jobs"


class DicomJobsPlugin(AirflowPlugin):
    name = "dicom_ops_jobs_page"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "DICOM jobs"}]
    external_views = [{
        "name": "DICOM jobs",
        "href": f"{URL_PREFIX}/jobs",
        "destination": "nav",
        "url_route": NAV_ROUTE,
        "nav_top_level": True,
    }]
