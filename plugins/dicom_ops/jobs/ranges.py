"""Image ranges ``start:end:delta`` (CIRCUS CS rules) and choosing a job's images.

Rules for an explicit range, each refusal naming the one it breaks:

1. ``start`` and ``end`` are positive integers (instance numbers);
2. ``delta`` is a non-zero integer;
3. the sign of ``delta`` matches the direction (negative when ``end < start``);
4. ``(end - start) / delta + 1`` is a positive whole number (the image count).

``auto`` (the default, stored as no range) takes the first consecutive run of
instance numbers, localizers excluded, ordered so that the volume starts at the
slice with the larger z. An explicit range keeps its own order: ``1:58:3``
picks every third image of an interleaved series, ``20:1:-1`` walks backwards.

``select_images`` works on plain ``InstanceInfo`` records; ``read_instances``
builds them from a folder by reading headers only.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from dicom_ops.jobs.errors import RangeError

log = logging.getLogger(__name__)

AUTO = "auto"
ORIENTATION_TOLERANCE = 1e-3
_HEADER_TAGS = ["SOPClassUID", "SOPInstanceUID", "ImageType", "InstanceNumber",
                "ImagePositionPatient", "ImageOrientationPatient", "Rows", "Columns"]


@dataclass(frozen=True)
class ImageRange:
    start: int
    end: int
    delta: int

    def __str__(self) -> str:
        return f"{self.start}:{self.end}:{self.delta}"

    @property
    def count(self) -> int:
        return (self.end - self.start) // self.delta + 1

    def instance_numbers(self) -> list[int]:
        return [self.start + index * self.delta for index in range(self.count)]


def range_text(image_range: ImageRange | None) -> str:
    return AUTO if image_range is None else str(image_range)


def parse_range(text: str) -> ImageRange | None:
    """``"auto"`` (or empty) -> None; ``"START:END:DELTA"`` -> a checked ``ImageRange``."""
    text = text.strip()
    if text.lower() in ("", AUTO):
        return None
    parts = text.split(":")
    if len(parts) != 3:
        raise RangeError(f"range {text!r}: expected START:END:DELTA (e.g. 1:120:1) or 'auto'")
    return check_range(*parts, text=text)


def check_range(start: object, end: object, delta: object, *, text: str | None = None
                ) -> ImageRange:
    """A valid ``ImageRange`` from three values (ints or their text), or ``RangeError``."""
    shown = text or f"{start}:{end}:{delta}"
    start_number = _integer(start)
    end_number = _integer(end)
    if start_number is None or start_number < 1:
        raise RangeError(f"range {shown}: start must be a positive integer, got {start!r}")
    if end_number is None or end_number < 1:
        raise RangeError(f"range {shown}: end must be a positive integer, got {end!r}")
    delta_number = _integer(delta)
    if delta_number is None or delta_number == 0:
        raise RangeError(f"range {shown}: delta must be a non-zero integer, got {delta!r}")
    if end_number > start_number and delta_number < 0:
        raise RangeError(f"range {shown}: delta must be positive when end is after start")
    if end_number < start_number and delta_number > 0:
        raise RangeError(f"range {shown}: delta must be negative when end is before start")
    steps = (end_number - start_number) / delta_number
    if steps != int(steps):
        raise RangeError(f"range {shown}: (end - start) / delta + 1 must be a whole number "
                         f"of images, got {steps + 1:g}")
    return ImageRange(start_number, end_number, delta_number)


def _integer(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    return None


# --- choosing images ---------------------------------------------------------------------


@dataclass(frozen=True)
class InstanceInfo:
    """What selection needs to know about one file of a series (headers only)."""

    path: str
    sop_instance_uid: str
    instance_number: int | None
    z: float | None
    orientation: tuple[float, ...] | None = None
    is_localizer: bool = False
    is_image: bool = True


def usable_images(instances: Iterable[InstanceInfo]) -> list[InstanceInfo]:
    """Images with an instance number, localizers excluded, in the series' main orientation.

    A scout that does not say LOCALIZER in ImageType is still not part of the axial stack:
    images whose orientation differs from the most common one are left out too.
    """
    images = [i for i in instances
              if i.is_image and not i.is_localizer and i.instance_number is not None]
    orientations = Counter(_rounded(i.orientation) for i in images if i.orientation)
    if not orientations:
        return images
    main = orientations.most_common(1)[0][0]
    return [i for i in images if i.orientation is None or _same_orientation(i.orientation, main)]


def auto_range(instances: Iterable[InstanceInfo]) -> ImageRange:
    """The first consecutive run of instance numbers, directed so the larger z comes first."""
    images = usable_images(instances)
    if not images:
        raise RangeError("the series has no usable images (localizers and non-image "
                         "objects excluded)")
    numbers = sorted({i.instance_number for i in images})
    run_end = numbers[0]
    for number in numbers[1:]:
        if number != run_end + 1:
            break
        run_end = number
    first, last = numbers[0], run_end
    z_by_number = {i.instance_number: i.z for i in images}
    z_first, z_last = z_by_number[first], z_by_number[last]
    if first != last and z_first is not None and z_last is not None and z_last > z_first:
        return ImageRange(last, first, -1)
    return ImageRange(first, last, 1)


def select_images(instances: Sequence[InstanceInfo], start: int | None = None,
                  end: int | None = None, delta: int | None = None) -> list[InstanceInfo]:
    """The job's images in volume order: the given range, or ``auto`` when all are None."""
    if start is None and end is None and delta is None:
        image_range = auto_range(instances)
    else:
        image_range = check_range(start, end, delta)
    by_number: dict[int, list[InstanceInfo]] = {}
    for image in usable_images(instances):
        by_number.setdefault(image.instance_number, []).append(image)
    wanted = image_range.instance_numbers()
    repeated = [n for n in wanted if len(by_number.get(n, ())) > 1]
    if repeated:
        raise RangeError(f"range {image_range}: instance number(s) {_compact(repeated)} "
                         "appear more than once in the series; give a range that avoids them")
    missing = [n for n in wanted if n not in by_number]
    if missing:
        have = sorted(by_number)
        raise RangeError(f"range {image_range}: instance number(s) {_compact(missing)} are not "
                         f"images of this series (it has {_compact(have) or 'none'}; "
                         "localizers excluded)")
    return [by_number[n][0] for n in wanted]


