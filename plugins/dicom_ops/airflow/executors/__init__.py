"""Executors of the embedded stack (``AIRFLOW__CORE__EXECUTOR``, set by ``dicom_ops.stack``)."""
