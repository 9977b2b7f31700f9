"""Service folders written by tests: a definition and its modules, in a temporary
services dir, and the settings (and environment) that point at it."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path
from typing import Any

from dicom_ops.config import REPO_ROOT

EXAMPLES = REPO_ROOT / "include" / "services"

# A worker module the ordering and isolation tests share: each job appends its name to
# the item's trace file (in the services dir) and returns what it saw.
RECORDING_WORKER = '''
import json
import time
from pathlib import Path

TRACE = Path(__file__).resolve().parent.parent / "trace.jsonl"


def work(ctx):
    with TRACE.open("a") as trace:
        trace.write(json.dumps({"job": ctx.job, "item": ctx.item_id}) + "\\n")
    if ctx.params.get("fail"):
        raise RuntimeError("this job was told to fail")
    if ctx.params.get("sleep"):
        time.sleep(float(ctx.params["sleep"]))
    return {"job": ctx.job, "params": ctx.params, "modality": str(ctx.headers.Modality)}


def only_ct(headers, params):
    if headers.Modality != "CT":
        return False, "not a CT"
    return {"from_callback": "yes"}
'''


def write_service(services_dir: Path, name: str, jobs: Any, modules: dict[str, str] | None = None,
                  *, file: str = "dcm-processor.json") -> Path:
    folder = services_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    text = jobs if isinstance(jobs, str) else json.dumps(jobs, indent=2)
    (folder / file).write_text(text)
    for module, source in (modules or {"worker": RECORDING_WORKER}).items():
        (folder / f"{module}.py").write_text(textwrap.dedent(source))
    return folder


def copy_example(services_dir: Path, name: str, *, enable: bool = False,
                 params: dict[str, Any] | None = None) -> Path:
    """One of include/services, copied (optionally enabled, with params changed)."""
    folder = services_dir / name
    shutil.copytree(EXAMPLES / name, folder, ignore=shutil.ignore_patterns("__pycache__"))
    definition = folder / "dcm-processor.json"
    jobs = json.loads(definition.read_text())
    for job in jobs:
        if enable:
            job["disabled"] = False
        job["params"] = {**job.get("params", {}), **(params or {})}
    definition.write_text(json.dumps(jobs, indent=2))
    return folder


def trace(services_dir: Path) -> list[dict[str, Any]]:
    path = services_dir / "trace.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def start_storescp(out_dir: Path, port: int, aet: str = "ARCHIVE"):
    """dcmtk's storescp on loopback, storing into ``out_dir``; returns the process (the
    caller stops it). Found by absolute path and banner (``dcmtk.dcmtk_tool``)."""
    import socket
    import subprocess
    import time

    from tests.support.dcmtk import dcmtk_tool

    out_dir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen([dcmtk_tool("storescp"), "-aet", aet, "-od", str(out_dir),
                                str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"storescp exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"storescp did not listen on {port}")


def load_service_dags():
    """The service DAGs as the scheduler would load them from dags/services.py, with the
    settings (DICOM_OPS_SERVICES_DIR) of the environment now."""
    from airflow.dag_processing.dagbag import DagBag
    from dicom_ops.config import get_settings

    get_settings.cache_clear()
    bag = DagBag(dag_folder=str(REPO_ROOT / "dags" / "services.py"))
    assert bag.import_errors == {}
    return bag.dags
