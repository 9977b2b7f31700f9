"""Helpers shared by several commands (not a command: discovery skips `_` modules)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from dicom_ops.cli import CommandError
from dicom_ops.config import Settings
from dicom_ops.data_root import DataRootMismatch, check
from dicom_ops.db.models import Series
from dicom_ops.db.session import session_scope


def require_migrated_db(settings: Settings) -> None:
    """A clear error, instead of a traceback, when the app DB is missing or not migrated."""
    try:
        with session_scope(settings.db_url) as session:
            session.execute(select(Series.id).limit(1))
    except SQLAlchemyError as exc:
        raise CommandError(
            f"the app DB is not usable ({type(exc).__name__}): run `dicom-ops db upgrade`"
        ) from exc


def require_own_data_root(settings: Settings) -> None:
    """Refuse to start on a data root that is not the app DB's (a wrong or missing mount)."""
    require_migrated_db(settings)
    try:
        check(settings)
    except DataRootMismatch as exc:
        raise CommandError(str(exc)) from exc
