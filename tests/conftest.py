"""Shared fixtures: a temporary data root and settings, app DBs on SQLite and on a real
PostgreSQL server, and the environment for `dicom-ops` subprocesses."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from pathlib import Path

# Airflow reads its configuration when first imported: give this test run its own
# home and metadata DB before anything imports it (never the developer's ~/airflow).
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="dicom-ops-test-airflow-"))
os.environ.update({
    "AIRFLOW_HOME": str(_AIRFLOW_HOME),
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}",
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__DAGS_FOLDER": str(Path(__file__).resolve().parents[1] / "dags"),
})

import pytest
from dicom_ops.config import REPO_ROOT, Settings, load_settings
from dicom_ops.data_root import stamp as stamp_data_root
from dicom_ops.db.session import dispose_engines, upgrade

from tests.support.emulator import draw_emulator, draw_emulator_process  # noqa: F401
from tests.support.listener import start_listener  # noqa: F401
from tests.support.orthanc import orthanc  # noqa: F401
from tests.support.postgres import PostgresUnavailable, start_postgres

TEST_SECRET = "test-secret-key-0123456789abcdef"
IN_CI = bool(os.environ.get("CI"))
_database_numbers = itertools.count()


def require_tool(name: str) -> str:
    """The path of a system tool; a failure in CI (never a silent skip), a skip elsewhere."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (make test installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "var"
    root.mkdir()
    return root


@pytest.fixture
def sqlite_url(data_root: Path) -> str:
    url = f"sqlite:///{data_root / 'dicom_ops.sqlite'}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def postgres_server():
    try:
        server = start_postgres()
    except PostgresUnavailable as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI: {exc}")
        pytest.skip(str(exc))
    yield server
    dispose_engines()
    server.stop()


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A fresh, migrated database on the throwaway server, one per test."""
    url = postgres_server.create_database(f"test_{os.getpid()}_{next(_database_numbers)}")
    upgrade(url)
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request) -> str:
    """The app DB on each backend in turn: tests using it run on SQLite and PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def settings(data_root: Path, sqlite_url: str) -> Settings:
    settings = load_settings(
        {},
        data_root=data_root,
        db_url=sqlite_url,
        secret_key=TEST_SECRET,
        templates_dir=REPO_ROOT / "include" / "templates",
        quiet_seconds=2,
        min_free_disk=0,
    )
    stamp_data_root(settings)  # as `dicom-ops db upgrade` does: the listener checks it
    return settings


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment for a `dicom-ops` subprocess that sees the same settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DICOM_OPS_")}
    env.update({
        "DICOM_OPS_DATA_ROOT": str(settings.data_root),
        "DICOM_OPS_DB_URL": settings.db_url,
        "DICOM_OPS_SECRET_KEY": settings.secret_key or "",
        "DICOM_OPS_TEMPLATES_DIR": str(settings.templates_dir),
        "DICOM_OPS_QUIET_SECONDS": str(settings.quiet_seconds),
        "DICOM_OPS_MIN_FREE_DISK": str(settings.min_free_disk),
    })
    return env


@pytest.fixture
def cli_env(settings: Settings) -> dict[str, str]:
    return settings_env(settings)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)
