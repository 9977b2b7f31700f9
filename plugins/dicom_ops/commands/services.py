"""`dicom-ops services list|check|run|runs`: the installed services, checking a service
folder before installing it, running one service for one item now, and the records of
what the services did."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from dicom_ops.cli import CommandError
from dicom_ops.commands._shared import require_migrated_db
from dicom_ops.config import get_settings
from dicom_ops.db.session import session_scope
from dicom_ops.services import (
    ServiceDefinition,
    ServiceDefinitionError,
    ServiceEvent,
    find_service,
    installed_services,
    load_service,
)
from dicom_ops.services.events import claim_item, item_now
from dicom_ops.services.nodes import node_from_environment
from dicom_ops.services.runner import run_item
from dicom_ops.services.runs import RunStatus, list_runs


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("services", help="services (dcm-processor definitions): "
                                                    "list, check, run, runs")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="installed services: jobs, events, run order, "
                                              "and the problems of broken ones")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=_list)
    check = actions.add_parser("check", help="validate a service folder before installing it")
    check.add_argument("folder", type=Path, metavar="DIR")
    check.set_defaults(func=_check)
    run = actions.add_parser("run", help="run one service for one item now, in this process")
    run.add_argument("name", metavar="NAME")
    which = run.add_mutually_exclusive_group(required=True)
    which.add_argument("--series", metavar="UID", help="a series (series_ready jobs, or with "
                                                       "--event study_ready its study)")
    which.add_argument("--study", metavar="UID", help="a study (study_ready jobs)")
    which.add_argument("--job", type=int, metavar="ID",
                       help="a job whose RTSTRUCT was delivered (rtstruct_delivered jobs)")
    run.add_argument("--event", choices=[e.value for e in ServiceEvent],
                     help="which event's jobs to run (default: from the item given)")
    run.add_argument("--json", action="store_true", help="machine-readable output")
    run.set_defaults(func=_run)
    runs = actions.add_parser("runs", help="what services did, newest first")
    runs.add_argument("--service", metavar="NAME", help="only this service")
    runs.add_argument("--limit", type=int, default=50, help="at most this many rows (50)")
    runs.add_argument("--json", action="store_true", help="machine-readable output")
    runs.set_defaults(func=_runs)


def definition_as_dict(definition: ServiceDefinition) -> dict[str, Any]:
    return {
        "name": definition.name, "dag_id": definition.dag_id, "file": str(definition.file),
        "legacy": definition.legacy, "events": [str(e) for e in definition.events],
        "notes": list(definition.notes),
        "jobs": [{"jobName": job.job_name, "kind": str(job.kind),
                  "events": [str(e) for e in job.events], "dependsOn": list(job.depends_on),
                  "sortPosition": job.sort_position, "priority": job.priority,
                  "timeout": job.timeout, "disabled": job.disabled,
                  "workerEntry": job.worker_entry, "registryEntry": job.registry_entry}
                 for job in definition.jobs],
    }


def _print_definition(definition: ServiceDefinition) -> None:
    events = ", ".join(str(e) for e in definition.events) or "none (every job disabled)"
    legacy = " (legacy settings.json)" if definition.legacy else ""
    print(f"{definition.name}  DAG {definition.dag_id}  on {events}{legacy}")
    for number, job in enumerate(definition.jobs, start=1):
        extras = [str(job.kind), "on " + ",".join(str(e) for e in job.events),
                  f"priority {job.priority}"]
        if job.depends_on:
            extras.append("after " + ",".join(job.depends_on))
        if job.timeout:
            extras.append(f"timeout {job.timeout}s")
        if job.registry_entry:
            extras.append(f"callback {job.registry_entry}")
        if job.disabled:
            extras.append("DISABLED")
        print(f"  {number}. {job.job_name}  ({'; '.join(extras)})")
    for note in definition.notes:
        print(f"  note: {note}")


def _list(args: argparse.Namespace) -> int:
    services = installed_services(get_settings().services_dir)
    if args.json:
        print(json.dumps([definition_as_dict(s.definition) if s.definition else
                          {"name": s.name, "dag_id": s.dag_id, "problems": list(s.problems)}
                          for s in services], indent=2))
        return 0
    if not services:
        print(f"no services in {get_settings().services_dir}")
    for service in services:
        if service.definition:
            _print_definition(service.definition)
            continue
        print(f"{service.name}  DAG {service.dag_id}  BROKEN")
        for problem in service.problems:
            print(f"  - {problem}")
    return 0


def _check(args: argparse.Namespace) -> int:
    folder = args.folder
    if not folder.is_dir():
        raise CommandError(f"{folder}: not a directory")
    try:
        definition = load_service(folder.resolve())
    except ServiceDefinitionError as exc:
        print(f"{folder}: {len(exc.problems)} problem(s)")
        for problem in exc.problems:
            print(f"  - {problem}")
        return 1
    _print_definition(definition)
    print("ok: the definition is valid and every entry point loads")
    return 0


def _run(args: argparse.Namespace) -> int:
    settings = get_settings()
    require_migrated_db(settings)
    try:
        definition = find_service(settings.services_dir, args.name)
    except KeyError as exc:
        raise CommandError(str(exc.args[0])) from None
    except ServiceDefinitionError as exc:
        raise CommandError(f"service {args.name} is broken: {exc}") from None
    event = args.event or ("rtstruct_delivered" if args.job is not None
                           else "study_ready" if args.study else "series_ready")
    if not definition.jobs_for(event):
        raise CommandError(f"service {args.name} has no enabled job on {event}")
    with session_scope(settings.db_url) as session:
        try:
            item = item_now(session, event, series_uid=args.series, study_uid=args.study,
                            job_id=args.job)
        except LookupError as exc:
            raise CommandError(str(exc)) from None
        item_id = claim_item(session, definition.name, item)
    outcomes = run_item(settings, definition, item_id, event, nodes=node_from_environment)
    if args.json:
        print(json.dumps({"service": definition.name, "item_id": item_id, "event": event,
                          "jobs": [{"job": name, "status": str(o.status), "reason": o.reason,
                                    "result": o.result} for name, o in outcomes]}, indent=2))
    else:
        print(f"service {definition.name}, item {item_id} ({event}):")
        for name, outcome in outcomes:
            detail = outcome.reason or (json.dumps(outcome.result) if outcome.result else "")
            print(f"  {name}: {outcome.status}{'  ' + detail if detail else ''}")
    return 1 if any(o.status is RunStatus.FAILED for _, o in outcomes) else 0


def _runs(args: argparse.Namespace) -> int:
    settings = get_settings()
    require_migrated_db(settings)
    with session_scope(settings.db_url) as session:
        rows = list_runs(session, args.service, args.limit)
    if args.json:
        print(json.dumps([{**row.__dict__, "started_at": row.started_at.isoformat(),
                           "ended_at": row.ended_at.isoformat() if row.ended_at else None}
                          for row in rows], indent=2))
        return 0
    if not rows:
        print("no service runs")
        return 0
    for row in rows:
        item = (f"job #{row.job_id}" if row.event == "rtstruct_delivered"
                else f"series #{row.series_id}")
        detail = row.reason or (json.dumps(row.result) if row.result else "")
        print(f"{row.started_at:%Y-%m-%d %H:%M:%S}  {row.service}/{row.job_name}  item "
              f"{row.item_id} ({row.event}, {item})  {row.status}  {detail}".rstrip())
    return 0
