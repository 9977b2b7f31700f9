"""Airflow triggers of dicom-ops (they run in the triggerer)."""
