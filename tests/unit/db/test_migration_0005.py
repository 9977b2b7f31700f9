"""Revision 0005 (the jobs page's indexes) upgrades a DB at 0002 with jobs in it, and back."""

from __future__ import annotations

import itertools
import os

import pytest
from alembic import command
from dicom_ops.db.session import (
    alembic_config,
    create_engine_for,
    current_revision,
    head_revision,
    upgrade,
)
from sqlalchemy import inspect, text

_numbers = itertools.count(1)
INDEXES = {"ix_job_status_id", "ix_job_template_id", "ix_job_created_at", "ix_job_finished_at"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'app-0002.sqlite'}"
    server = request.getfixturevalue("postgres_server")
    return server.create_database(f"mig3_{os.getpid()}_{next(_numbers)}")


def _job_indexes(url: str) -> set[str]:
    return {index["name"] for index in inspect(create_engine_for(url)).get_indexes("job")}


def test_an_0002_db_with_jobs_gets_the_jobs_page_indexes_and_keeps_its_jobs(empty_url):
    upgrade(empty_url, "0002")
    with create_engine_for(empty_url).begin() as connection:
        connection.execute(text(
            "INSERT INTO job (template, priority, status, forced, created_at, updated_at) "
            "VALUES ('Thorax OARs', 0, 'finished', false, '2026-11-30 08:00:00', "
            "'2026-11-30 08:00:00')"))
    assert not INDEXES & _job_indexes(empty_url)
    upgrade(empty_url)
    assert current_revision(empty_url) == head_revision()
    assert INDEXES <= _job_indexes(empty_url)
    with create_engine_for(empty_url).connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM job")).scalar() == 1
    # and a downgrade takes exactly these indexes away again
    engine = create_engine_for(empty_url)
    with engine.connect() as connection:
        config = alembic_config(empty_url)
        config.attributes["connection"] = connection
        command.downgrade(config, "0002")
        connection.commit()
    assert not INDEXES & _job_indexes(empty_url)
