"""De-identifying one pydicom dataset in memory: a convenience for tests and tools.

It goes through the real engine (via a temporary folder), so what it returns is exactly
what ``deidentify_series`` would write for that dataset.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from dicom_ops.deid.engine import deidentify_file
from dicom_ops.deid.keys import DeidKeys
from dicom_ops.deid.recipe import Recipe


def deidentify_dataset(dataset, recipe: Recipe, keys: DeidKeys):
    """The de-identified copy of a pydicom ``Dataset`` (which needs file meta)."""
    from pydicom import dcmread

    with tempfile.TemporaryDirectory(prefix="dicom-ops-deid-") as folder:
        source = Path(folder) / "in.dcm"
        dataset.save_as(source, enforce_file_format=True)
        target = Path(folder) / "out"
        target.mkdir()
        return dcmread(deidentify_file(source, target, recipe, keys))
