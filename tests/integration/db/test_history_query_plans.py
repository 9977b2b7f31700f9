"""The pipelines' recurring queries reach their rows through an index: with a long history
of finished series and jobs, none of them reads a history table in full (SQLite and
PostgreSQL). The timings are bench/history.py's; this checks the plans that make them."""

from __future__ import annotations

from dicom_ops.config import REPO_ROOT, load_settings

from tests.conftest import TEST_SECRET
from tests.support.history import (
    add_live_load,
    captured_selects,
    full_scans,
    operations,
    seed_history,
)

HISTORY = 200


def test_no_recurring_query_reads_a_history_table_in_full(db_url, data_root, draw_emulator):
    # given a DB with finished series and jobs (and their events), and some live work
    settings = load_settings({}, data_root=data_root, db_url=db_url, secret_key=TEST_SECRET,
                             templates_dir=REPO_ROOT / "include" / "templates",
                             min_free_disk=0, retention_datastore_days=30)
    settings.datastore_dir.mkdir(parents=True, exist_ok=True)
    seed_history(db_url, HISTORY, settings.datastore_dir)
    add_live_load(settings, 0)
    # when the readiness poll, planning, claims, the import poll and cleanup run
    with draw_emulator.client() as client:
        work = operations(settings, client)
        scans = {name: sorted({f"{table}: {' '.join(statement.split())[:160]}"
                               for statement, parameters in captured_selects(db_url, run)
                               for table in full_scans(db_url, statement, parameters)})
                 for name, run in work.items()}
    # then every query they sent found its rows through an index
    assert scans == {name: [] for name in work}


def test_a_query_without_a_usable_index_is_reported_as_a_full_scan(db_url, data_root):
    # given the same history: the check itself must be able to fail
    seed_history(db_url, HISTORY, data_root / "datastore")
    # when a query filters on a column no index covers
    statement = "SELECT id FROM event WHERE message = 'nothing like this'"
    # then its plan is a full read of the table
    parameters = {} if db_url.startswith("postgresql") else ()
    assert full_scans(db_url, statement, parameters) == ["event"]
