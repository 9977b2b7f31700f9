"""From claimed ready series to jobs: one template per series, or a visible reason why not.

For each claimed series we read one image header (no pixels), match the
templates and then either create the job (the duplicate rule applies; a
duplicate is not an error: the series is done and names the existing job) or
leave the series in a state that ``dicom-ops series list`` shows:

- ``ignored`` / ``no template``: no template's rules hold;
- ``ignored`` / ``no image to segment``: only localizers or non-image objects;
- ``error`` / ``conflict: A, B``: two or more templates tie at the top priority;
- ``error`` / ``no readable DICOM file``: nothing in the folder could be read.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from dicom_ops.db.models import Series
from dicom_ops.db.session import session_scope
from dicom_ops.intake import series_lifecycle
from dicom_ops.intake.series_lifecycle import SeriesState, is_claimed
from dicom_ops.jobs.claims import claim_ready_series
from dicom_ops.jobs.create import SeriesChoice, create_job
from dicom_ops.jobs.errors import DuplicateJob, JobError
from dicom_ops.jobs.ranges import is_localizer
from dicom_ops.templates import Template, headers_from_dataset, match_template, rule_tags

log = logging.getLogger(__name__)

NO_TEMPLATE = "no template"
NO_IMAGE = "no image to segment"
UNREADABLE = "no readable DICOM file"


@dataclass(frozen=True)
class SeriesHeaders:
    """What planning learned from a series folder: the headers of its first image, if any."""

    headers: dict[str, Any] | None
    readable: bool  # at least one DICOM file could be read


def plan_series(session: Session, series_id: int, templates: Sequence[Template], *,
                actor: str = "planner") -> int | None:
    """Match one claimed series and create its job; the new job's id, or None (see module)."""
    series = series_lifecycle.locked(session, series_id=series_id)
    if series is None:
        raise JobError(f"no series #{series_id} in the app DB")
    if not is_claimed(series.state):
        raise JobError(f"series #{series_id} is {series.state}: only claimed series are planned")
    found = read_series_headers(Path(series.folder), sorted(rule_tags(templates)))
    if found.headers is None:
        state, detail = ((SeriesState.IGNORED, NO_IMAGE) if found.readable
                         else (SeriesState.ERROR, UNREADABLE))
        return _settle(session, series, state, detail, actor=actor)
    match = match_template(found.headers, templates)
    if match.winner is None:
        state = SeriesState.ERROR if match.conflict else SeriesState.IGNORED
        return _settle(session, series, state, match.state_detail or NO_TEMPLATE, actor=actor)
    try:
        job = create_job(session, template=match.winner.name, series=[SeriesChoice(series.id)],
                         actor=actor)
    except DuplicateJob as duplicate:
        return _settle(session, series, SeriesState.DONE,
                       f"duplicate of job {duplicate.existing_job_id}", actor=actor)
    _settle(session, series, SeriesState.DONE, f"job {job.id} ({match.winner.name})",
            actor=actor)
    return job.id


def plan_ready_series(url_or_engine: str | Engine, templates: Sequence[Template], *,
                      limit: int = 50, actor: str = "planner") -> list[int]:
    """Claim up to ``limit`` ready series and plan each in its own transaction; new job ids."""
    job_ids = []
    for series_id in claim_ready_series(url_or_engine, limit, actor=actor):
        with session_scope(url_or_engine) as session:
            job_id = plan_series(session, series_id, templates, actor=actor)
        if job_id is not None:
            job_ids.append(job_id)
    return job_ids


def read_series_headers(folder: Path, keywords: Sequence[str] | None = None) -> SeriesHeaders:
    """Headers of the first image (by file name) that is not a localizer; no pixel data."""
    readable = False
    if not folder.is_dir():
        return SeriesHeaders(None, False)
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        try:
            dataset = dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError, EOFError, ValueError):
            continue
        readable = True
        if "Rows" not in dataset or is_localizer(dataset):
            continue
        return SeriesHeaders(headers_from_dataset(dataset, keywords), True)
    return SeriesHeaders(None, readable)


def _settle(session: Session, series: Series, state: SeriesState, detail: str, *,
            actor: str) -> None:
    series_lifecycle.move(session, series, state, detail=detail, event="planned",
                          message=f"{state}: {detail}", actor=actor)
    log.info("series #%s planned: %s (%s)", series.id, state, detail)
    return None

