"""The emulator's numpy-only segmentation: regions, outlines, and patient coordinates."""

from __future__ import annotations

import numpy as np
import pytest
from dicom_ops.devtools.segmentation import (
    fill_holes,
    label_regions,
    pixel_to_patient,
    polygon_area,
    segment_image,
    segment_slice,
    trace_outlines,
)

from tests.factories import HU_AIR, HU_LUNG, SeriesGeometry, make_ct_series, phantom_hu


def _ring(size: int = 12) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    mask[2:10, 2:10] = True
    mask[4:8, 4:8] = False
    return mask


def _distance_to_plane(points: np.ndarray, ds) -> np.ndarray:
    orientation = np.array([float(v) for v in ds.ImageOrientationPatient])
    normal = np.cross(orientation[:3], orientation[3:])
    origin = np.array([float(v) for v in ds.ImagePositionPatient])
    return np.abs((points - origin) @ normal)


# --- regions ----------------------------------------------------------------------------


def test_separate_blobs_are_separate_regions():
    mask = np.zeros((8, 8), dtype=bool)
    mask[1:3, 1:3] = True
    mask[5:7, 4:8] = True
    labels, count = label_regions(mask)
    assert count == 2
    assert labels[1, 1] != labels[5, 5]
    assert (labels > 0).sum() == mask.sum()


def test_diagonal_neighbours_join_with_8_connectivity_only():
    mask = np.eye(4, dtype=bool)
    assert label_regions(mask, connectivity=8)[1] == 1
    assert label_regions(mask, connectivity=4)[1] == 4


def test_a_u_shape_is_one_region_although_its_arms_start_apart():
    mask = np.zeros((6, 7), dtype=bool)
    mask[0:5, 1] = True
    mask[0:5, 5] = True
    mask[4, 1:6] = True
    assert label_regions(mask)[1] == 1


def test_fill_holes_closes_enclosed_background_and_keeps_the_outside():
    filled = fill_holes(_ring())
    assert filled[5, 5]
    assert filled[2:10, 2:10].all()
    assert not filled[0, 0] and not filled[11, 11]


# --- outlines ---------------------------------------------------------------------------


def test_a_rectangle_outline_runs_along_its_pixel_edges_with_corners_cut():
    mask = np.zeros((10, 10), dtype=bool)
    mask[2:6, 3:8] = True  # 4 x 5 pixels
    [outline] = trace_outlines(mask)
    # through the edge midpoints: half a pixel outside the outer pixel centres
    assert outline[:, 0].min() == pytest.approx(1.5) and outline[:, 0].max() == pytest.approx(5.5)
    assert outline[:, 1].min() == pytest.approx(2.5) and outline[:, 1].max() == pytest.approx(7.5)
    assert abs(polygon_area(outline)) == pytest.approx(20 - 4 * 0.125)
    assert len(outline) == 8  # straight runs merged: only the cut corners remain


def test_a_ring_has_an_outer_outline_and_a_hole_outline():
    outlines = trace_outlines(_ring())
    areas = sorted(abs(polygon_area(o)) for o in outlines)
    assert len(outlines) == 2
    assert areas[0] < 16 < areas[1]


def test_pixels_touching_at_a_corner_give_one_outline():
    mask = np.zeros((5, 5), dtype=bool)
    mask[1, 1] = mask[2, 2] = True
    assert len(trace_outlines(mask)) == 1


def test_an_empty_mask_has_no_outline():
    assert trace_outlines(np.zeros((6, 6), dtype=bool)) == []


# --- the phantom ------------------------------------------------------------------------


def test_body_is_the_filled_largest_region_and_lungs_are_air_inside_it():
    phantom = phantom_hu(64, 64, 0.5)
    hu = phantom.astype(np.float32)
    hu[0:3, 0:3] = 40  # a bit of table or noise in a corner: not the body
    masks = segment_slice(hu, pixel_area_mm2=7.5 * 7.5)
    assert (masks.body == (phantom != HU_AIR)).all()  # the whole ellipse, lungs filled in
    assert (masks.lungs == (phantom == HU_LUNG)).all()
    assert label_regions(masks.lungs)[1] == 2


def test_a_slice_of_air_has_no_body_and_no_lungs():
    masks = segment_slice(np.full((32, 32), float(HU_AIR)))
    assert not masks.body.any() and not masks.lungs.any()


# --- patient coordinates ----------------------------------------------------------------


def test_pixel_positions_map_to_patient_mm_with_row_and_column_spacing_apart():
    [ds] = make_ct_series(geometry=SeriesGeometry(slices=1, rows=16, columns=16))
    ds.ImagePositionPatient = [-10.0, 20.0, 5.0]
    ds.PixelSpacing = [2.0, 0.5]  # between rows, between columns
    points = pixel_to_patient(np.array([[0.0, 0.0], [3.0, 4.0]]), ds)
    assert points[0] == pytest.approx([-10.0, 20.0, 5.0])
    assert points[1] == pytest.approx([-10.0 + 4 * 0.5, 20.0 + 3 * 2.0, 5.0])


def test_every_slice_with_body_has_a_body_contour_lying_in_its_plane():
    images = make_ct_series(geometry=SeriesGeometry(slices=6, rows=48, columns=48))
    for ds in images:
        contours = segment_image(ds)
        assert len(contours.body) >= 1
        for polygon in contours.body + contours.lungs:
            assert polygon.shape[1] == 3 and len(polygon) >= 3
            assert _distance_to_plane(polygon, ds).max() < 1e-6


def test_oblique_slices_give_contours_in_their_own_tilted_plane():
    tilt = np.deg2rad(20)
    orientation = (1.0, 0.0, 0.0, 0.0, float(np.cos(tilt)), float(np.sin(tilt)))
    images = make_ct_series(geometry=SeriesGeometry(slices=3, rows=48, columns=48,
                                                    orientation=orientation))
    for ds in images:
        body = segment_image(ds).body
        points = np.vstack(body)
        assert _distance_to_plane(points, ds).max() < 1e-6
        assert np.ptp(points[:, 2]) > 10  # really tilted: z varies along the outline


def test_left_lung_is_on_the_patients_left_even_when_the_image_is_flipped():
    [ds] = make_ct_series(geometry=SeriesGeometry(slices=1, rows=64, columns=64))
    straight = segment_image(ds)
    ds.ImageOrientationPatient = [-1.0, 0.0, 0.0, 0.0, 1.0, 0.0]  # columns run to the right
    ds.ImagePositionPatient = [236.25, -236.25, 0.0]
    flipped = segment_image(ds)
    for contours in (straight, flipped):
        assert len(contours.lung_left) == 1 and len(contours.lung_right) == 1
        assert contours.lung_left[0][:, 0].mean() > 0 > contours.lung_right[0][:, 0].mean()


def test_an_image_of_only_air_gives_no_contours():
    [ds] = make_ct_series(geometry=SeriesGeometry(slices=1, rows=16, columns=16))
    ds.PixelData = np.zeros((16, 16), dtype=np.uint16).tobytes()  # -1024 HU everywhere
    contours = segment_image(ds)
    assert contours.body == [] and contours.lungs == []
