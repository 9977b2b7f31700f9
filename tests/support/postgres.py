"""A throwaway PostgreSQL cluster on a free loopback port (Debian's postgresql binaries).

PostgreSQL refuses to run as root, so under root the cluster belongs to the
``postgres`` system user (created by the Debian package).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "dicom_ops"


class PostgresUnavailable(RuntimeError):
    pass


def postgres_bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[4]))
    for candidate in reversed(candidates):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise PostgresUnavailable("PostgreSQL server binaries not found (apt-get install postgresql)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PostgresServer:
    bindir: Path
    base: Path
    port: int
    run_as: str | None

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg2://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        command = [str(a) for a in args]
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            log = self.base / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise PostgresUnavailable(f"{' '.join(command)} failed: {result.stderr}{tail}")

    def start(self) -> None:
        self._run(self.bindir / "initdb", "-D", self.data_dir, "-U", SUPERUSER,
                  "--auth=trust", "-E", "UTF8", "--no-sync")
        options = f"-p {self.port} -h 127.0.0.1 -k {self.base} -F -c max_connections=200"
        self._run(self.bindir / "pg_ctl", "-D", self.data_dir, "-o", options, "-w",
                  "-l", self.base / "server.log", "start")

    def stop(self) -> None:
        try:
            self._run(self.bindir / "pg_ctl", "-D", self.data_dir, "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def create_database(self, name: str) -> str:
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user=SUPERUSER,
                                      dbname="postgres")
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        connection.close()
        return self.url(name)


def start_postgres() -> PostgresServer:
    bindir = postgres_bindir()
    base = Path(tempfile.mkdtemp(prefix="dicom-ops-pg-"))
    run_as = None
    if os.geteuid() == 0:
        run_as = "postgres"
        entry = pwd.getpwnam(run_as)
        os.chmod(base, 0o755)
        os.chown(base, entry.pw_uid, entry.pw_gid)
    server = PostgresServer(bindir=bindir, base=base, port=free_port(), run_as=run_as)
    server.start()
    return server
