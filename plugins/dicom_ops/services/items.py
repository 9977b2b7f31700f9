"""Where an item's data is: its folder, its series' folders, its first header and, for
a delivered RTSTRUCT, the file. Read from the app DB rows the item points at."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from sqlalchemy import select
from sqlalchemy.orm import Session

from dicom_ops.db.models import JobSeries, Series, ServiceItem, Transfer
from dicom_ops.services.definition import ServiceEvent


class ItemUnavailable(RuntimeError):
    """The item's data is gone or unreadable; the message names the item, never a path."""


@dataclass(frozen=True)
class ItemData:
    item_id: int
    event: ServiceEvent
    label: str  # "series #12", "study of series #12", "job #7": for logs and the grid
    folder: Path
    series_folders: tuple[Path, ...]
    origin_folder: Path | None
    rtstruct: Path | None = None


def item_data(session: Session, item_id: int) -> ItemData:
    item = session.get(ServiceItem, item_id)
    if item is None:
        raise ItemUnavailable(f"service item {item_id} does not exist")
    event = ServiceEvent(item.event)
    if event is ServiceEvent.SERIES_READY:
        series = [session.get(Series, item.series_id)]
        label = f"series #{item.series_id}"
    elif event is ServiceEvent.STUDY_READY:
        series = list(session.scalars(select(Series).where(Series.study_uid == item.item_key)
                                      .order_by(Series.id)))
        label = f"study of series #{item.series_id}"
    else:
        series = list(session.scalars(select(Series).join(JobSeries)
                                      .where(JobSeries.job_id == item.job_id)
                                      .order_by(JobSeries.position)))
        label = f"job #{item.job_id}"
    series = [s for s in series if s is not None]
    if not series:
        raise ItemUnavailable(f"{label}: no series recorded for service item {item_id}")
    folders = tuple(Path(s.folder) for s in series)
    origin = Path(series[0].origin_folder) if series[0].origin_folder else folders[0]
    if event is ServiceEvent.STUDY_READY:
        parents = {folder.parent for folder in folders}
        folder = parents.pop() if len(parents) == 1 else folders[0]
    elif event is ServiceEvent.RTSTRUCT_DELIVERED:
        folder = origin
    else:
        folder = folders[0]
    rtstruct = None
    if event is ServiceEvent.RTSTRUCT_DELIVERED:
        transfer = session.scalars(select(Transfer).where(Transfer.job_id == item.job_id)).first()
        if transfer is None or not transfer.delivered_path:
            raise ItemUnavailable(f"{label}: no delivered RTSTRUCT on record")
        rtstruct = Path(transfer.delivered_path)
    missing = [f"series #{s.id}" for s, f in zip(series, folders, strict=True) if not f.is_dir()]
    if missing:
        raise ItemUnavailable(f"{label}: the folder of {', '.join(missing)} no longer exists")
    return ItemData(item_id, event, label, folder, folders, origin, rtstruct)


def first_header(data: ItemData) -> Dataset:
    """The first readable instance's header, in file-name order (no pixel data)."""
    for folder in data.series_folders:
        for path in sorted(folder.iterdir()):
            if not path.is_file() or path.name.startswith((".", "RS.")):
                continue
            try:
                return dcmread(path, stop_before_pixels=True)
            except (InvalidDicomError, OSError, EOFError, ValueError):
                continue
    raise ItemUnavailable(f"{data.label}: no readable DICOM file in its folder")
