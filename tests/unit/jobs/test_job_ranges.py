"""Image ranges: every rule of start:end:delta, auto, interleaved and reversed series,
localizers and off-orientation images left out, and reading a series folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from dicom_ops.jobs import (
    ImageRange,
    InstanceInfo,
    RangeError,
    auto_range,
    check_range,
    parse_range,
    read_instances,
    select_images,
)

from tests.factories import SeriesGeometry, as_localizer, make_ct_series, write_series

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)


def stack(numbers, *, z_of=lambda n: -2.5 * (n - 1), orientation=AXIAL) -> list[InstanceInfo]:
    return [InstanceInfo(path=f"/s/{n}.dcm", sop_instance_uid=f"1.2.{n}", instance_number=n,
                         z=z_of(n), orientation=orientation) for n in numbers]


def numbers(images: list[InstanceInfo]) -> list[int]:
    return [i.instance_number for i in images]


# --- the rules -------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("1:20:1", ImageRange(1, 20, 1)),
    ("20:1:-1", ImageRange(20, 1, -1)),
    ("1:58:3", ImageRange(1, 58, 3)),
    ("7:7:1", ImageRange(7, 7, 1)),
    ("7:7:-2", ImageRange(7, 7, -2)),
    (" 3:9:2 ", ImageRange(3, 9, 2)),
    ("auto", None),
    ("AUTO", None),
    ("", None),
])
def test_valid_ranges_parse(text, expected):
    assert parse_range(text) == expected


@pytest.mark.parametrize("text, rule", [
    ("0:20:1", "start must be a positive integer"),
    ("-1:20:1", "start must be a positive integer"),
    ("1.5:20:1", "start must be a positive integer"),
    ("a:20:1", "start must be a positive integer"),
    ("1:0:1", "end must be a positive integer"),
    ("1:x:1", "end must be a positive integer"),
    ("1:20:0", "delta must be a non-zero integer"),
    ("1:20:0.5", "delta must be a non-zero integer"),
    ("1:20:-1", "delta must be positive when end is after start"),
    ("20:1:1", "delta must be negative when end is before start"),
    ("1:20:2", "(end - start) / delta + 1 must be a whole number of images, got 10.5"),
    ("20:1:-3", "(end - start) / delta + 1 must be a whole number of images, got 7.33333"),
    ("1:20", "expected START:END:DELTA"),
    ("1:20:1:1", "expected START:END:DELTA"),
])
def test_each_broken_rule_is_named(text, rule):
    with pytest.raises(RangeError) as caught:
        parse_range(text)
    assert rule in str(caught.value)


def test_range_counts_and_numbers():
    assert ImageRange(1, 58, 3).count == 20
    assert ImageRange(10, 1, -3).instance_numbers() == [10, 7, 4, 1]
    assert check_range(5, 1, -1) == ImageRange(5, 1, -1)


# --- selection -------------------------------------------------------------------------


def test_explicit_range_selects_in_its_own_order():
    series = stack(range(1, 21))
    assert numbers(select_images(series, 5, 8, 1)) == [5, 6, 7, 8]
    assert numbers(select_images(series, 8, 5, -1)) == [8, 7, 6, 5]


def test_interleaved_series_takes_every_third_image():
    # given three reconstructions interleaved: instance n belongs to stack (n - 1) % 3
    series = stack(range(1, 61), z_of=lambda n: -2.5 * ((n - 1) // 3))
    # when every third image is selected, then one whole stack comes out, top to bottom
    first = select_images(series, 1, 58, 3)
    assert numbers(first) == list(range(1, 59, 3))
    assert [i.z for i in first] == [-2.5 * k for k in range(20)]
    assert numbers(select_images(series, 3, 60, 3)) == list(range(3, 61, 3))


def test_reversed_series_walks_backwards_with_a_negative_delta():
    # given a series scanned feet first: instance 1 at the bottom
    series = stack(range(1, 21), z_of=lambda n: 2.5 * n)
    images = select_images(series, 20, 1, -1)
    assert numbers(images) == list(range(20, 0, -1))
    assert images[0].z > images[-1].z


def test_auto_takes_the_first_consecutive_run():
    series = stack([1, 2, 3, 4, 5, 10, 11, 12])
    assert numbers(select_images(series)) == [1, 2, 3, 4, 5]


def test_auto_starts_the_volume_at_the_larger_z():
    head_first = stack(range(1, 11), z_of=lambda n: -2.5 * n)
    feet_first = stack(range(1, 11), z_of=lambda n: 2.5 * n)
    assert auto_range(head_first) == ImageRange(1, 10, 1)
    assert auto_range(feet_first) == ImageRange(10, 1, -1)
    ordered = select_images(feet_first)
    assert [i.z for i in ordered] == sorted((i.z for i in ordered), reverse=True)


def test_localizers_are_excluded_from_auto_and_from_ranges():
    # given a scout as instance 1 in front of the axial stack 2..21
    scout = InstanceInfo("/s/1.dcm", "1.2.1", 1, 0.0, CORONAL, is_localizer=True)
    series = [scout, *stack(range(2, 22))]
    assert numbers(select_images(series)) == list(range(2, 22))
    with pytest.raises(RangeError, match=r"instance number\(s\) 1 are not images of this series "
                                         r"\(it has 2-21; localizers excluded\)"):
        select_images(series, 1, 21, 1)


def test_an_image_in_another_orientation_is_left_out_even_without_the_localizer_flag():
    # given a coronal reformat that does not say LOCALIZER, numbered inside the axial run
    odd = InstanceInfo("/s/99.dcm", "1.2.99", 11, 0.0, CORONAL)
    series = [*stack(range(1, 11)), odd, *stack(range(12, 21))]
    assert numbers(select_images(series)) == list(range(1, 11))


def test_orientation_that_differs_only_by_rounding_is_the_same_orientation():
    series = stack(range(1, 6)) + stack(range(6, 11), orientation=(1.0, 0.0, 0.0, 0.0, 0.9999999,
                                                                    0.0000001))
    assert numbers(select_images(series)) == list(range(1, 11))


def test_non_image_objects_are_excluded():
    structure_set = InstanceInfo("/s/rs.dcm", "1.2.500", 1, None, None, is_image=False)
    series = [structure_set, *stack(range(1, 6))]
    assert [i.sop_instance_uid for i in select_images(series)] == [f"1.2.{n}" for n in range(1, 6)]


def test_range_beyond_the_series_names_the_missing_instances():
    with pytest.raises(RangeError, match=r"range 1:30:1: instance number\(s\) 21-30 are not "
                                         r"images of this series \(it has 1-20"):
        select_images(stack(range(1, 21)), 1, 30, 1)


def test_repeated_instance_numbers_are_refused_not_guessed():
    series = stack(range(1, 11)) + stack([5])
    with pytest.raises(RangeError, match=r"instance number\(s\) 5 appear more than once"):
        select_images(series, 1, 10, 1)
    assert numbers(select_images(series, 6, 10, 1)) == [6, 7, 8, 9, 10]


def test_a_series_of_only_localizers_has_no_usable_images():
    scouts = [InstanceInfo(f"/s/{n}", f"1.{n}", n, 0.0, CORONAL, is_localizer=True)
              for n in (1, 2)]
    with pytest.raises(RangeError, match="no usable images"):
        select_images(scouts)


def test_an_explicit_range_is_checked_before_selection():
    with pytest.raises(RangeError, match="delta must be a non-zero integer"):
        select_images(stack(range(1, 5)), 1, 4, 0)


# --- reading headers from a folder ------------------------------------------------------


def test_read_instances_reads_headers_of_a_real_series(tmp_path: Path):
    # given a written series with a localizer, a feet-first stack and a stray text file
    datasets = make_ct_series(geometry=SeriesGeometry(slices=6, rows=8, columns=8,
                                                      first_z=-100.0, z_step=2.5))
    as_localizer(datasets[0])
    write_series(datasets, tmp_path)
    (tmp_path / "readme.txt").write_text("not dicom")
    # when
    instances = read_instances(tmp_path)
    # then
    assert len(instances) == 6
    assert sum(i.is_localizer for i in instances) == 1
    assert all(i.is_image and i.orientation is not None for i in instances)
    chosen = select_images(instances)
    assert numbers(chosen) == [6, 5, 4, 3, 2]
    assert chosen[0].z == pytest.approx(-87.5)
    assert all(Path(i.path).exists() for i in chosen)
