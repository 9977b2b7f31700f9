"""Thin Airflow adapters over the domain core, laid out like a provider package:
``hooks/`` (connections), ``operators/`` (one domain call each), ``triggers/`` (run in
the triggerer), ``assets``, ``app_settings`` (settings as tasks see them) and
``provider`` (the metadata that puts the ``dicom`` connection type in the UI)."""
