"""`dicom-ops cluster` (``make cluster``): the distributed deployment on one machine.

Everything `make run` prepares (data root, secrets, Airflow home, connections, pools,
``env.sh``, the listener, the emulator and its first-start demo) comes from
``dicom_ops.stack``; this module only swaps what makes it a cluster: PostgreSQL for
both DBs, Redis as the Celery broker, and each Airflow component as its own process
with N Celery workers (``deployment``), all on 127.0.0.1.

Two supervisors: PostgreSQL and Redis come first and must answer before the DBs are
migrated, then the rest starts; on Ctrl-C the rest stops first, the DBs last.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass

from dicom_ops import stack as embedded
from dicom_ops.cluster import infra as local_infra
from dicom_ops.cluster.deployment import (
    FLOWER_COMMAND,
    ROLE_COMMANDS,
    place_settings,
    shared_settings,
    worker_hostname,
)
from dicom_ops.config import load_settings
from dicom_ops.db.session import dispose_engines
from dicom_ops.supervisor import Program, Supervisor

log = logging.getLogger("dicom_ops.cluster")

AIRFLOW_ROLES = ("api-server", "scheduler", "dag-processor", "triggerer")
FLOWER_PORT = 5555


@dataclass(frozen=True)
class Cluster:
    stack: embedded.Stack
    infra: local_infra.Infra

    @property
    def workers(self) -> int:
        return self.stack.settings.cluster_workers


def prepare(environ: dict[str, str] | None = None) -> Cluster:
    """The stack's preparation with the cluster's executor, databases and broker."""
    stack = embedded.prepare(environ)
    settings = stack.settings
    infra = local_infra.Infra(settings.data_root / "cluster", settings.cluster_postgres_port,
                              settings.cluster_redis_port)
    env = dict(stack.env)
    for key, value in shared_settings().items():
        env.setdefault(key, value)  # an exported AIRFLOW__... still wins, as Airflow's own
    env["AIRFLOW__CORE__EXECUTOR"] = shared_settings()["AIRFLOW__CORE__EXECUTOR"]  # but not this one
    env.update(place_settings(postgres=infra.postgres_address, redis=infra.redis_address,
                              api_server=f"{embedded.API_HOST}:{stack.api_port}",
                              data_root=str(settings.data_root),
                              workers=settings.cluster_workers))
    settings = load_settings(env)  # the app DB is now the cluster's PostgreSQL
    return Cluster(dataclasses.replace(stack, settings=settings, env=env), infra)


def worker_program(cluster: Cluster, number: int) -> Program:
    """Worker ``number`` (1-based). One machine has one log-server port: the first
    worker serves the task logs; the API server reads the others' from the shared
    log folder."""
    stack = cluster.stack
    command, *args = ROLE_COMMANDS["worker"]
    argv = [str(stack.bin_dir / command), *args, "--celery-hostname", worker_hostname(number)]
    if number > 1:
        argv.append("--skip-serve-logs")
    return Program(f"worker-{number}", argv, stack.env)


def programs(cluster: Cluster, *, demo: bool = False, flower: bool = False) -> list[Program]:
    """Every supervised process but PostgreSQL and Redis (``infra.programs``)."""
    stack = cluster.stack
    airflow_parts = []
    for role in AIRFLOW_ROLES:
        command, *args = ROLE_COMMANDS[role]
        airflow_parts.append(Program(role, [str(stack.bin_dir / command), *args], stack.env))
    one_shots = ([Program("demo", [str(stack.bin_dir / "dicom-ops"), "demo"], stack.env,
                          restart=False)] if demo else [])
    if flower:
        command, *args = FLOWER_COMMAND
        airflow_parts.append(Program("flower", [str(stack.bin_dir / command), *args,
                                                "--hostname", embedded.API_HOST,
                                                "--port", str(FLOWER_PORT)], stack.env))
    return [
        *one_shots,
        *airflow_parts,
        *(worker_program(cluster, number) for number in range(1, cluster.workers + 1)),
        *embedded.intake_programs(stack),
        embedded.emulator_program(stack),
    ]


def banner(cluster: Cluster, *, flower: bool = False) -> str:
    """The stack's banner, named a cluster, plus the workers, the databases and the broker."""
    stack = cluster.stack
    text = embedded.banner(stack).replace("dicom-ops embedded stack",
                                          "dicom-ops cluster (CeleryExecutor)")
    workers = ", ".join(worker_hostname(n).replace("@%h", "")
                        for n in range(1, cluster.workers + 1))
    extra = [
        f"  Celery workers  {workers}  (broker redis://{cluster.infra.redis_address}/0)",
        f"  PostgreSQL      {cluster.infra.postgres_address}  (databases airflow, dicom_ops;"
        f" data in {cluster.infra.postgres_data})",
    ]
    if flower:
        extra.append(f"  Flower          http://{embedded.API_HOST}:{FLOWER_PORT}")
    lines = text.split("\n")
    at = next((i for i, line in enumerate(lines) if "Ctrl-C" in line), len(lines))
    return "\n".join(lines[:at] + extra + lines[at:])


def run(*, flower: bool = False) -> int:
    cluster = prepare()
    local_infra.prepare_folders(cluster.infra)
    infrastructure = Supervisor(local_infra.programs(cluster.infra))
    keeper = threading.Thread(target=infrastructure.run,
                              kwargs={"install_signal_handlers": False}, daemon=True)
    keeper.start()
    try:
        local_infra.wait_until_ready(cluster.infra)
        embedded.initialise(cluster.stack)
        dispose_engines()  # an idle pooled connection would hold PostgreSQL's shutdown open
        print(banner(cluster, flower=flower), flush=True)
        demo = embedded.draw_uses_local_emulator(cluster.stack)
        Supervisor(programs(cluster, demo=demo, flower=flower)).run()
    finally:
        infrastructure.stop()
        keeper.join(timeout=60)
    return 0
