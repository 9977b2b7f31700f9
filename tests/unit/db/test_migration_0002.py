"""Revision 0002 (upload attempts) upgrades a DB that was at 0001 and has data in it."""

from __future__ import annotations

import itertools
import os
from datetime import UTC, datetime

import pytest
from dicom_ops.db.session import create_engine_for, current_revision, head_revision, upgrade
from sqlalchemy import text

_numbers = itertools.count(1)
UPLOADED = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'app-0001.sqlite'}"
    server = request.getfixturevalue("postgres_server")
    return server.create_database(f"mig_{os.getpid()}_{next(_numbers)}")


def _insert_0001_rows(url: str) -> None:
    """Rows as a 0001 installation has them: one job sent, one mid-upload, one packed."""
    now = datetime.now(UTC)
    with create_engine_for(url).begin() as connection:
        for job_id, status, task_id, attempts in ((1, "sent", "task-1", 2),
                                                  (2, "uploading", None, 1),
                                                  (3, "pending", None, 0)):
            connection.execute(text(
                "INSERT INTO job (id, template, priority, status, forced, created_at, "
                "updated_at) VALUES (:id, 'Thorax OARs', 0, 'processing', false, :now, :now)"),
                {"id": job_id, "now": now})
            connection.execute(text(
                "INSERT INTO transfer (job_id, status, server_task_id, upload_attempts, "
                "poll_attempts, uploaded_at) VALUES (:job, :status, :task, :attempts, 0, "
                ":uploaded)"),
                {"job": job_id, "status": status, "task": task_id, "attempts": attempts,
                 "uploaded": UPLOADED if task_id else None})


def test_an_0001_db_with_rows_upgrades_and_keeps_what_its_transfers_imply(empty_url):
    # given a DB at 0001 with transfers in it
    upgrade(empty_url, "0001")
    _insert_0001_rows(empty_url)

    # when it is upgraded
    upgrade(empty_url)

    # then it is at head, the transfers are untouched, and each answered or mid-upload
    # transfer has the attempt it implies
    assert current_revision(empty_url) == head_revision()
    with create_engine_for(empty_url).connect() as connection:
        transfers = connection.execute(text(
            "SELECT job_id, status, server_task_id FROM transfer ORDER BY job_id")).all()
        attempts = connection.execute(text(
            "SELECT job_id, number, outcome, server_task_id, server_copy FROM upload_attempt "
            "ORDER BY job_id")).all()
    assert [tuple(row) for row in transfers] == [(1, "sent", "task-1"), (2, "uploading", None),
                                                 (3, "pending", None)]
    assert [tuple(row) for row in attempts] == [(1, 2, "accepted", "task-1", None),
                                                (2, 1, "unknown", None, None)]
