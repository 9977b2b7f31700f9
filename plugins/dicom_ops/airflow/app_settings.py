"""Settings as seen from inside Airflow: the `dicom_ops_db` connection, when it exists,
names the app DB (its extra holds ``sqlalchemy_url``); everything else comes from
the ``DICOM_OPS_*`` environment."""

from __future__ import annotations

import dataclasses
import logging
from functools import lru_cache

from dicom_ops.config import Settings, SettingsError, get_settings

APP_DB_CONN_ID = "dicom_ops_db"
log = logging.getLogger(__name__)


def _app_db_url_from_connection() -> str | None:
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        connection = BaseHook.get_connection(APP_DB_CONN_ID)
    except AirflowNotFoundException:
        return None
    url = connection.extra_dejson.get("sqlalchemy_url")
    if not url:
        raise SettingsError(
            f"Airflow connection {APP_DB_CONN_ID!r} has no 'sqlalchemy_url' in its extra "
            "(expected e.g. {\"sqlalchemy_url\": \"postgresql://user@host/dicom_ops\"})"
        )
    return url


@lru_cache(maxsize=1)
def task_settings() -> Settings:
    """Settings for code running in an Airflow task or trigger."""
    settings = get_settings()
    url = _app_db_url_from_connection()
    if url and url != settings.db_url:
        log.info("app DB from the Airflow connection %s", APP_DB_CONN_ID)
        settings = dataclasses.replace(settings, db_url=url)
    return settings
