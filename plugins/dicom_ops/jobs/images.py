"""A job's images, series by series in job order: what preparation de-identifies and sends."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from dicom_ops.jobs.lifecycle import get_job
from dicom_ops.jobs.ranges import ImageRange, InstanceInfo, read_instances, select_images


@dataclass(frozen=True)
class SeriesImages:
    series_id: int
    folder: Path
    image_range: ImageRange | None  # None = auto
    images: list[InstanceInfo]


def images_for_job(session: Session, job_id: int) -> list[SeriesImages]:
    """Each series of the job with its selected images (headers read from its folder).

    Raises ``RangeError`` (a ``JobError``) when a range does not fit the files: the job
    should fail at its preparation stage with that message.
    """
    job = get_job(session, job_id)
    selected = []
    for link in job.series_links:
        folder = Path(link.series.folder)
        instances = read_instances(folder) if folder.is_dir() else []
        image_range = (None if link.range_start is None
                       else ImageRange(link.range_start, link.range_end, link.range_delta))
        images = (select_images(instances) if image_range is None else
                  select_images(instances, image_range.start, image_range.end, image_range.delta))
        selected.append(SeriesImages(link.series_id, folder, image_range, images))
    return selected