def _rounded(orientation: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(round(v, 3) for v in orientation)


def _same_orientation(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= ORIENTATION_TOLERANCE for x, y in zip(a, b, strict=True))


def _compact(numbers: Iterable[int]) -> str:
    """``[1, 2, 3, 7, 9, 10]`` -> ``"1-3, 7, 9-10"``."""
    runs: list[list[int]] = []
    for number in sorted(set(numbers)):
        if runs and number == runs[-1][1] + 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


# --- reading a series folder ------------------------------------------------------------


def read_instance(path: Path) -> InstanceInfo | None:
    """One file's ``InstanceInfo`` from its headers (no pixel data); None if not DICOM."""
    try:
        ds = dcmread(path, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
    except (InvalidDicomError, OSError, EOFError, ValueError) as exc:
        log.debug("not a readable DICOM file: %s (%s)", path, exc)
        return None
    sop_uid = str(ds.get("SOPInstanceUID", "") or "")
    if not sop_uid:
        return None
    position = _floats(ds.get("ImagePositionPatient"))
    orientation = _floats(ds.get("ImageOrientationPatient"))
    return InstanceInfo(
        path=str(path),
        sop_instance_uid=sop_uid,
        instance_number=_integer_or_none(ds.get("InstanceNumber")),
        z=position[2] if position and len(position) == 3 else None,
        orientation=tuple(orientation) if orientation and len(orientation) == 6 else None,
        is_localizer=is_localizer(ds),
        is_image="Rows" in ds and "Columns" in ds,
    )


def is_localizer(dataset: Dataset) -> bool:
    """A scout / topogram: ImageType says LOCALIZER."""
    return any(str(v).strip().upper() == "LOCALIZER" for v in _as_list(dataset.get("ImageType")))


def read_instances(folder: Path) -> list[InstanceInfo]:
    """``InstanceInfo`` for every DICOM file directly in ``folder`` (sorted by file name)."""
    records = []
    skipped = 0
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        record = read_instance(path)
        if record is None:
            skipped += 1
        else:
            records.append(record)
    if skipped:
        log.warning("skipped %d file(s) that are not readable DICOM in a series folder", skipped)
    return records


def _as_list(value: object) -> list:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    try:
        return list(value)  # type: ignore[call-overload]
    except TypeError:
        return [value]


def _floats(value: object) -> list[float] | None:
    try:
        return [float(v) for v in _as_list(value)] or None
    except (TypeError, ValueError):
        return None


def _integer_or_none(value: object) -> int | None:
    try:
        return int(value) if value not in (None, "") else None  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
