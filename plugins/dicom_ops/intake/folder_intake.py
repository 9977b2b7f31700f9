"""Register a finished folder written by another program (used by the watcher and the queue).

The folder is read, never changed: its DICOM files are grouped by series and each
series is linked (or copied, across filesystems) into the datastore the same way
the listener files instances, so ``Series.folder`` always holds exactly one series,
one file per SOP instance. ``Series.origin_folder`` is the dropped folder, where
results go back. Non-DICOM files are counted and left alone; DICOM files that
cannot be filed (no or invalid UIDs, unparsable) are counted and copied to the
quarantine with a reason. The folder is recorded in ``intake_folder`` in the same
transaction that marks its series ready, so it is registered exactly once.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from dicom_ops.config import Settings
from dicom_ops.db.models import IntakeFolder
from dicom_ops.db.session import session_scope
from dicom_ops.failures import log_failure
from dicom_ops.files import link_or_copy_atomically
from dicom_ops.intake import datastore, series_registry
from dicom_ops.intake.headers import InstanceHeader, NotDicom, UnusableInstance, header_from_file
from dicom_ops.intake.quarantine import quarantine
from dicom_ops.intake.storage import instance_filename

log = logging.getLogger("dicom_ops.folder_intake")


@dataclass
class FolderReport:
    """What registering one folder did; ids and counts only (safe for logs and XCom)."""

    folder_id: int | None = None
    series_ids: list[int] = field(default_factory=list)
    instances: int = 0
    non_dicom: int = 0
    unusable: int = 0
    already_registered: bool = False

    def as_dict(self) -> dict[str, object]:
        return {"folder_id": self.folder_id, "series_ids": self.series_ids,
                "instances": self.instances, "non_dicom": self.non_dicom,
                "unusable": self.unusable}


def normalised(folder: Path) -> Path:
    """The form of a folder path stored in ``intake_folder`` (absolute, symlinks kept)."""
    return Path(os.path.abspath(folder))


def registered_paths(session, folders: list[Path]) -> set[str]:
    """Which of ``folders`` are registered already (one indexed query per 500)."""
    found: set[str] = set()
    names = [str(normalised(f)) for f in folders]
    for start in range(0, len(names), 500):
        chunk = names[start:start + 500]
        found.update(session.scalars(select(IntakeFolder.path).where(IntakeFolder.path.in_(chunk))))
    return found


def is_registered(engine: Engine, folder: Path) -> bool:
    with session_scope(engine) as session:
        return bool(registered_paths(session, [folder]))


def register_folder(settings: Settings, engine: Engine, folder: Path, *,
                    source: str) -> FolderReport:
    """Import ``folder``'s series into the datastore and mark them ready, once."""
    folder = normalised(folder)
    report = FolderReport()
    if is_registered(engine, folder):
        report.already_registered = True
        return report
    groups: dict[str, tuple[InstanceHeader, list[tuple[Path, str]]]] = {}
    for path in _files(folder):
        try:
            header = header_from_file(path)
        except NotDicom:
            report.non_dicom += 1
            continue
        except (UnusableInstance, OSError) as exc:
            report.unusable += 1
            _quarantine_copy(settings, path, folder, source, exc)
            continue
        groups.setdefault(header.series_uid, (header, []))[1].append((path, header.sop_uid))

    imported = []
    for header, items in groups.values():
        final = datastore.series_folder(settings.datastore_dir, header.study_uid,
                                        header.series_uid)
        round_folder = datastore.new_round_folder(final)
        stored = sum(link_or_copy_atomically(path, round_folder / instance_filename(sop))
                     for path, sop in items)
        report.instances += stored
        imported.append((header, final, datastore.finish_round(round_folder, final)))

    try:
        with session_scope(engine) as session:
            row = IntakeFolder(
                path=str(folder), source=source, state="registered" if imported else "empty",
                series_count=len(imported), instance_count=report.instances,
                non_dicom_count=report.non_dicom, unusable_count=report.unusable)
            session.add(row)
            session.flush()
            report.folder_id = row.id
            for header, final, count in imported:
                series_id, became_ready = series_registry.register_ready_series(
                    session, header, final_folder=final, origin_folder=folder, source=source,
                    instance_count=count, detail=f"from folder #{row.id} ({source})")
                if became_ready:
                    report.series_ids.append(series_id)
    except IntegrityError:  # registered by another process meanwhile; our links were no-ops
        report.already_registered = True
        return report
    _log_report(report, source)
    return report


def _files(folder: Path) -> list[Path]:
    found = []
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        found.extend(Path(root) / name for name in sorted(names))
    return found


def _quarantine_copy(settings: Settings, path: Path, folder: Path, source: str,
                     exc: Exception) -> None:
    reason = exc.reason if isinstance(exc, UnusableInstance) else f"cannot read ({exc.strerror})"
    try:
        data = path.read_bytes()
        quarantine(settings.quarantine_dir, [data], reason,
                   {"source": source, "folder": folder, "file": path.relative_to(folder),
                    "note": "a copy; the original is left in its folder"})
    except OSError:
        log_failure(log, "could not copy an unusable file to the quarantine")


def _log_report(report: FolderReport, source: str) -> None:
    skipped = []
    if report.non_dicom:
        skipped.append(f"{report.non_dicom} non-DICOM files ignored")
    if report.unusable:
        skipped.append(f"{report.unusable} unusable DICOM files quarantined")
    tail = f"; {', '.join(skipped)}" if skipped else ""
    if report.series_ids or report.instances:
        series = ", ".join(f"#{i}" for i in report.series_ids) or "none (still receiving)"
        log.info("folder #%d (%s): %d instances, series ready: %s%s", report.folder_id, source,
                 report.instances, series, tail)
    else:
        log.warning("folder #%d (%s): no usable DICOM%s", report.folder_id, source, tail)
