"""The embedded stack behind `make run`: Airflow standalone on SQLite, the DICOM
listener and the DRAW emulator, all on 127.0.0.1, supervised as one group.

Everything it generates lives under the data root (default ``./var``): the
installation secret, the emulator's token, Airflow's home, and ``env.sh`` which
a shell can source to run the ``airflow`` and ``dicom-ops`` CLIs against the
same installation.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from dicom_ops.config import REPO_ROOT, Settings, load_settings
from dicom_ops.data_root import stamp
from dicom_ops.db.session import upgrade
from dicom_ops.files import keep_secret
from dicom_ops.supervisor import Program, Supervisor

log = logging.getLogger("dicom_ops.stack")

API_HOST = EMULATOR_HOST = "127.0.0.1"
DEFAULT_API_PORT = 8080
DRAW_CLIENT_ID = "dicom-ops"
# Where the Airflow UI shows the jobs page (its nav entry's route, plugin dicom_ops.airflow.ui);
# the stack cannot import the plugin (it would import Airflow), so the path is written here.
JOBS_PAGE_PATH = "/plugin/dicom-jobs"
# Airflow's LocalExecutor with the DAG files' imports loaded before it forks its workers, so
# a task does not spend its first second importing them (dicom_ops.airflow.executors).
# Named by import path, like the page above; an exported AIRFLOW__CORE__EXECUTOR still wins.
EXECUTOR = "dicom_ops.airflow.executors.preloading.PreloadingLocalExecutor"


@dataclass(frozen=True)
class Stack:
    settings: Settings
    env: dict[str, str]
    emulator_token: str
    emulator_refresh_token: str

    @property
    def api_port(self) -> int:
        return int(self.env["AIRFLOW__API__PORT"])

    @property
    def emulator_url(self) -> str:
        return f"http://{EMULATOR_HOST}:{self.settings.emulator_port}"

    @property
    def airflow_home(self) -> Path:
        return Path(self.env["AIRFLOW_HOME"])

    @property
    def bin_dir(self) -> Path:
        return Path(sys.executable).parent


CLI_COMMANDS = ("airflow", "dicom-ops")


def cli_folder(data_root: Path) -> Path:
    """``<data root>/bin``: links to the venv's ``airflow`` and ``dicom-ops``, nothing else."""
    folder = data_root / "bin"
    folder.mkdir(parents=True, exist_ok=True)
    venv_bin = Path(sys.executable).parent
    for name in CLI_COMMANDS:
        link = folder / name
        if link.is_symlink() and os.readlink(link) == str(venv_bin / name):
            continue
        temporary = folder / f".{name}.{os.getpid()}.link"
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(venv_bin / name)
        os.replace(temporary, link)  # atomic: a second `make run` never sees no link
    return folder


def prepare(environ: dict[str, str] | None = None) -> Stack:
    """Environment of every process of the embedded stack."""
    env = dict(os.environ if environ is None else environ)
    data_root = Path(env.get("DICOM_OPS_DATA_ROOT", "./var")).resolve()
    env["DICOM_OPS_DATA_ROOT"] = str(data_root)
    env.setdefault("DICOM_OPS_SECRET_KEY", keep_secret(data_root / "secret_key"))
    settings = load_settings(env)  # fails here, before anything starts, on a bad setting
    env["DICOM_OPS_DB_URL"] = settings.db_url
    # `airflow standalone` starts its parts by the bare name `airflow`, and users of
    # var/env.sh want `dicom-ops`; but the venv's bin also holds pynetdicom's `storescu`,
    # `storescp`, `echoscu`... which would shadow dcmtk's. So PATH gets a folder of links
    # to exactly our two commands, not the venv's bin.
    env["PATH"] = str(cli_folder(data_root)) + os.pathsep + env.get("PATH", "")
    airflow_home = data_root / "airflow"
    api_port = int(env.get("AIRFLOW__API__PORT", DEFAULT_API_PORT))  # tests pick a free one
    env.update({
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{API_HOST}:{api_port}/execution/",
        "AIRFLOW__API__HOST": API_HOST,
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API_AUTH__JWT_SECRET": keep_secret(data_root / "airflow_jwt_secret"),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR": "True",
    })
    env.setdefault("AIRFLOW__CORE__EXECUTOR", EXECUTOR)
    return Stack(
        settings=settings,
        env=env,
        emulator_token=keep_secret(data_root / "emulator" / "access_token"),
        emulator_refresh_token=keep_secret(data_root / "emulator" / "refresh_token"),
    )


def connections(stack: Stack) -> dict[str, dict]:
    """The Airflow connections the pipelines use, pointing at the embedded services."""
    return {
        "draw_default": {
            "conn_type": "http",
            "host": EMULATOR_HOST,
            "port": stack.settings.emulator_port,
            "schema": "http",
            "password": stack.emulator_token,
            "description": "DRAW server (here: the local emulator)",
            "extra": json.dumps({
                "refresh_token": stack.emulator_refresh_token,
                "client_id": DRAW_CLIENT_ID,
                "verify": True,
            }),
        },
        "dicom_ops_db": {
            "conn_type": "generic",
            "description": "dicom-ops app DB (SQLAlchemy URL in extra)",
            "extra": json.dumps({"sqlalchemy_url": stack.settings.db_url}),
        },
    }


def pools(stack: Stack) -> dict[str, dict]:
    return {
        "draw_upload": {
            "slots": stack.settings.upload_slots,
            "description": "concurrent uploads to the DRAW server",
            "include_deferred": False,
        },
    }


