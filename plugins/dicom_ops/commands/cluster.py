"""`dicom-ops cluster`: the CeleryExecutor deployment on one machine (make cluster)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cluster",
        help="start the distributed deployment natively on 127.0.0.1 (make cluster): "
             "PostgreSQL, Redis, Airflow's parts, Celery workers, listener, emulator")
    parser.add_argument("--flower", action="store_true",
                        help="also start Flower, the Celery monitor, on 127.0.0.1:5555")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from dicom_ops.cli import CommandError
    from dicom_ops.cluster.infra import InfraError
    from dicom_ops.cluster.run import run

    try:
        return run(flower=args.flower)
    except InfraError as exc:
        raise CommandError(str(exc)) from exc
