"""Re-identification: turn the DRAW server's RTSTRUCT (on the de-identified images)
into one on the original patient, study, series and images. Fails closed.

What it does, in order:

1. ``validate_rtstruct``: RT Structure Set, Modality RTSTRUCT, and every reference
   of the right kind and in this job's UID map. Anything else is rejected.
2. The RTSTRUCT must still carry this job's pseudonym as PatientID (or none): a
   different one means a mix-up somewhere, whatever the UIDs say.
3. Private elements are dropped (nobody here can tell what they refer to), and so are
   retired ones (not part of the IOD; a TPS or validator flags them).
4. Every instance UID, at every nesting level, is replaced by its original from the
   job's map; a UID not in the map rejects the file (checked again after mapping).
5. The RTSTRUCT gets a fresh SOP Instance UID and a fresh Series Instance UID under
   our root: it is a new instance in a new series of the original study (putting it
   in one of the CT's series would mix modalities in one series).
6. Patient and study attributes are restored from the job's subject data; the
   identity attributes the subject does not provide are emptied (type 2) or removed
   (type 3), never left with pseudonymous values, and the de-identification markers
   (PatientIdentityRemoved...) are removed. Other patient IDs go back as
   OtherPatientIDsSequence items: the retired Other Patient IDs (0010,1000) is never
   written, nor any other retired attribute (the server's are dropped like private ones).
7. The file is made a conformant RT Structure Set (``conformance``): the Frame of
   Reference module is added (the contours' frame and the CT's
   PositionReferenceIndicator), missing Type 2 attributes are added empty, and a file
   lacking a Type 1 attribute is refused.

Nothing else is touched: ROI names, contour data and geometry stay byte-identical.
The output is deterministic for the same inputs, so a retried delivery produces
the same file.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import BaseTag
from pydicom.uid import UID

from dicom_ops.delivery.conformance import (
    add_frame_of_reference_module,
    check_type1,
    fill_type2,
    is_retired,
    type2_of,
)
from dicom_ops.delivery.part10 import rtstruct_file_meta
from dicom_ops.delivery.validation import (
    ExpectedUids,
    RtstructRejected,
    element_vr,
    instance_uid_elements,
    is_own_identity,
    validate_rtstruct,
)

UTF8 = "ISO_IR 192"
# Must come from the subject data: an RTSTRUCT without them cannot be matched to a patient.
REQUIRED_SUBJECT_KEYS = ("PatientID", "PatientName")
# Identity attributes of the Patient and General Study modules. Any the subject does
# not restore are emptied (type 2, must stay present) or removed (type 3).
IDENTITY_TYPE_2 = type2_of("Patient", "General Study")
IDENTITY_TYPE_3 = (
    "IssuerOfPatientID", "IssuerOfPatientIDQualifiersSequence", "OtherPatientIDs",
    "OtherPatientIDsSequence", "OtherPatientNames", "PatientBirthTime", "PatientBirthName",
    "PatientMotherBirthName", "PatientAddress", "PatientTelephoneNumbers", "PatientAge",
    "PatientSize", "PatientWeight", "EthnicGroup", "PatientComments", "MedicalRecordLocator",
    "StudyDescription", "PhysiciansOfRecord", "NameOfPhysiciansReadingStudy",
    "IssuerOfAccessionNumberSequence", "AdmissionID",
)
DEIDENTIFICATION_MARKERS = ("PatientIdentityRemoved", "DeidentificationMethod",
                            "DeidentificationMethodCodeSequence",
                            "LongitudinalTemporalInformationModified")
# Never from the subject: these are the RTSTRUCT's own or come from the UID map.
_NOT_FROM_SUBJECT = frozenset({"SOPClassUID", "Modality"})
# The original images' character set, when the subject data carries it: used only if
# a restored value is not ASCII.
CHARACTER_SET_KEY = "SpecificCharacterSet"
# The subject keeps other patient IDs as the retired Other Patient IDs does (backslash-
# separated); they are restored as OtherPatientIDsSequence items of this type (PS3.3
# C.7.1.1: TEXT, an ID of unknown structure, is what a plain list of IDs is).
OTHER_PATIENT_IDS_KEY = "OtherPatientIDs"
OTHER_PATIENT_ID_TYPE = "TEXT"


def reidentify(
    rtstruct: Dataset,
    uid_map: Mapping[str, tuple[str, str]],
    subject: Mapping[str, str],
    *,
    pseudonym: str,
    new_sop_instance_uid: str,
    new_series_instance_uid: str,
    position_reference_indicators: Mapping[str, str] | None = None,
) -> Dataset:
    """A re-identified copy of ``rtstruct`` (the input is not changed).

    ``uid_map``: this job's de-identified UID -> (original UID, kind). ``subject``:
    original patient and study attributes by DICOM keyword. ``pseudonym``: the
    PatientID this job's images were sent with. ``position_reference_indicators``: the
    CT's PositionReferenceIndicator by its original FrameOfReferenceUID, as read from
    the CT (a frame not in it keeps the server's value, or gets an empty one). Raises
    ``RtstructRejected`` for an RTSTRUCT that must not be delivered, ``ValueError`` for
    unusable arguments.
    """
    _check_arguments(uid_map, subject, new_sop_instance_uid, new_series_instance_uid)
    validate_rtstruct(rtstruct, ExpectedUids.from_uid_map(uid_map))
    _check_pseudonym(rtstruct, pseudonym)

    out = copy.deepcopy(rtstruct)
    _remove_elements(out, _unrestorable)
    _replace_uids(out, uid_map)
    out.SOPInstanceUID = new_sop_instance_uid
    out.SeriesInstanceUID = new_series_instance_uid
    _restore_subject(out, subject)
    for keyword in DEIDENTIFICATION_MARKERS:
        if keyword in out:
            delattr(out, keyword)
    add_frame_of_reference_module(out, position_reference_indicators or {})
    fill_type2(out)
    check_type1(out)
    out.file_meta = rtstruct_file_meta(new_sop_instance_uid)
    _check_fully_reidentified(out, uid_map, {new_sop_instance_uid, new_series_instance_uid})
    return out


def _check_arguments(uid_map: Mapping[str, tuple[str, str]], subject: Mapping[str, str],
                     new_sop_instance_uid: str, new_series_instance_uid: str) -> None:
    for name, value in (("new_sop_instance_uid", new_sop_instance_uid),
                        ("new_series_instance_uid", new_series_instance_uid)):
        if not UID(value).is_valid:
            raise ValueError(f"{name} is not a valid UID")
        if value in uid_map or any(value == original for original, _ in uid_map.values()):
            raise ValueError(f"{name} is one of the job's UIDs, not a new one")
    if new_sop_instance_uid == new_series_instance_uid:
        raise ValueError("the new SOP Instance UID and Series Instance UID must differ")
    missing = [key for key in REQUIRED_SUBJECT_KEYS if key not in subject]
    if missing:
        raise ValueError(f"the job's subject data lacks {', '.join(missing)}: cannot re-identify")
    for key, value in subject.items():
        tag = tag_for_keyword(key)
        if tag is None:
            raise ValueError(f"subject key {key!r} is not a DICOM keyword")
        if key in _NOT_FROM_SUBJECT or dictionary_VR(tag) in ("SQ", "UI"):
            raise ValueError(f"subject key {key} cannot be restored from subject data")
        if not isinstance(value, str):
            raise ValueError(f"subject value of {key} is not a string")


def _check_pseudonym(rtstruct: Dataset, pseudonym: str) -> None:
    present = str(rtstruct.get("PatientID") or "")
    if present and present != pseudonym:
        raise RtstructRejected("PatientID (0010,0020) of the RTSTRUCT is not this job's "
                               "pseudonym: it belongs to another job or patient")


def _unrestorable(tag: BaseTag) -> bool:
    """Private elements (nobody here can tell what they refer to) and retired ones (not
    part of the IOD) are not delivered."""
    return tag.is_private or is_retired(tag)


def _remove_elements(ds: Dataset, unwanted: Callable[[BaseTag], bool]) -> None:
    """Drop the ``unwanted`` elements at every nesting level, decoding only sequences."""
    for raw in list(ds.elements()):
        tag = BaseTag(raw.tag)
        if unwanted(tag):
            del ds[tag]
        elif element_vr(raw) == "SQ":
            for item in ds[tag].value:
                _remove_elements(item, unwanted)


def _replace_uids(ds: Dataset, uid_map: Mapping[str, tuple[str, str]]) -> None:
    for element in instance_uid_elements(ds):
        if is_own_identity(element):
            continue  # replaced by the new UIDs
        originals = []
        for value in element.values:
            if value not in uid_map:
                raise RtstructRejected(f"RTSTRUCT references a UID that is not in this job's map "
                                       f"at {element.path}: {value}")
            originals.append(uid_map[value][0])
        element.dataset[element.tag].value = originals if len(originals) > 1 else originals[0]


def _restore_subject(ds: Dataset, subject: Mapping[str, str]) -> None:
    values = {k: v for k, v in subject.items() if k != CHARACTER_SET_KEY}
    _prepare_character_set(ds, values.values(), subject.get(CHARACTER_SET_KEY))
    other_ids = [v for v in values.pop(OTHER_PATIENT_IDS_KEY, "").split("\\") if v]
    for keyword in IDENTITY_TYPE_2:
        if keyword not in values:
            setattr(ds, keyword, "")
    for keyword in IDENTITY_TYPE_3:
        if keyword in ds:
            delattr(ds, keyword)
    for keyword, value in values.items():
        if not is_retired(BaseTag(tag_for_keyword(keyword))):  # never restore a retired one
            setattr(ds, keyword, value)
    if other_ids:
        ds.OtherPatientIDsSequence = DicomSequence([_other_patient_id(v) for v in other_ids])


def _other_patient_id(patient_id: str) -> Dataset:
    item = Dataset()
    item.PatientID = patient_id
    item.TypeOfPatientID = OTHER_PATIENT_ID_TYPE
    return item


def _prepare_character_set(ds: Dataset, values: Iterable[str], wanted: str | None) -> None:
    """Non-ASCII names need a character set that can hold them: decode all text as it is
    now, then declare the original images' character set (UTF-8 when not known), so the
    text already there (ROI names) is written correctly too."""
    if all(value.isascii() for value in values):
        return
    ds.decode()
    ds.SpecificCharacterSet = wanted or UTF8


def _check_fully_reidentified(ds: Dataset, uid_map: Mapping[str, tuple[str, str]],
                              new_uids: set[str]) -> None:
    """After mapping, every instance UID is an original of this job or one of ours."""
    allowed = {original for original, _kind in uid_map.values()} | new_uids
    for element in instance_uid_elements(ds):
        for value in element.values:
            if value not in allowed:
                raise RtstructRejected(f"a UID was left unmapped at {element.path}")