def _airflow(stack: Stack, *args: str) -> str:
    command = [str(stack.bin_dir / "airflow"), *args]
    result = subprocess.run(command, env=stack.env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"`airflow {' '.join(args)}` failed:\n{result.stderr[-3000:]}")
    return result.stdout


def draw_uses_local_emulator(stack: Stack) -> bool:
    """Whether `draw_default` (as stored in Airflow, perhaps edited since) is our emulator."""
    listed = json.loads(_airflow(stack, "connections", "get", "draw_default", "-o", "json"))
    connection = listed[0] if isinstance(listed, list) else listed
    return (connection.get("host") == EMULATOR_HOST
            and int(connection.get("port") or 0) == stack.settings.emulator_port)


def initialise(stack: Stack) -> None:
    """Migrate both DBs and (re)create connections and pools: safe to repeat."""
    stack.airflow_home.mkdir(parents=True, exist_ok=True)
    log.info("migrating the app DB")
    upgrade(stack.settings.db_url)
    stamp(stack.settings)  # the listener (and, in a cluster, each worker) checks it at start
    log.info("migrating the Airflow metadata DB (first start takes a minute)")
    _airflow(stack, "db", "migrate")
    generated = stack.airflow_home / "generated"
    generated.mkdir(exist_ok=True)
    connections_file = generated / "connections.json"
    connections_file.write_text(json.dumps(connections(stack), indent=2))
    os.chmod(connections_file, 0o600)
    # Without --overwrite: a connection an operator edited (e.g. draw_default pointed at a
    # real DRAW server) is kept across restarts.
    _airflow(stack, "connections", "import", str(connections_file))
    pools_file = generated / "pools.json"
    pools_file.write_text(json.dumps(pools(stack), indent=2))
    _airflow(stack, "pools", "import", str(pools_file))
    write_env_file(stack)


def write_env_file(stack: Stack) -> Path:
    """``var/env.sh``: source it to use the airflow and dicom-ops CLIs on this stack."""
    keys = [k for k in stack.env if k.startswith(("AIRFLOW", "DICOM_OPS_"))] + ["PATH"]
    lines = [f"export {k}={shlex.quote(stack.env[k])}" for k in sorted(keys)]
    path = stack.settings.data_root / "env.sh"
    path.write_text("# generated by `make run`; source it in a shell\n" + "\n".join(lines) + "\n")
    os.chmod(path, 0o600)
    return path


def log_folder(stack: Stack) -> Path:
    """``<data root>/logs``: the output of the processes too chatty for the console."""
    return stack.settings.data_root / "logs"


def programs(stack: Stack, *, demo: bool = False) -> list[Program]:
    """The supervised processes. Adding a process is one line here.

    Airflow's own output (every scheduler loop, every API request) and the emulator's
    request log go to files under ``logs/``; the console keeps our processes and
    ``events``, one line per series and job event, so a new user can follow the demo.
    """
    dicom_ops = str(stack.bin_dir / "dicom-ops")
    logs = log_folder(stack)
    one_shots = [Program("demo", [dicom_ops, "demo"], stack.env, restart=False)] if demo else []
    return one_shots + [
        Program("airflow", [str(stack.bin_dir / "airflow"), "standalone"], stack.env,
                log_file=logs / "airflow.log"),
        Program("events", [dicom_ops, "events", "--follow", "--new"], stack.env),
        *intake_programs(stack),
        emulator_program(stack),
    ]


def intake_programs(stack: Stack) -> list[Program]:
    """The listener, and the watcher when watch folders are set (the cluster runs them too)."""
    dicom_ops = str(stack.bin_dir / "dicom-ops")
    return [
        Program("listener", [dicom_ops, "listener"], stack.env),
        *([Program("watcher", [dicom_ops, "watcher"], stack.env)]
          if stack.settings.watch_folders else []),
    ]


def emulator_program(stack: Stack) -> Program:
    return Program("emulator", [str(stack.bin_dir / "dicom-ops"), "emulator",
                                "--host", EMULATOR_HOST,
                                "--port", str(stack.settings.emulator_port),
                                "--delay", str(stack.settings.emulator_delay_seconds),
                                "--data-dir", str(stack.settings.data_root / "emulator")],
                   stack.env, log_file=log_folder(stack) / "emulator.log")


def banner(stack: Stack) -> str:
    password_file = stack.airflow_home / "simple_auth_manager_passwords.json.generated"
    settings = stack.settings
    return "\n".join([
        "",
        "dicom-ops embedded stack",
        f"  Airflow UI      http://{API_HOST}:{stack.api_port}  (user admin; password in {password_file})",
        f"  DICOM jobs page http://{API_HOST}:{stack.api_port}{JOBS_PAGE_PATH}"
        f"  (in the UI's navigation: DICOM jobs)",
        f"  Airflow's log   {log_folder(stack) / 'airflow.log'}",
        f"  DICOM listener  {settings.listener_host}:{settings.listener_port}"
        f"  AE title {settings.ae_title}",
        f"  DRAW emulator   {stack.emulator_url}",
        f"  data root       {settings.data_root}",
        f"  CLI environment source {settings.data_root / 'env.sh'}",
        "  Ctrl-C stops everything.",
        "",
    ])


def run() -> int:
    stack = prepare()
    initialise(stack)
    print(banner(stack), flush=True)
    Supervisor(programs(stack, demo=draw_uses_local_emulator(stack))).run()
    return 0
