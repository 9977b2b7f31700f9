"""``deidentify_and_check``: the one entry point the export pipeline and ``dicom-ops
deidentify`` share: de-identify a patient's series, then the egress check over all of it."""

from __future__ import annotations

from pathlib import Path

import pytest
from dicom_ops.config import REPO_ROOT
from dicom_ops.deid import (
    BurnedInAnnotationError,
    CheckedDeidResult,
    DifferentPatients,
    EgressViolation,
    SeriesNotDeidentified,
    deidentify_and_check,
)
from dicom_ops.deid.keys import DeidKeys
from dicom_ops.deid.recipe import load_recipe

from tests.factories import (
    SeriesGeometry,
    make_ct_series,
    synthetic_patient,
    with_burned_in_annotation,
    write_series,
)

SMALL = SeriesGeometry(slices=3, rows=8, columns=8)
RECIPE_TEXT = (REPO_ROOT / "include" / "deid" / "deid.dicom").read_text()
RECIPE = load_recipe(REPO_ROOT / "include" / "deid" / "deid.dicom")
KEYS = DeidKeys.from_secret("checked-test-secret-0123456789")
PATIENT = synthetic_patient(8)


@pytest.fixture(scope="module")
def leaky_recipe(tmp_path_factory):
    """The shipped recipe, told to keep a free-text field that may hold a name."""
    path = tmp_path_factory.mktemp("recipe") / "leaky.dicom"
    path.write_text(RECIPE_TEXT + "KEEP ImageComments\n")
    return load_recipe(path)


def series_on_disk(folder: Path, patient=PATIENT, *, series_number: int = 1, change=None):
    datasets = make_ct_series(patient, SMALL, series_number=series_number)
    for ds in datasets:
        if change is not None:
            change(ds)
    return write_series(datasets, folder), datasets


def test_a_clean_series_is_de_identified_and_passes_the_check(tmp_path):
    files, _ = series_on_disk(tmp_path / "in")

    result = deidentify_and_check([(files, tmp_path / "out")], RECIPE, KEYS)

    assert result.findings == () and result.violation is None
    assert len(result.files) == 3 and all(path.parent == tmp_path / "out" for path in result.files)
    assert result.pseudonym.startswith("DRAW-")


def test_a_leak_is_reported_in_the_result_and_as_the_violation_a_pipeline_raises(
        tmp_path, leaky_recipe):
    # given a recipe that keeps ImageComments, and comments that name the patient
    files, _ = series_on_disk(tmp_path / "in", change=lambda ds: setattr(
        ds, "ImageComments", f"scan of {PATIENT.family_name}"))

    result = deidentify_and_check([(files, tmp_path / "out")], leaky_recipe, KEYS)

    assert "image 1 of 3: (0020,4000) ImageComments: patient name part" in result.findings
    assert isinstance(result.violation, EgressViolation)
    assert "nothing was sent" in str(result.violation)
    assert PATIENT.family_name not in str(result.violation)


def test_the_check_can_be_skipped_only_by_asking(tmp_path, leaky_recipe):
    files, _ = series_on_disk(tmp_path / "in", change=lambda ds: setattr(
        ds, "ImageComments", f"scan of {PATIENT.family_name}"))

    result = deidentify_and_check([(files, tmp_path / "out")], leaky_recipe, KEYS,
                                  check_egress=False)

    assert result.findings is None and result.violation is None


def test_the_callback_runs_after_de_identification_and_before_the_check(tmp_path):
    files, _ = series_on_disk(tmp_path / "in")
    seen: list[CheckedDeidResult] = []

    result = deidentify_and_check([(files, tmp_path / "out")], RECIPE, KEYS,
                                  on_deidentified=seen.append)

    assert len(seen) == 1 and seen[0].findings is None  # not checked yet
    assert seen[0].uid_map == result.uid_map and seen[0].files == result.files


def test_a_patients_series_are_checked_together_so_a_cross_series_leak_is_found(
        tmp_path, leaky_recipe):
    # given the second series' comments quote the first series' original UID
    first_files, first = series_on_disk(tmp_path / "in1", series_number=1)
    first_uid = first[0].SeriesInstanceUID
    second_files, _ = series_on_disk(tmp_path / "in2", series_number=2, change=lambda ds: setattr(
        ds, "ImageComments", f"see {first_uid} for the plan"))

    result = deidentify_and_check([(first_files, tmp_path / "out" / "00"),
                                   (second_files, tmp_path / "out" / "01")], leaky_recipe, KEYS)

    assert len(result.series) == 2 and len(result.files) == 6
    assert set(result.uid_map) == set(result.series[0].uid_map) | set(result.series[1].uid_map)
    assert "image 4 of 6: (0020,4000) ImageComments: original UID" in result.findings


def test_a_series_that_cannot_be_de_identified_is_named_by_its_position(tmp_path):
    first_files, _ = series_on_disk(tmp_path / "in1", series_number=1)
    second_files, _ = series_on_disk(tmp_path / "in2", series_number=2,
                                     change=with_burned_in_annotation)

    with pytest.raises(SeriesNotDeidentified) as failed:
        deidentify_and_check([(first_files, tmp_path / "out" / "00"),
                              (second_files, tmp_path / "out" / "01")], RECIPE, KEYS)

    assert failed.value.position == 1
    assert isinstance(failed.value.cause, BurnedInAnnotationError)
    assert "burned-in annotation" in str(failed.value)
    assert not any((tmp_path / "out" / "01").iterdir())  # what it wrote is gone


def test_series_of_different_patients_are_refused(tmp_path):
    first_files, _ = series_on_disk(tmp_path / "in1", synthetic_patient(1))
    second_files, _ = series_on_disk(tmp_path / "in2", synthetic_patient(2))

    with pytest.raises(DifferentPatients, match="different patients"):
        deidentify_and_check([(first_files, tmp_path / "out" / "00"),
                              (second_files, tmp_path / "out" / "01")], RECIPE, KEYS)
