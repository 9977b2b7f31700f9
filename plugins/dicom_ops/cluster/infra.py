"""The native cluster's own PostgreSQL and Redis, on loopback, kept under the data root.

Debian's binaries (packages ``postgresql`` and ``redis-server``) run as supervised
programs like every other part. PostgreSQL keeps its cluster in
``<data root>/cluster/postgres`` so jobs, runs and the data root's identity survive a
restart; it refuses to run as root, so under root the folder belongs to the
``postgres`` system user. Redis keeps an append-only file in ``<data root>/cluster/redis``
so queued tasks survive its restart too.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from dicom_ops.supervisor import Program

HOST = "127.0.0.1"
DATABASES = {"airflow": "airflow", "dicom_ops": "dicom_ops"}  # database -> owner role
POSTGRES_SUPERUSER = "postgres"


class InfraError(RuntimeError):
    """PostgreSQL or Redis cannot be run here; the message says what is missing."""


@dataclass(frozen=True)
class Infra:
    folder: Path  # <data root>/cluster
    postgres_port: int
    redis_port: int

    @property
    def postgres_data(self) -> Path:
        return self.folder / "postgres"

    @property
    def postgres_address(self) -> str:
        return f"{HOST}:{self.postgres_port}"

    @property
    def redis_address(self) -> str:
        return f"{HOST}:{self.redis_port}"


def postgres_bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise InfraError("PostgreSQL's server is not installed (apt-get install postgresql)")


def redis_server() -> str:
    found = shutil.which("redis-server") or ("/usr/bin/redis-server"
                                             if Path("/usr/bin/redis-server").exists() else None)
    if not found:
        raise InfraError("Redis is not installed (apt-get install redis-server)")
    return found


def _run_as() -> list[str]:
    """PostgreSQL refuses root: run it as the Debian package's system user then. setpriv
    execs the server itself (runuser would stay as a parent that kills it on SIGTERM)."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", f"--reuid={POSTGRES_SUPERUSER}", f"--regid={POSTGRES_SUPERUSER}",
            "--init-groups"]


def prepare_folders(infra: Infra) -> None:
    """Create the cluster folders and, on the first start, PostgreSQL's cluster."""
    infra.folder.mkdir(parents=True, exist_ok=True)
    (infra.folder / "redis").mkdir(exist_ok=True)
    if (infra.postgres_data / "PG_VERSION").exists():
        return
    infra.postgres_data.mkdir(mode=0o700, exist_ok=True)
    if os.geteuid() == 0:
        entry = pwd.getpwnam(POSTGRES_SUPERUSER)
        os.chown(infra.postgres_data, entry.pw_uid, entry.pw_gid)
    command = [*_run_as(), str(postgres_bindir() / "initdb"), "-D", str(infra.postgres_data),
               "-U", POSTGRES_SUPERUSER, "--auth=trust", "-E", "UTF8"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        hint = (f" (the user {POSTGRES_SUPERUSER} must be able to reach {infra.postgres_data}:"
                " every folder above it needs o+x)" if os.geteuid() == 0 else "")
        raise InfraError(f"initdb failed{hint}: {result.stderr.strip()[-1500:]}")


def programs(infra: Infra) -> list[Program]:
    postgres = [*_run_as(), str(postgres_bindir() / "postgres"), "-D", str(infra.postgres_data),
                "-p", str(infra.postgres_port), "-h", HOST, "-k", str(infra.postgres_data),
                "-c", "max_connections=300"]
    redis = [redis_server(), "--bind", HOST, "--port", str(infra.redis_port),
             "--dir", str(infra.folder / "redis"), "--appendonly", "yes", "--save", ""]
    return [Program("postgres", postgres), Program("redis", redis)]


def wait_until_ready(infra: Infra, timeout: float = 60.0) -> None:
    """Block until both answer; then create the databases and roles that are missing."""
    deadline = time.monotonic() + timeout
    while not _redis_answers(infra.redis_port):
        if time.monotonic() > deadline:
            raise InfraError(f"Redis did not answer on {infra.redis_address}")
        time.sleep(0.2)
    while True:
        try:
            _create_databases(infra)
            return
        except Exception as exc:  # psycopg2.OperationalError while it starts
            if time.monotonic() > deadline:
                raise InfraError(f"PostgreSQL did not answer on {infra.postgres_address}: "
                                 f"{type(exc).__name__}") from exc
            time.sleep(0.5)


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _create_databases(infra: Infra) -> None:
    import psycopg2

    connection = psycopg2.connect(host=HOST, port=infra.postgres_port, user=POSTGRES_SUPERUSER,
                                  dbname="postgres", connect_timeout=2)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            for database, owner in DATABASES.items():
                cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (owner,))
                if cursor.fetchone() is None:
                    cursor.execute(f'CREATE ROLE "{owner}" LOGIN')
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
                if cursor.fetchone() is None:
                    cursor.execute(f'CREATE DATABASE "{database}" OWNER "{owner}"')
    finally:
        connection.close()
