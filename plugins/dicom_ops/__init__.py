"""DICOM autosegmentation pipelines on Apache Airflow: the domain package.

The domain core (config, db, dicom, draw, templates, jobs) never imports Airflow;
the thin adapters live in ``dicom_ops.airflow``.
"""

__version__ = "0.1.0"
