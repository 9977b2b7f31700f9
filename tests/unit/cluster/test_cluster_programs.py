"""`dicom-ops cluster` starts the deployment's roles with the deployment's settings, on
the stack's ports, plus N workers with their own Celery names."""

from __future__ import annotations

from pathlib import Path

from dicom_ops.cluster.deployment import ROLE_COMMANDS, shared_settings
from dicom_ops.cluster.run import banner, prepare, programs


def _cluster(tmp_path: Path, **env: str):
    return prepare({"DICOM_OPS_DATA_ROOT": str(tmp_path / "var"), "PATH": "/usr/bin",
                    "DICOM_OPS_CLUSTER_POSTGRES_PORT": "25433",
                    "DICOM_OPS_CLUSTER_REDIS_PORT": "26380", **env})


def test_each_role_runs_the_deployments_command_with_the_shared_settings(tmp_path):
    cluster = _cluster(tmp_path, DICOM_OPS_CLUSTER_WORKERS="3")
    started = {program.name: program for program in programs(cluster)}

    for role, command in ROLE_COMMANDS.items():
        names = [role] if role != "worker" else ["worker-1", "worker-2", "worker-3"]
        for name in names:
            argv = list(started[name].argv)
            assert [Path(argv[0]).name, *argv[1:len(command)]] == command, name
            for key, value in shared_settings().items():
                assert started[name].env[key] == value, f"{name}: {key}"
    assert "emulator" in started and "airflow" not in started  # no `airflow standalone`


def test_workers_have_distinct_celery_names_and_one_serves_the_logs(tmp_path):
    started = {p.name: list(p.argv) for p in programs(_cluster(tmp_path))}

    names = [argv[argv.index("--celery-hostname") + 1] for n, argv in started.items()
             if n.startswith("worker-")]
    assert names == ["worker-1@%h", "worker-2@%h"]
    assert "--skip-serve-logs" not in started["worker-1"]
    assert "--skip-serve-logs" in started["worker-2"]


def test_the_cluster_uses_its_own_postgres_and_redis_on_loopback(tmp_path):
    cluster = _cluster(tmp_path)
    env = cluster.stack.env

    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@127.0.0.1:25433/airflow")
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://127.0.0.1:26380/0"
    assert cluster.stack.settings.db_url.endswith("@127.0.0.1:25433/dicom_ops")
    assert env["DICOM_OPS_DB_URL"] == cluster.stack.settings.db_url
    text = banner(cluster)
    assert "worker-1, worker-2" in text and "127.0.0.1:25433" in text
    assert f"127.0.0.1:{cluster.stack.api_port}" in text  # the stack's banner, kept


def test_flower_is_started_only_when_asked_for(tmp_path):
    cluster = _cluster(tmp_path)

    assert "flower" not in {p.name for p in programs(cluster)}
    flower = {p.name: p for p in programs(cluster, flower=True)}["flower"]
    assert list(flower.argv)[1:3] == ["celery", "flower"]
    assert "127.0.0.1:5555" in banner(cluster, flower=True)
