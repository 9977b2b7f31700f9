"""`dicom-ops worker`: an Airflow Celery worker that first checks the data root.

It is ``airflow celery worker`` with every argument passed through, started only
once the data root this host sees is the app DB's (the marker written by
``dicom-ops db upgrade``): a worker on a host with a wrong or missing mount would
otherwise take tasks and write their files where nobody else can see them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from dicom_ops.cli import CommandError
from dicom_ops.commands._shared import require_own_data_root
from dicom_ops.config import get_settings

# The options of `airflow celery worker` we pass on (the ones a deployment sets).
PASSED_OPTIONS = {"--celery-hostname": "NAME", "--concurrency": "N", "--queues": "QUEUES"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "worker", help="check the data root, then run `airflow celery worker`",
        description="Run an Airflow Celery worker (`airflow celery worker` with the options "
                    "below) after checking that this host sees the app DB's data root.")
    for option, metavar in PASSED_OPTIONS.items():
        parser.add_argument(option, metavar=metavar, help="passed to airflow celery worker")
    parser.add_argument("--skip-serve-logs", action="store_true",
                        help="do not serve task logs (another worker on this host does)")
    parser.set_defaults(func=_run)


def worker_arguments(args: argparse.Namespace) -> list[str]:
    passed = []
    for option in PASSED_OPTIONS:
        value = getattr(args, option.lstrip("-").replace("-", "_"))
        if value is not None:
            passed += [option, value]
    return passed + (["--skip-serve-logs"] if args.skip_serve_logs else [])


def airflow_command() -> str:
    """The `airflow` beside this interpreter (the venv's), else the one on PATH."""
    beside = Path(sys.executable).with_name("airflow")
    found = str(beside) if beside.exists() else shutil.which("airflow")
    if not found:
        raise CommandError("the `airflow` command is not installed here")
    return found


def _run(args: argparse.Namespace) -> int:
    require_own_data_root(get_settings())
    passed = worker_arguments(args)
    airflow = airflow_command()
    sys.stdout.flush()
    os.execv(airflow, [airflow, "celery", "worker", *passed])
    return 0  # not reached: execv replaces this process
