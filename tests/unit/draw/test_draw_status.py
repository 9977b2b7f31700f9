"""Status strings of DRAW servers, old and new, mapped to the states the pipeline acts on."""

from __future__ import annotations

import pytest
from dicom_ops.draw.client import normalise_status


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("PENDING", "pending"),
        ("PROCESSING", "processing"),
        ("SEGMENTATION COMPLETED", "completed"),
        ("SEGMENTATION COMPLETE", "completed"),
        ("SEGMENTATION RETRIEVED", "completed"),
        ("Delivered to Client", "completed"),
        ("Transfer Completed", "completed"),
        ("FAILED", "failed"),
    ],
)
def test_every_status_string_seen_in_the_wild_has_its_state(raw, state):
    assert normalise_status(raw) == state


@pytest.mark.parametrize("raw", ["segmentation completed", "  Segmentation   Completed ",
                                 "delivered TO client"])
def test_status_strings_are_matched_regardless_of_case_and_spacing(raw):
    assert normalise_status(raw) == "completed"


@pytest.mark.parametrize("raw", ["QUEUED", "SEGMENTATION STARTED", "", "COMPLETED?", "None"])
def test_a_status_string_nobody_documented_is_unknown_not_a_guess(raw):
    assert normalise_status(raw) == "unknown"
