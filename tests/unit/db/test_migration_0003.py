"""Revision 0003 (service items and runs) upgrades a DB with series in it, and goes back."""

from __future__ import annotations

from alembic import command
from dicom_ops.db.session import alembic_config, create_engine_for, current_revision, upgrade
from sqlalchemy import inspect, text


def test_0003_adds_the_service_tables_to_a_db_with_data_and_downgrades_cleanly(tmp_path):
    url = f"sqlite:///{tmp_path / 'app-0002.sqlite'}"
    upgrade(url, "0002")
    with create_engine_for(url).begin() as connection:
        connection.execute(text(
            "INSERT INTO series (study_uid, series_uid, instance_count, folder, source, state, "
            "first_seen, last_seen) VALUES ('1.2', '1.2.3', 1, '/x', 'scp', 'ready', "
            "'2026-12-01 08:00:00', '2026-12-01 08:00:00')"))

    upgrade(url)
    tables = set(inspect(create_engine_for(url)).get_table_names())
    indexes = {index["name"] for index in inspect(create_engine_for(url)).get_indexes("series")}
    with create_engine_for(url).connect() as connection:
        config = alembic_config(url)
        config.attributes["connection"] = connection
        command.downgrade(config, "0002")
        connection.commit()
    after_downgrade = set(inspect(create_engine_for(url)).get_table_names())
    with create_engine_for(url).connect() as connection:
        kept = connection.execute(text("SELECT series_uid FROM series")).scalars().all()

    assert {"service_item", "service_run"} <= tables and "ix_series_ready_at" in indexes
    assert current_revision(url) == "0002"
    assert not {"service_item", "service_run"} & after_downgrade
    assert kept == ["1.2.3"]
