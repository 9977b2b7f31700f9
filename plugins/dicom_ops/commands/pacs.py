"""`dicom-ops pacs echo|query|history`: the PACS query that DAG pacs_query runs, by hand.

The PACS is the Airflow connection named by DICOM_OPS_PACS_CONN (or ``--pacs``). This
command does not import Airflow: it reads the connection from ``AIRFLOW_CONN_<ID>`` when
set, else asks the ``airflow`` command (``airflow connections get``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

from dicom_ops.cli import CommandError
from dicom_ops.config import Settings, get_settings

COLUMNS = (("verdict", "DECISION"), ("study_date", "STUDY DATE"), ("modality", "MOD"),
           ("station", "STATION"), ("study_description", "STUDY"),
           ("series_description", "SERIES"), ("instances", "N"), ("reason", "WHY"))


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("pacs", help="query/retrieve planning CTs from the PACS "
                                                "(as the DAG pacs_query does)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    echo = actions.add_parser("echo", help="C-ECHO the PACS (QIDO-RS for DICOMweb) and our "
                                           "own listener")
    _pacs_option(echo)
    echo.set_defaults(func=_echo)

    query = actions.add_parser(
        "query", help="query the PACS with the filters; retrieve what passes",
        description="Find studies in the date range, then their series, oldest first; skip "
                    "those the filters exclude, those already in the app DB and those still "
                    "arriving; retrieve the rest (at most --max-series). Filters default to "
                    "the DICOM_OPS_PACS_* settings.")
    _pacs_option(query)
    query.add_argument("--dry-run", action="store_true",
                       help="show what would be retrieved and why each series is skipped; "
                            "retrieve and record nothing")
    query.add_argument("--modality", help="modality code (default DICOM_OPS_PACS_MODALITY)")
    query.add_argument("--days-back", type=int, metavar="N",
                       help="studies of the last N days up to today")
    query.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD",
                       help="studies from this date (instead of --days-back)")
    query.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD",
                       help="studies up to this date")
    for name in ("station", "study-description", "series-description"):
        for way in ("include", "exclude"):
            query.add_argument(f"--{name}-{way}", metavar="WORDS",
                               help=f"comma-separated; {way} series whose {name.replace('-', ' ')}"
                                    " contains one (case-insensitive)")
    query.add_argument("--max-series", type=int, metavar="N", help="retrieve at most N series")
    query.add_argument("--json", action="store_true", help="machine-readable output")
    query.set_defaults(func=_query)

    history = actions.add_parser("history", help="the last queries: counts and errors")
    history.add_argument("--limit", type=int, default=20, metavar="N")
    history.add_argument("--json", action="store_true", help="machine-readable output")
    history.set_defaults(func=_history)


def _pacs_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pacs", metavar="CONN_ID",
                        help="the PACS connection (default DICOM_OPS_PACS_CONN)")


def connection_text(conn_id: str, environ=os.environ) -> str:
    """The connection as Airflow's JSON or URI, from the environment or the airflow command."""
    from_env = environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if from_env:
        return from_env
    airflow = shutil.which("airflow") or str(Path(sys.executable).with_name("airflow"))
    if not Path(airflow).exists():
        raise CommandError(f"connection {conn_id!r}: not in AIRFLOW_CONN_{conn_id.upper()} and "
                           "no airflow command to ask")
    result = subprocess.run([airflow, "connections", "get", conn_id, "--output", "json"],
                            capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise CommandError(f"Airflow connection {conn_id!r} not found (airflow connections "
                           f"get: {result.stderr.strip().splitlines()[-1:] or ['failed']})")
    [found] = json.loads(result.stdout)
    found["extra"] = found.get("extra_dejson") or found.get("extra") or {}
    return json.dumps(found)


def _source(settings: Settings, conn_id: str | None):
    from dicom_ops.delivery.connections import ConnectionFields
    from dicom_ops.pacs.source import source_from_fields

    conn_id = conn_id or settings.pacs_conn
    if not conn_id:
        raise CommandError("no PACS configured: set DICOM_OPS_PACS_CONN (or --pacs) to the id "
                           "of a `dicom` or `dicomweb` Airflow connection")
    try:
        return source_from_fields(ConnectionFields.parse(conn_id, connection_text(conn_id)))
    except (ValueError, KeyError) as exc:
        raise CommandError(str(exc)) from exc


def _echo(args: argparse.Namespace) -> int:
    from dicom_ops.pacs.errors import PacsError
    from dicom_ops.pacs.run import check_nodes

    settings = get_settings()
    source = _source(settings, args.pacs)
    try:
        checked = check_nodes(settings, source)
    except PacsError as exc:
        raise CommandError(str(exc)) from exc
    for what in checked:
        print(f"{what}: echo OK")
    return 0


def _query(args: argparse.Namespace) -> int:
    from dicom_ops.commands._shared import require_migrated_db
    from dicom_ops.pacs.errors import PacsError
    from dicom_ops.pacs.filters import filters_from
    from dicom_ops.pacs.run import check_nodes, query, retrieve

    settings = get_settings()
    require_migrated_db(settings)
    overrides = {key: getattr(args, key) for key in (
        "modality", "days_back", "date_from", "date_to", "station_include", "station_exclude",
        "study_description_include", "study_description_exclude",
        "series_description_include", "series_description_exclude", "max_series")}
    try:
        filters = filters_from(settings, **overrides)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    source = _source(settings, args.pacs)
    try:
        check_nodes(settings, source)
        plan = query(settings, source, filters, date.today(), dry_run=args.dry_run)
        report = None if args.dry_run else retrieve(settings, source, plan.query_id)
    except PacsError as exc:
        raise CommandError(str(exc)) from exc
    rows = [{"verdict": d.verdict.value, "study_date": d.series.study_date,
             "modality": d.series.modality, "station": d.series.station_name,
             "study_description": d.series.study_description,
             "series_description": d.series.series_description,
             "instances": d.series.instance_count, "reason": d.reason}
            for d in plan.decisions]
    if args.json:
        print(json.dumps({"query_id": plan.query_id, "summary": plan.summary(),
                          "series": rows}, indent=2))
        return 0
    start, end = filters.study_dates(date.today())
    print(f"PACS {source} ({source.method}), studies {start or '...'} to {end or '...'}, "
          f"modality {filters.modality}, at most {filters.max_series} series"
          + (" [dry run: nothing retrieved]" if args.dry_run else ""))
    _print_table(rows)
    print(plan.summary())
    if report is not None:
        print(report.summary)
    return 0


def _print_table(rows: list[dict]) -> None:
    table = [[title for _, title in COLUMNS]]
    table += [["" if row[key] is None else str(row[key]) for key, _ in COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
              .rstrip())


def _history(args: argparse.Namespace) -> int:
    from dicom_ops.commands._shared import require_migrated_db
    from dicom_ops.db.session import session_scope
    from dicom_ops.pacs.records import history

    settings = get_settings()
    require_migrated_db(settings)
    with session_scope(settings.db_url) as session:
        rows = history(session, args.limit)
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print("no PACS queries yet")
    else:
        for row in rows:
            print(f"{row['started_at']}  {row['summary']}")
    return 0
