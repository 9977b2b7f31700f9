"""A real, simple CT segmentation with numpy only: body outline and lungs, slice by slice.

Body = the largest connected region above about -300 HU, holes filled. Lungs =
air (below about -400 HU) inside the body, in regions big enough to matter.
Outlines are traced along pixel edges and joined through the edge midpoints,
which is what marching squares gives at the 0.5 level; points are converted to
patient coordinates (mm) from ImagePositionPatient, ImageOrientationPatient and
PixelSpacing, so oblique and rotated slices work too.

The emulator of the DRAW server uses it; nothing clinical should.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

BODY_THRESHOLD_HU = -300.0
AIR_THRESHOLD_HU = -400.0
MIN_LUNG_AREA_MM2 = 100.0

# Directions as (d_row, d_col) on the pixel-corner grid.
_RIGHT, _DOWN, _LEFT, _UP = (0, 1), (1, 0), (0, -1), (-1, 0)


@dataclass(frozen=True)
class SliceMasks:
    body: np.ndarray  # bool (rows, columns), holes filled
    lungs: np.ndarray  # bool (rows, columns)


@dataclass(frozen=True)
class SliceContours:
    """Closed planar polygons of one image, each (N, 3) in patient mm."""

    body: list[np.ndarray]
    lung_left: list[np.ndarray]
    lung_right: list[np.ndarray]

    @property
    def lungs(self) -> list[np.ndarray]:
        return self.lung_left + self.lung_right


# --- pixels ---------------------------------------------------------------------------


def hounsfield(ds: Dataset) -> np.ndarray:
    """The image in HU (float32), from the stored pixels and the rescale."""
    if "PixelData" not in ds:
        raise ValueError("image has no pixel data")
    pixels = ds.pixel_array
    if pixels.ndim != 2:
        raise ValueError(f"expected a single-frame image, pixel array has shape {pixels.shape}")
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    return pixels.astype(np.float32) * slope + intercept


def label_regions(mask: np.ndarray, connectivity: int = 8) -> tuple[np.ndarray, int]:
    """Connected components of a 2-D boolean mask: (labels 1..n, 0 = background; n).

    Works on runs of pixels per row, so the Python loops scale with the number of
    runs (a few per row), not with the number of pixels.
    """
    if connectivity not in (4, 8):
        raise ValueError("connectivity must be 4 or 8")
    mask = np.asarray(mask, dtype=bool)
    rows, columns = mask.shape
    edges = np.diff(np.pad(mask, ((0, 0), (1, 1))).astype(np.int8), axis=1)
    run_rows, run_starts = np.nonzero(edges == 1)
    _, run_ends = np.nonzero(edges == -1)  # exclusive; same row-major order as the starts
    count = len(run_rows)
    parent = list(range(count))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    reach = 1 if connectivity == 8 else 0
    row_bounds = np.searchsorted(run_rows, np.arange(rows + 1))
    for row in range(1, rows):
        above = range(row_bounds[row - 1], row_bounds[row])
        here = range(row_bounds[row], row_bounds[row + 1])
        i, j = above.start, here.start
        while i < above.stop and j < here.stop:
            if run_starts[i] < run_ends[j] + reach and run_starts[j] < run_ends[i] + reach:
                a, b = find(i), find(j)
                if a != b:
                    parent[max(a, b)] = min(a, b)
            if run_ends[i] < run_ends[j]:
                i += 1
            else:
                j += 1

    labels = np.zeros((rows, columns), dtype=np.int32)
    numbers: dict[int, int] = {}
    for run in range(count):
        number = numbers.setdefault(find(run), len(numbers) + 1)
        labels[run_rows[run], run_starts[run]:run_ends[run]] = number
    return labels, len(numbers)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """The mask plus every background region not connected (4-connected) to the border."""
    mask = np.asarray(mask, dtype=bool)
    padded = np.pad(~mask, 1, constant_values=True)
    labels, _ = label_regions(padded, connectivity=4)
    outside = labels == labels[0, 0]
    return ~outside[1:-1, 1:-1]


def largest_region(mask: np.ndarray) -> np.ndarray:
    labels, count = label_regions(mask)
    if count == 0:
        return np.zeros_like(mask, dtype=bool)
    sizes = np.bincount(labels.ravel())[1:]
    return labels == (int(np.argmax(sizes)) + 1)


def segment_slice(
    hu: np.ndarray,
    *,
    pixel_area_mm2: float = 1.0,
    body_threshold: float = BODY_THRESHOLD_HU,
    air_threshold: float = AIR_THRESHOLD_HU,
    min_lung_area_mm2: float = MIN_LUNG_AREA_MM2,
) -> SliceMasks:
    body = fill_holes(largest_region(hu > body_threshold))
    air_inside, count = label_regions((hu < air_threshold) & body)
    lungs = np.zeros_like(body)
    if count:
        sizes = np.bincount(air_inside.ravel())
        min_pixels = max(2, int(np.ceil(min_lung_area_mm2 / pixel_area_mm2)))
        keep = np.nonzero(sizes >= min_pixels)[0]
        lungs = np.isin(air_inside, keep[keep > 0])
    return SliceMasks(body=body, lungs=lungs)


# --- outlines -------------------------------------------------------------------------


def trace_outlines(mask: np.ndarray) -> list[np.ndarray]:
    """Closed outlines of a mask as (N, 2) float arrays of (row, column) pixel positions.

    Each outline runs through the midpoints of the pixel edges that separate the
    mask from its outside, with straight runs merged into single segments. Holes
    give outlines of their own; fill them first to get outer boundaries only.
    Diagonal neighbours stay in one outline (8-connectivity).
    """
    mask = np.asarray(mask, dtype=bool)
    padded = np.pad(mask, 1)
    inner = padded[1:-1, 1:-1]
    outgoing: dict[tuple[int, int], list[tuple[tuple[int, int], tuple[int, int]]]] = {}

    # Each boundary edge of a pixel (r, c), whose corners are (r, c)..(r+1, c+1), runs
    # clockwise on screen: the mask is on the right of the direction of travel.
    sides = (
        (padded[:-2, 1:-1], (0, 0), _RIGHT),  # nothing above: top edge, left to right
        (padded[1:-1, 2:], (0, 1), _DOWN),  # nothing to the right: right edge, downwards
        (padded[2:, 1:-1], (1, 1), _LEFT),  # nothing below: bottom edge, right to left
        (padded[1:-1, :-2], (1, 0), _UP),  # nothing to the left: left edge, upwards
    )
    for neighbour, (start_row, start_col), direction in sides:
        for row, col in zip(*np.nonzero(inner & ~neighbour), strict=True):
            start = (int(row) + start_row, int(col) + start_col)
            outgoing.setdefault(start, []).append((start, direction))

    outlines = []
    while outgoing:
        first_vertex = next(iter(outgoing))
        edge = _take(outgoing, first_vertex, None)
        midpoints = []
        while edge is not None:
            (row, col), (d_row, d_col) = edge
            midpoints.append((row + d_row / 2.0 - 0.5, col + d_col / 2.0 - 0.5))
            end = (row + d_row, col + d_col)
            edge = _take(outgoing, end, (d_row, d_col)) if end in outgoing else None
        outline = _merge_collinear(np.array(midpoints, dtype=np.float64))
        if len(outline) >= 3:
            outlines.append(outline)
    return outlines


def _take(outgoing: dict, vertex: tuple[int, int], arriving: tuple[int, int] | None):
    """Remove and return the edge leaving ``vertex``; where two leave (pixels touching
    only at this corner) turn left, which keeps diagonal neighbours in one outline."""
    edges = outgoing[vertex]
    choice = 0
    if len(edges) > 1 and arriving is not None:
        left_turn = (-arriving[1], arriving[0])
        choice = next((i for i, (_, d) in enumerate(edges) if d == left_turn), 0)
    edge = edges.pop(choice)
    if not edges:
        del outgoing[vertex]
    return edge


def _merge_collinear(points: np.ndarray) -> np.ndarray:
    if len(points) < 3:
        return points
    before = points - np.roll(points, 1, axis=0)
    after = np.roll(points, -1, axis=0) - points
    cross = before[:, 0] * after[:, 1] - before[:, 1] * after[:, 0]
    return points[np.abs(cross) > 1e-9]


def polygon_area(points: np.ndarray) -> float:
    """Signed area (shoelace) of a closed polygon given as (N, 2)."""
    x, y = points[:, 0], points[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


# --- geometry -------------------------------------------------------------------------


def pixel_to_patient(points_rc: np.ndarray, ds: Dataset) -> np.ndarray:
    """(N, 2) (row, column) pixel positions -> (N, 3) patient coordinates in mm.

    ImageOrientationPatient holds the direction of increasing column index, then
    of increasing row index; PixelSpacing is (between rows, between columns).
    """
    origin = np.array([float(v) for v in ds.ImagePositionPatient], dtype=np.float64)
    orientation = [float(v) for v in ds.ImageOrientationPatient]
    along_row = np.array(orientation[:3])
    along_column = np.array(orientation[3:])
    row_spacing, column_spacing = (float(v) for v in ds.PixelSpacing)
    points_rc = np.asarray(points_rc, dtype=np.float64).reshape(-1, 2)
    return (origin
            + np.outer(points_rc[:, 1] * column_spacing, along_row)
            + np.outer(points_rc[:, 0] * row_spacing, along_column))


def segment_image(ds: Dataset) -> SliceContours:
    """Body and lung outlines of one CT image, in patient coordinates.

    Lungs are split by side: a lung region whose centre lies at larger patient x
    than the body's centre is on the patient's left (DICOM x runs right to left).
    """
    hu = hounsfield(ds)
    row_spacing, column_spacing = (float(v) for v in ds.PixelSpacing)
    masks = segment_slice(hu, pixel_area_mm2=row_spacing * column_spacing)
    body = [pixel_to_patient(outline, ds) for outline in trace_outlines(masks.body)]
    if not body:
        return SliceContours(body=[], lung_left=[], lung_right=[])
    body_centre_x = float(pixel_to_patient(np.argwhere(masks.body).mean(axis=0), ds)[0, 0])
    left, right = [], []
    labels, count = label_regions(masks.lungs)
    for number in range(1, count + 1):
        region = labels == number
        centre_x = float(pixel_to_patient(np.argwhere(region).mean(axis=0), ds)[0, 0])
        outlines = [pixel_to_patient(o, ds) for o in trace_outlines(fill_holes(region))]
        (left if centre_x > body_centre_x else right).extend(outlines)
    return SliceContours(body=body, lung_left=left, lung_right=right)


def segment_series(images: Sequence[Dataset]) -> dict[str, SliceContours]:
    """Outlines per image, keyed by SOPInstanceUID."""
    return {str(ds.SOPInstanceUID): segment_image(ds) for ds in images}
