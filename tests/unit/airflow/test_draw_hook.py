"""DrawHook as a context manager: tokens renewed inside the block are kept for the next
task, also when the block fails; nothing is written when nothing was renewed."""

from __future__ import annotations

import json
import stat

import pytest
from dicom_ops.airflow.app_settings import task_settings
from dicom_ops.airflow.hooks.draw import DrawHook
from dicom_ops.config import get_settings

from tests.conftest import settings_env

CONN_ID = "draw_hook_test"


def _connection(monkeypatch, access: str, refresh: str) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps({
        "conn_type": "http", "host": "draw.invalid", "schema": "https", "password": access,
        "extra": {"refresh_token": refresh, "client_id": "dicom-ops-test"}}))


@pytest.fixture
def hook_env(settings, monkeypatch):
    """The test's data root as tasks see it, and a draw connection with known tokens."""
    for key, value in settings_env(settings).items():
        if key.startswith("DICOM_OPS_"):
            monkeypatch.setenv(key, value)
    _connection(monkeypatch, access="access-1", refresh="refresh-1")
    get_settings.cache_clear()
    task_settings.cache_clear()
    yield settings
    get_settings.cache_clear()
    task_settings.cache_clear()


def _renew(client, access: str, refresh: str) -> None:
    """What DrawClient does when a 401 makes it refresh: new tokens on the client."""
    client.access_token, client.refresh_token = access, refresh


def test_tokens_renewed_in_the_block_are_what_the_next_hook_uses(hook_env):
    with DrawHook(CONN_ID) as client:
        assert (client.access_token, client.refresh_token) == ("access-1", "refresh-1")
        _renew(client, "access-2", "refresh-2")

    with DrawHook(CONN_ID) as next_client:
        assert (next_client.access_token, next_client.refresh_token) == ("access-2",
                                                                         "refresh-2")
    cache = DrawHook(CONN_ID).token_cache
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600


def test_tokens_renewed_before_a_failure_are_kept_and_the_failure_propagates(hook_env):
    with pytest.raises(RuntimeError, match="server said 500"):
        with DrawHook(CONN_ID) as client:
            _renew(client, "access-2", "refresh-2")
            raise RuntimeError("server said 500")

    assert DrawHook(CONN_ID).get_client().refresh_token == "refresh-2"


def test_a_block_without_a_refresh_writes_nothing(hook_env):
    with DrawHook(CONN_ID) as client:
        assert client.access_token == "access-1"

    assert not DrawHook(CONN_ID).token_cache.exists()


def test_tokens_edited_in_the_connection_win_over_the_kept_ones(hook_env, monkeypatch):
    with DrawHook(CONN_ID) as client:
        _renew(client, "access-2", "refresh-2")

    _connection(monkeypatch, access="access-new", refresh="refresh-new")

    with DrawHook(CONN_ID) as client:
        assert (client.access_token, client.refresh_token) == ("access-new", "refresh-new")


def test_one_hook_builds_its_client_once(hook_env):
    hook = DrawHook(CONN_ID)

    with hook as first, hook as second:
        assert first is second is hook.get_client()
