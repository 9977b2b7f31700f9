"""Our engine and the deid library read a recipe the same way: for every element (file meta
and nested ones included) both keep, remove, blank and replace the same, with the same
values. Both remove private tags first (deid's ``remove_private=True``) and get the same
pseudonym, date offset and keyed UIDs through deid's lookup. The differences are intended
and listed here:

- DT values: deid rewrites a shifted date-time through ``strftime`` (``...101500`` comes
  back as ``...101500.000000``); we change the date part only and keep the precision.
- The 128-byte preamble: deid keeps the input's (it can carry a TIFF header or anything);
  we write zeros.
- File names: deid keeps the input name (often made of original UIDs); we name each
  file by its new SOP Instance UID.
- DeidentificationMethodCodeSequence (0012,0064): we add the codes of the profile and
  options the recipe conforms to; deid's recipe format cannot add a sequence.
"""

from pathlib import Path

import pydicom
import pytest
from dicom_ops.config import REPO_ROOT
from dicom_ops.deid.engine import deidentify_series
from dicom_ops.deid.keys import DeidKeys
from dicom_ops.deid.recipe import load_recipe
from dicom_ops.devtools.deid_reference import run_deid_library

from tests.factories import SeriesGeometry, make_ct_series, synthetic_patient, write_series

SHIPPED = REPO_ROOT / "include" / "deid" / "deid.dicom"
KEYS = DeidKeys.from_secret("agreement-test-secret-0123456789")
TINY = SeriesGeometry(slices=2, rows=8, columns=8)

# Exercises what the shipped recipe does not: expanders, BLANK, literal JITTER, ADD over
# a present element, select by group, actions whose order matters.
FEATURES = """FORMAT dicom

%header

REMOVE startswith:Patient
KEEP PatientSex
REPLACE contains:Physician var:empty
BLANK endswith:Description
REPLACE StudyDescription var:pseudonym
JITTER StudyDate 30
JITTER select:VR:DT var:date_offset_days
REMOVE except:Modality|Rows|Columns|Study|Series|SOP|Image|Pixel|Bits|Slice|Rescale|Frame
REPLACE select:VR:UI func:deid_uid
ADD PatientIdentityRemoved YES
BLANK (0008,0090)
REMOVE select:group:0018
ADD Modality MR
"""


def corpus(folder: Path, index: int) -> list[Path]:
    series = make_ct_series(synthetic_patient(index), TINY)
    for ds in series:
        ds.AcquisitionDateTime = "20260314101500.250000"
        ds.InstanceCreationDate = "20260315"
        ds.preamble = b"DOE^JANE".ljust(128, b"\0")
    return write_series(series, folder)


def flatten(ds: pydicom.Dataset, prefix: str = "") -> dict[str, str]:
    flat = {}
    for element in ds:
        path = f"{prefix}{element.tag}"
        if element.VR == "SQ":
            flat[path] = f"sequence of {len(element.value)}"
            for index, item in enumerate(element.value):
                flat.update(flatten(item, f"{path}[{index}]."))
        else:
            flat[path] = str(element.value) if element.tag != 0x7FE00010 else "pixels"
    return flat


def outcome(before: dict[str, str], after: dict[str, str]) -> dict[str, str]:
    """kept / removed / blanked / replaced / added, per element path."""
    result = {}
    for path in before.keys() | after.keys():
        if path not in after:
            result[path] = "removed"
        elif path not in before:
            result[path] = "added"
        elif after[path] == before[path]:
            result[path] = "kept"
        else:
            result[path] = "blanked" if after[path] in ("", "None") else "replaced"
    return result


def both(tmp_path: Path, recipe_path: Path, index: int):
    files = corpus(tmp_path / "in", index)
    ours = deidentify_series(files, tmp_path / "ours", load_recipe(recipe_path), KEYS)
    run_deid_library(files, recipe_path, KEYS, synthetic_patient(index).patient_id,
                     tmp_path / "deid")
    theirs = [tmp_path / "deid" / f.name for f in files]
    return files, ours.files, theirs


@pytest.mark.parametrize("recipe_text", [None, FEATURES], ids=["shipped", "features"])
def test_every_element_ends_up_as_the_deid_library_leaves_it(tmp_path, recipe_text):
    recipe_path = SHIPPED
    if recipe_text is not None:
        recipe_path = tmp_path / "features.dicom"
        recipe_path.write_text(recipe_text)
    files, ours, theirs = both(tmp_path, recipe_path, 4)
    for source, mine, reference in zip(files, ours, theirs, strict=True):
        original, a, b = (pydicom.dcmread(p) for p in (source, mine, reference))
        before = {**flatten(original.file_meta, "meta"), **flatten(original)}
        after_ours = {**flatten(a.file_meta, "meta"), **flatten(a)}
        after_deid = {**flatten(b.file_meta, "meta"), **flatten(b)}
        dt = "(0008,002A)"
        assert after_ours.pop(dt, None) == after_deid.pop(dt, None)  # full precision: equal
        declaration = {p: v for p, v in after_ours.items() if p.startswith("(0012,0064)")}
        for path in declaration:
            del after_ours[path]
        assert bool(declaration) == (recipe_text is None)  # the features recipe keeps PHI
        assert outcome(before, after_ours) == outcome(before, after_deid)
        assert after_ours == after_deid


def test_what_we_do_differently_on_purpose(tmp_path):
    files, ours, theirs = both(tmp_path, SHIPPED, 6)
    for source in files:
        ds = pydicom.dcmread(source)
        ds.AcquisitionDateTime = "20260314101500"
        ds.save_as(source)
    offset = deidentify_series(files, tmp_path / "again", load_recipe(SHIPPED), KEYS)
    run_deid_library(files, SHIPPED, KEYS, synthetic_patient(6).patient_id, tmp_path / "deid2")
    mine = pydicom.dcmread(offset.files[0])
    reference = pydicom.dcmread(tmp_path / "deid2" / files[0].name)
    assert mine.AcquisitionDateTime + ".000000" == reference.AcquisitionDateTime
    assert mine.preamble == bytes(128) and reference.preamble.startswith(b"DOE^JANE")
    assert files[0].name == theirs[0].name and files[0].name != ours[0].name
