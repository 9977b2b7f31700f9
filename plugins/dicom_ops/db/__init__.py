"""App DB: SQLAlchemy 2 models, engine/session helpers and Alembic migrations."""

from dicom_ops.db.session import create_engine_for, session_scope, upgrade

__all__ = ["create_engine_for", "session_scope", "upgrade"]
