"""`dicom-ops jobs list|show|create|cancel|invalidate|resend`: the job queue by hand."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session

from dicom_ops.cli import CommandError
from dicom_ops.config import get_settings
from dicom_ops.db.models import JOB_STATUSES
from dicom_ops.db.session import session_scope
from dicom_ops.jobs import (
    JobError,
    JobStatus,
    SeriesChoice,
    cancel_job,
    create_job,
    invalidate_job,
    parse_range,
    read_instances,
    resend_job,
    select_images,
)
from dicom_ops.jobs.queries import find_series, job_details, list_jobs
from dicom_ops.templates import TemplateError, find_template, load_templates


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("jobs", help="list, show, create, cancel, invalidate, resend jobs")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="jobs, newest first")
    listing.add_argument("--status", choices=JOB_STATUSES, help="only jobs in this status")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=_list)

    show = actions.add_parser("show", help="one job: series, transfer and audit events")
    show.add_argument("job_id", type=int, metavar="ID")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=_show)

    create = actions.add_parser("create", help="queue a job for one or more series")
    create.add_argument("--series", action="append", required=True, metavar="UID[:START:END:DELTA]",
                        help="a series UID, optionally with an image range (default auto); "
                             "repeat for a multi-series job, in order")
    create.add_argument("--template", required=True, metavar="NAME",
                        help="a template name from the templates folder")
    create.add_argument("--priority", type=int, default=0, metavar="P",
                        help="higher runs first (default 0)")
    create.add_argument("--force", action="store_true",
                        help="create even if it duplicates a job or mixes studies")
    create.add_argument("--json", action="store_true", help="print the new job as JSON")
    create.set_defaults(func=_create)

    for name, help_text, func in (
        ("cancel", "cancel a job that is still in_queue", _cancel),
        ("invalidate", "mark a finished job's result as not to be used", _invalidate),
        ("resend", "send a job's series again (a new forced job)", _resend),
    ):
        action = actions.add_parser(name, help=help_text)
        action.add_argument("job_id", type=int, metavar="ID")
        action.set_defaults(func=func)


@contextmanager
def _app_db() -> Iterator[Session]:
    """A session on the app DB; job rule refusals and DB trouble become one clear line."""
    try:
        with session_scope(get_settings().db_url) as session:
            yield session
    except JobError as exc:
        raise CommandError(str(exc)) from None
    except (OperationalError, ProgrammingError) as exc:
        first_line = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise CommandError(f"app DB error ({first_line}); is it migrated? "
                           "run: dicom-ops db upgrade") from None


def _list(args: argparse.Namespace) -> int:
    with _app_db() as session:
        jobs = list_jobs(session, args.status)
    if args.json:
        print(json.dumps(jobs, indent=2))
        return 0
    if not jobs:
        print("no jobs" + (f" with status {args.status}" if args.status else ""))
        return 0
    print(f"{'ID':>6}  {'STATUS':<11}  {'PRIO':>4}  {'TEMPLATE':<24}  {'SERIES':>6}  "
          f"{'CREATED (UTC)':<19}  STAGE / ERROR")
    for job in jobs:
        note = job["error"] or job["stage"] or ""
        if job["status"] == JobStatus.FAILED and job["stage"]:
            note = f"{job['stage']}: {job['error']}"
        created = (job["created_at"] or "").replace("T", " ")[:19]
        line = (f"{job['id']:>6}  {job['status']:<11}  {job['priority']:>4}  "
                f"{_cut(job['template'], 24):<24}  {len(job['series']):>6}  {created:<19}  {note}")
        print(line.rstrip())
    return 0


def _show(args: argparse.Namespace) -> int:
    with _app_db() as session:
        job = job_details(session, args.job_id)
    if args.json:
        print(json.dumps(job, indent=2))
        return 0
    print(f"job {job['id']}")
    for label, key in (("status", "status"), ("template", "template"), ("priority", "priority"),
                       ("forced", "forced"), ("resend of", "resend_of"),
                       ("claimed by", "claimed_by"), ("stage", "stage"), ("error", "error"),
                       ("created", "created_at"), ("started", "started_at"),
                       ("finished", "finished_at"), ("turnaround s", "turnaround_seconds")):
        value = job[key]
        if isinstance(value, bool):
            value = "yes" if value else "no"
        print(f"  {label + ':':<14}{'-' if value is None else value}")
    print("series (in job order):")
    for series in job["series"]:
        print(f"  {series['position'] + 1}. {series['series_uid']}  range {series['range']}  "
              f"(study {series['study_uid']})")
    transfer = job["transfer"]
    print("transfer:" + ("  none" if transfer is None else ""))
    for key, value in (transfer or {}).items():
        if value is not None:
            print(f"  {key + ':':<18}{value}")
    print("events:")
    for event in job["events"]:
        print(f"  {event['at']}  {event['actor']:<12}  {event['kind']:<11}  {event['message']}")
    return 0


def _create(args: argparse.Namespace) -> int:
    settings = get_settings()
    template = _template_named(settings.templates_dir, args.template)
    requested = [_parse_series_argument(text) for text in args.series]
    with _app_db() as session:
        choices = []
        for uid, image_range in requested:
            series = find_series(session, uid)
            _check_images(Path(series.folder), image_range, uid)
            choices.append(SeriesChoice(series.id, image_range))
        job = create_job(session, template=template, series=choices, priority=args.priority,
                         force=args.force, actor="cli")
        created = job_details(session, job.id)
    if args.json:
        print(json.dumps(created, indent=2))
    else:
        print(f"created job {created['id']} ({created['template']}, "
              f"{len(created['series'])} series, priority {created['priority']})")
    return 0


def _cancel(args: argparse.Namespace) -> int:
    return _change(args.job_id, lambda s, i: cancel_job(s, i, actor="cli"), "cancelled")


def _invalidate(args: argparse.Namespace) -> int:
    return _change(args.job_id, lambda s, i: invalidate_job(s, i, actor="cli"), "invalidated")


def _resend(args: argparse.Namespace) -> int:
    with _app_db() as session:
        job = resend_job(session, args.job_id, actor="cli")
        new_id = job.id
    print(f"created job {new_id} (resend of job {args.job_id})")
    return 0


def _change(job_id: int, action: Callable[[Session, int], Any], done: str) -> int:
    with _app_db() as session:
        action(session, job_id)
    print(f"job {job_id} {done}")
    return 0


def _template_named(folder: Path, name: str) -> str:
    try:
        templates = load_templates(folder)
    except TemplateError as exc:
        raise CommandError(f"templates cannot be loaded: {exc}") from None
    template = find_template(templates, name)
    if template is None:
        known = ", ".join(t.name for t in templates) or "none"
        raise CommandError(f"no template named {name!r} in {folder} (known: {known})")
    return template.name


def _parse_series_argument(text: str) -> tuple[str, Any]:
    uid, _, range_part = text.strip().partition(":")
    if not uid:
        raise CommandError(f"--series {text!r}: expected UID or UID:START:END:DELTA")
    try:
        return uid, parse_range(range_part)
    except JobError as exc:
        raise CommandError(f"--series {uid}: {exc}") from None


def _check_images(folder: Path, image_range: Any, uid: str) -> None:
    """When the series' files are here, refuse a range they cannot satisfy now, not later."""
    if not folder.is_dir():
        return
    instances = read_instances(folder)
    try:
        if image_range is None:
            select_images(instances)
        else:
            select_images(instances, image_range.start, image_range.end, image_range.delta)
    except JobError as exc:
        raise CommandError(f"--series {uid}: {exc}") from None


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
