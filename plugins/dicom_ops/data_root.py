"""Is the data root this process sees the one its app DB belongs to?

With workers on several hosts every host mounts the data root itself, and a host
that mounted the wrong share, or none at all (an empty local directory at the same
path), would file series and write results where no other process sees them: jobs
that "succeed" into a folder nobody reads. So the data root carries an identity:
``dicom-ops db upgrade`` writes ``<data root>/.dicom-ops-data-root`` (a random id)
and stores the same id in the app DB (``data_root_identity``). The listener and
every worker compare the two when they start and refuse to run, naming both paths
and both ids, when they differ or the marker is missing.

The id lives in a file rather than, say, the filesystem's device number because a
network share has a different device number on every client.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import make_url

from dicom_ops.config import Settings
from dicom_ops.db.models import DataRootIdentity
from dicom_ops.db.session import session_scope
from dicom_ops.files import write_atomically

log = logging.getLogger(__name__)

MARKER_NAME = ".dicom-ops-data-root"


class DataRootMismatch(RuntimeError):
    """The data root seen here is not the app DB's; the message says what to do."""


@dataclass(frozen=True)
class Identity:
    marker_id: str
    path: str


def marker_path(data_root: Path) -> Path:
    return data_root / MARKER_NAME


def read_marker(data_root: Path) -> str | None:
    try:
        return marker_path(data_root).read_text().strip() or None
    except FileNotFoundError:
        return None


def recorded_identity(db_url: str) -> Identity | None:
    with session_scope(db_url) as session:
        row = session.scalars(select(DataRootIdentity).order_by(DataRootIdentity.id)).first()
        return Identity(row.marker_id, row.path) if row else None


def shown_db(db_url: str) -> str:
    """The app DB's URL without its password, for messages."""
    return make_url(db_url).render_as_string(hide_password=True)


def stamp(settings: Settings, *, adopt: bool = False) -> str:
    """Give the data root and the app DB one id (``db upgrade``); returns it.

    Repeating it is harmless. A data root without a marker whose app DB already has an
    id is refused unless ``adopt`` (a restored backup that lost the marker): writing
    a marker there could stamp an empty mount point as the real data root.
    """
    data_root = settings.data_root.resolve()
    on_disk = read_marker(data_root)
    recorded = recorded_identity(settings.db_url)
    if recorded is None:
        marker_id = on_disk or uuid.uuid4().hex
        if on_disk is None and not _write_marker(data_root, marker_id):
            marker_id = read_marker(data_root) or marker_id  # another host was first
        with session_scope(settings.db_url) as session:
            # Row id 1 always: a second host stamping at the same moment fails here.
            session.add(DataRootIdentity(id=1, marker_id=marker_id, path=str(data_root)))
        if on_disk:
            log.warning("app DB %s now belongs to the data root %s (marker %s was already "
                        "there)", shown_db(settings.db_url), data_root, marker_id)
        return marker_id
    if on_disk == recorded.marker_id:
        return on_disk
    if on_disk is None and adopt:
        _write_marker(data_root, recorded.marker_id)
        log.warning("marker %s written into %s (--adopt-data-root)", recorded.marker_id,
                    data_root)
        return recorded.marker_id
    raise DataRootMismatch(_mismatch(settings, data_root, on_disk, recorded)
                           + ("" if on_disk else
                              "; if this folder really is that data root (restored without "
                              "its marker), run `dicom-ops db upgrade --adopt-data-root`"))


def check(settings: Settings) -> str:
    """The data root's id when it is the app DB's; otherwise ``DataRootMismatch``."""
    data_root = settings.data_root.resolve()
    recorded = recorded_identity(settings.db_url)
    if recorded is None:
        raise DataRootMismatch(
            f"the app DB {shown_db(settings.db_url)} has no data root identity yet: run "
            "`dicom-ops db upgrade` once, on a host that has the shared data root mounted")
    on_disk = read_marker(data_root)
    if on_disk != recorded.marker_id:
        raise DataRootMismatch(_mismatch(settings, data_root, on_disk, recorded))
    return on_disk


def _mismatch(settings: Settings, data_root: Path, on_disk: str | None,
              recorded: Identity) -> str:
    seen = (f"has no marker {MARKER_NAME}" if on_disk is None
            else f"is data root {on_disk}")
    return (f"the data root {data_root} seen here {seen}, but the app DB "
            f"{shown_db(settings.db_url)} belongs to data root {recorded.marker_id} "
            f"(created at {recorded.path}): mount the shared data root at "
            f"{data_root} (DICOM_OPS_DATA_ROOT) on this host before starting")


def _write_marker(data_root: Path, marker_id: str) -> bool:
    data_root.mkdir(parents=True, exist_ok=True)
    return write_atomically(marker_path(data_root), f"{marker_id}\n".encode(), overwrite=False,
                     mode=0o644)
