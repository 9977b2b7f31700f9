"""The pipelines' steps as plain functions (no Airflow): export, import, cleanup."""
