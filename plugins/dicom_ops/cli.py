"""The ``dicom-ops`` command. Each module in ``dicom_ops.commands`` adds its subcommands."""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence

from dicom_ops import commands
from dicom_ops.config import SettingsError, get_settings


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit status 1."""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``command``, only that command's module is imported (fast start)."""
    parser = argparse.ArgumentParser(
        prog="dicom-ops",
        description="DICOM autosegmentation pipelines on Apache Airflow.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    names = sorted(module.name for module in pkgutil.iter_modules(commands.__path__)
                   if not module.name.startswith("_"))
    for name in [command] if command in names else names:
        importlib.import_module(f"{commands.__name__}.{name}").register(subparsers)
    return parser


def _configured_log_level() -> str:
    """DICOM_OPS_LOG_LEVEL; a bad settings environment is reported by the command itself."""
    try:
        return get_settings().log_level
    except SettingsError:
        return "INFO"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    parser = build_parser(command)
    args = parser.parse_args(argv)
    level = "DEBUG" if args.verbose else _configured_log_level()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # start-up chatter
    # pynetdicom logs every association and C-STORE at INFO.
    logging.getLogger("pynetdicom").setLevel(level if level == "DEBUG" else logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except (CommandError, SettingsError) as exc:
        print(f"dicom-ops {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    # Under `python -m`, this file is `__main__`; the command modules raise the
    # CommandError of `dicom_ops.cli`, so run that module's main.
    from dicom_ops.cli import main as package_main

    sys.exit(package_main())
