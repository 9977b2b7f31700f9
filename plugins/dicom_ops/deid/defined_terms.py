"""Defined terms of the code-string (CS) attributes that leave the hospital.

The egress check does not count a CS value that is a defined term of its attribute as an
identifier: ``PERFUSION`` in ImageType is the standard's word for a kind of image, even
for a patient named Perfusion. Any other CS value (a vendor's own term, a typo, a name
someone typed into a code field) is still searched like all text.

pydicom ships no defined terms per attribute, so this table is written from the
standard (PS3.3 and PS3.16, 2024b) for the CS attributes our recipe keeps whose terms
are long enough to be searched (3 characters or more; shorter values are never hits).
A term missing here only makes the check stricter; a wrong term would blind it to a
patient of that name, so only terms the standard defines for that attribute are listed:

- ImageType (0008,0008) and FrameType (0008,9007): PS3.3 C.7.6.1.1.2 (values 1 and 2),
  C.8.2.1.1.1 (CT Image, value 3), C.8.16.1 and C.8.16.2.1 (Enhanced CT/MR Image and
  the Frame Type functional groups: values 3 and 4), C.8.13.1.1.1 (Enhanced MR, value 3).
- BodyPartExamined (0018,0015): PS3.16 Annex L (CID 4031 "Common Anatomic Regions",
  the values written into Body Part Examined).
- PatientPosition (0018,5100): PS3.3 C.7.3.1.1.2.
- ScanOptions (0018,0022): PS3.3 C.8.3.1 (MR Image).
- SequenceVariant (0018,0021): PS3.3 C.8.3.1 (MR Image).

The same holds for the standard's phrases that dicom-ops itself writes: a code meaning
of CID 7050 "De-identification Method" (PS3.16) as a CodeMeaning (0008,0104) or as a
value of DeidentificationMethod (0012,0063) ("Retain Patient Characteristics Option"
is not a leak for a patient whose name holds "Patient", as some scanners' test names do).
"""

from __future__ import annotations

_IMAGE_TYPE = (
    # values 1 and 2
    "ORIGINAL DERIVED MIXED PRIMARY SECONDARY "
    # CT Image value 3
    "AXIAL LOCALIZER "
    # Enhanced CT/MR value 3 (common terms)
    "ANGIO CARDIAC CARDIAC_GATED CARDRESP_GATED DYNAMIC FLUOROSCOPY MOTION PERFUSION "
    "PRE_CONTRAST POST_CONTRAST REST STATIC STRESS VOLUME NON_PARALLEL PARALLEL WHOLE_BODY "
    # Enhanced CT value 3
    "ATTENUATION CARDIAC_CASCORE CARDIAC_CTA "
    # Enhanced MR value 3
    "DIFFUSION FLOW_ENCODED FLUID_ATTENUATED FMRI MAX_IP MIN_IP METABOLITE_MAP MULTIECHO "
    "M_MODE PROTON_DENSITY REALTIME STIR TAGGING TEMPERATURE T1 T2 T2_STAR TOF VELOCITY "
    # value 4 (derived pixel contrast)
    "ADDITION DIVISION MASKED MAXIMUM MEAN MINIMUM MULTIPLICATION NONE QUANTITY RESAMPLED "
    "STD_DEVIATION SUBTRACTION FILTERED"
)
_BODY_PART = (
    "SKULL CSPINE TSPINE LSPINE SSPINE COCCYX CHEST CLAVICLE BREAST ABDOMEN PELVIS HIP "
    "SHOULDER ELBOW KNEE ANKLE HAND FOOT EXTREMITY HEAD HEART NECK LEG ARM JAW "
    "HEADNECK CHESTABDOMEN CHESTABDPELVIS ABDOMENPELVIS WHOLEBODY BRAIN PROSTATE LIVER "
    "LUNG KIDNEY BLADDER RECTUM ESOPHAGUS STOMACH PANCREAS THYROID UTERUS CERVIX SPLEEN "
    "EYE ORBIT LARYNX PAROTID TESTIS COLON"
)
_PATIENT_POSITION = "HFP HFS HFDR HFDL FFDR FFDL FFP FFS LFP LFS RFP RFS AFDR AFDL PFDR PFDL"
_MR_SCAN_OPTIONS = "PER RG CG PPG FC PFF PFP SP FS"
_SEQUENCE_VARIANT = "SK MTC SS TRSS SP MP OSP NONE"

# CID 7050 "De-identification Method" (PS3.16), coding scheme DCM.
CID_7050 = {
    "113100": "Basic Application Confidentiality Profile",
    "113101": "Clean Pixel Data Option",
    "113102": "Clean Recognizable Visual Features Option",
    "113103": "Clean Graphics Option",
    "113104": "Clean Structured Content Option",
    "113105": "Clean Descriptors Option",
    "113106": "Retain Longitudinal Temporal Information Full Dates Option",
    "113107": "Retain Longitudinal Temporal Information Modified Dates Option",
    "113108": "Retain Patient Characteristics Option",
    "113109": "Retain Device Identity Option",
    "113110": "Retain UIDs Option",
    "113111": "Retain Safe Private Option",
    "113112": "Retain Institution Identity Option",
}
_CID_7050_MEANINGS = frozenset(meaning.upper() for meaning in CID_7050.values())

DEFINED_TERMS: dict[int, frozenset[str]] = {
    0x00080104: _CID_7050_MEANINGS,  # CodeMeaning
    0x00120063: _CID_7050_MEANINGS,  # DeidentificationMethod
    0x00080008: frozenset(_IMAGE_TYPE.split()),  # ImageType
    0x00089007: frozenset(_IMAGE_TYPE.split()),  # FrameType (enhanced objects)
    0x00180015: frozenset(_BODY_PART.split()),  # BodyPartExamined
    0x00185100: frozenset(_PATIENT_POSITION.split()),  # PatientPosition
    0x00180022: frozenset(_MR_SCAN_OPTIONS.split()),  # ScanOptions
    0x00180021: frozenset(_SEQUENCE_VARIANT.split()),  # SequenceVariant
}


def is_defined_term(tag: int, value: str) -> bool:
    """Whether ``value`` (one value of a CS element, or of the two attributes above) is a
    defined term or phrase of ``tag``."""
    terms = DEFINED_TERMS.get(tag)
    return terms is not None and value.strip(" \0").upper() in terms
