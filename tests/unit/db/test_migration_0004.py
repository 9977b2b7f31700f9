"""Revision 0004: a 0002 installation upgrades with its intake folders kept, then takes
PACS queries and folders registered from a PACS retrieve; and downgrades again."""

from __future__ import annotations

from alembic import command
from dicom_ops.db.session import alembic_config, create_engine_for, current_revision, upgrade
from sqlalchemy import text

from tests.unit.db.test_migration_0002 import empty_url  # noqa: F401

FOLDER = ("INSERT INTO intake_folder (path, source, state, series_count, instance_count, "
          "non_dicom_count, unusable_count, registered_at) VALUES "
          "(:path, :source, 'registered', 1, 4, 0, 0, '2026-12-01 10:00:00+00:00')")


def test_a_0002_db_upgrades_keeps_its_folders_and_accepts_pacs_ones(empty_url):  # noqa: F811
    upgrade(empty_url, "0002")
    engine = create_engine_for(empty_url)
    with engine.begin() as connection:
        connection.execute(text(FOLDER), {"path": "/queue/a", "source": "queue"})

    upgrade(empty_url, "0004")

    assert current_revision(empty_url) == "0004"
    with engine.begin() as connection:
        connection.execute(text(FOLDER), {"path": "/var/pacs/query-1/request-1",
                                          "source": "pacs"})
        connection.execute(text("INSERT INTO pacs_query (pacs, filters, status, started_at, "
                                "studies_found, series_found, filtered, known, over_limit, "
                                "unusable, requested, received_instances, failed_instances, "
                                "failed_series) VALUES ('pacs', '{}', 'done', "
                                "'2026-12-01 10:00:00+00:00', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)"))
        sources = connection.execute(text("SELECT source FROM intake_folder ORDER BY id")).all()
    assert [row[0] for row in sources] == ["queue", "pacs"]

    command.downgrade(alembic_config(empty_url), "0002")
    with engine.begin() as connection:
        left = connection.execute(text("SELECT source FROM intake_folder")).all()
    assert [row[0] for row in left] == ["queue"]
    engine.dispose()
