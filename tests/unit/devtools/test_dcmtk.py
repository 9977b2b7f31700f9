"""Benchmarks and tests that mean dcmtk get dcmtk, never pynetdicom's namesakes."""

from __future__ import annotations

import os
import stat

import pytest
from dicom_ops.devtools import dcmtk
from dicom_ops.devtools.dcmtk import DcmtkMissing, find_dcmtk, require_dcmtk


def _namesake(folder, name, banner):
    script = folder / name
    script.write_text(f"#!/bin/sh\necho '{banner}'\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


@pytest.fixture(autouse=True)
def fresh_lookup():
    find_dcmtk.cache_clear()
    yield
    find_dcmtk.cache_clear()


def test_a_namesake_first_on_path_is_passed_over_for_dcmtk(tmp_path, monkeypatch):
    if not (os.path.exists("/usr/bin/storescp") and
            dcmtk.version_banner("/usr/bin/storescp").startswith(dcmtk.DCMTK_BANNER)):
        pytest.skip("dcmtk is not installed in /usr/bin")
    _namesake(tmp_path, "storescp", "pynetdicom storescp v3.0.4")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}/usr/bin")

    assert find_dcmtk("storescp") == "/usr/bin/storescp"


def test_only_a_namesake_is_an_error_that_names_what_was_found(tmp_path, monkeypatch):
    fake = _namesake(tmp_path, "dcmtk-test-tool", "pynetdicom echoscu v3.0.4")
    monkeypatch.setenv("PATH", str(tmp_path))

    assert find_dcmtk("dcmtk-test-tool") is None
    with pytest.raises(DcmtkMissing, match=f"found: {fake}, which is not dcmtk"):
        require_dcmtk("dcmtk-test-tool")
