"""dcmtk's command-line tools for the tests, never pynetdicom's namesakes (see
``dicom_ops.devtools.dcmtk``). Missing: a failure in CI, a skip elsewhere, like
``require_tool``."""

from __future__ import annotations

import os

import pytest
from dicom_ops.devtools.dcmtk import find_dcmtk


def dcmtk_tool(name: str) -> str:
    """The absolute path of dcmtk's ``name`` (storescu, echoscu, storescp, dcmdump...)."""
    path = find_dcmtk(name)
    if path is None:
        message = f"dcmtk's {name} is not installed (make test installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
