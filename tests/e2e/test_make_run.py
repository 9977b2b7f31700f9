"""`make run`'s stack comes up healthy on 127.0.0.1 and Ctrl-C stops all of it."""

import pytest

from tests.support.stack import start_stack

pytestmark = pytest.mark.slow


def test_stack_becomes_healthy_and_stops_on_ctrl_c(tmp_path):
    stack = start_stack(tmp_path / "var")
    try:
        health = stack.wait_healthy(timeout=240)
        assert health["scheduler"]["status"] == "healthy"
        password_file = stack.data_root / "airflow" / "simple_auth_manager_passwords.json.generated"
        assert password_file.exists()
        assert (stack.data_root / "env.sh").exists()
    finally:
        code = stack.stop()
    assert code == 0
    assert "all processes stopped" in stack.log()
