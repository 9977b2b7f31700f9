"""Executors of the embedded stack (``AIRFLOW__CORE__EXECUTOR``, set by ``dicom_ops.stack``) and
the Celery settings of the distributed one (``AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS``, set by
``dicom_ops.cluster.deployment``)."""
