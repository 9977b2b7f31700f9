"""App DB scaffolding: migrations apply on SQLite and PostgreSQL and match the models."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from dicom_ops.db.models import Base, Event, Series
from dicom_ops.db.session import (
    create_engine_for,
    current_revision,
    head_revision,
    session_scope,
    upgrade,
)
from sqlalchemy import inspect, select


def test_migrations_reach_head_and_match_the_models(db_url):
    assert current_revision(db_url) == head_revision()
    with create_engine_for(db_url).connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_upgrade_is_idempotent(db_url):
    upgrade(db_url)
    upgrade(db_url)
    tables = set(inspect(create_engine_for(db_url)).get_table_names())
    assert {"series", "job", "job_series", "transfer", "uid_map", "subject_map", "event"} <= tables


def test_rows_round_trip_with_aware_timestamps(db_url):
    with session_scope(db_url) as session:
        series = Series(study_uid="1.2.3", series_uid="1.2.3.4", folder="/x", source="scp")
        session.add(series)
        session.flush()
        session.add(Event(series_id=series.id, actor="test", kind="received", message="one"))
    with session_scope(db_url) as session:
        stored = session.scalars(select(Series)).one()
        assert stored.state == "receiving"
        assert stored.first_seen.tzinfo is not None
        assert session.scalars(select(Event.kind)).all() == ["received"]
