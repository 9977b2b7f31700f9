"""What `make run` prepares before it starts anything."""

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from dicom_ops.config import REPO_ROOT, SettingsError
from dicom_ops.stack import banner, connections, prepare, programs


def test_prepare_keeps_one_secret_and_points_airflow_at_the_repo(tmp_path):
    env = {"DICOM_OPS_DATA_ROOT": str(tmp_path / "var"), "PATH": "/usr/bin"}
    first, second = prepare(env), prepare(env)
    assert first.settings.secret_key == second.settings.secret_key
    assert len(first.settings.secret_key) >= 32
    assert oct(os.stat(tmp_path / "var" / "secret_key").st_mode & 0o777) == "0o600"
    assert first.env["AIRFLOW_HOME"] == str(tmp_path / "var" / "airflow")
    assert first.env["AIRFLOW__CORE__DAGS_FOLDER"] == str(REPO_ROOT / "dags")
    assert first.env["AIRFLOW__CORE__PLUGINS_FOLDER"] == str(REPO_ROOT / "plugins")
    assert first.env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert first.env["AIRFLOW__API__HOST"] == "127.0.0.1"
    assert first.env["AIRFLOW__API__PORT"] == "8080"
    # `airflow standalone` starts its parts by the bare name `airflow`; the venv's other
    # programs (pynetdicom's storescu, storescp, echoscu) must not shadow dcmtk's.
    cli = Path(first.env["PATH"].split(os.pathsep)[0])
    assert cli == tmp_path / "var" / "bin"
    assert sorted(p.name for p in cli.iterdir()) == ["airflow", "dicom-ops"]
    assert (cli / "airflow").resolve() == (Path(sys.executable).parent / "airflow").resolve()
    assert shutil.which("storescu", path=first.env["PATH"]) in (None, "/usr/bin/storescu")


def test_draw_connection_points_at_the_local_emulator_with_its_token(tmp_path):
    stack = prepare({"DICOM_OPS_DATA_ROOT": str(tmp_path), "DICOM_OPS_EMULATOR_PORT": "9123"})
    draw = connections(stack)["draw_default"]
    assert (draw["host"], draw["port"], draw["schema"]) == ("127.0.0.1", 9123, "http")
    assert draw["password"] == (tmp_path / "emulator" / "access_token").read_text().strip()
    assert json.loads(draw["extra"])["refresh_token"] == stack.emulator_refresh_token
    app_db = json.loads(connections(stack)["dicom_ops_db"]["extra"])
    assert app_db["sqlalchemy_url"] == stack.settings.db_url


def test_a_bad_setting_stops_make_run_before_anything_starts(tmp_path):
    with pytest.raises(SettingsError, match="DICOM_OPS_LISTENER_PORT"):
        prepare({"DICOM_OPS_DATA_ROOT": str(tmp_path), "DICOM_OPS_LISTENER_PORT": "none"})
    assert not (tmp_path / "airflow").exists()


def test_banner_says_where_the_ui_password_and_listener_are(tmp_path):
    stack = prepare({"DICOM_OPS_DATA_ROOT": str(tmp_path)})
    text = banner(stack)
    assert "http://127.0.0.1:8080" in text
    assert "simple_auth_manager_passwords.json.generated" in text
    assert "127.0.0.1:11112" in text and "DRAWCLIENT" in text


def test_the_supervised_group_starts_airflow_standalone(tmp_path):
    names = {program.name: program for program in programs(prepare({"DICOM_OPS_DATA_ROOT": str(tmp_path)}))}
    assert names["airflow"].argv[-1] == "standalone"


def test_the_console_gets_our_processes_and_events_and_airflow_gets_a_log_file(tmp_path):
    stack = prepare({"DICOM_OPS_DATA_ROOT": str(tmp_path)})
    names = {program.name: program for program in programs(stack)}
    assert names["airflow"].log_file == tmp_path / "logs" / "airflow.log"
    assert names["events"].argv[-3:] == ["events", "--follow", "--new"]
    assert names["events"].log_file is None and names["listener"].log_file is None
    text = banner(stack)
    assert "http://127.0.0.1:8080/plugin/dicom-jobs" in text
    assert str(tmp_path / "logs" / "airflow.log") in text


def test_the_stack_runs_tasks_on_the_preloading_local_executor_unless_told_otherwise(tmp_path):
    from airflow.executors.local_executor import LocalExecutor
    from dicom_ops.airflow.executors.preloading import PreloadingLocalExecutor

    env = prepare({"DICOM_OPS_DATA_ROOT": str(tmp_path)}).env
    module, _, name = env["AIRFLOW__CORE__EXECUTOR"].rpartition(".")
    assert getattr(__import__(module, fromlist=[name]), name) is PreloadingLocalExecutor
    # `airflow standalone` keeps an executor only when it is a local one
    assert issubclass(PreloadingLocalExecutor, LocalExecutor) and PreloadingLocalExecutor.is_local
    exported = prepare({"DICOM_OPS_DATA_ROOT": str(tmp_path),
                        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor"}).env
    assert exported["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
