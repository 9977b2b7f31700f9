"""The "DICOM jobs" page inside the Airflow UI: an Airflow plugin (``plugin``) whose
FastAPI app (``app``) the API server mounts at ``/dicom-ops``; access checks against
Airflow's auth manager (``access``), server-side SVG plots (``plots``), the job's Airflow
tasks (``task_links``). The rows and numbers come from the domain (``dicom_ops.jobs.board``,
``dicom_ops.jobs.stats``), shared with the CLI."""
