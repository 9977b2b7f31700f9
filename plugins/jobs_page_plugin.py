"""Airflow's plugin loader reads the plugins folder: this puts the "DICOM jobs" page
(dicom_ops.airflow.ui.plugin) in the Airflow UI."""

from dicom_ops.airflow.ui.plugin import DicomJobsPlugin

__all__ = ["DicomJobsPlugin"]
