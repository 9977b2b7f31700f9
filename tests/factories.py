"""Synthetic DICOM for the tests: the factory lives in the package (``dicom-ops sample``
uses it too); this module is the tests' one place to import it from."""

from dicom_ops.devtools.synthetic import (  # noqa: F401
    HU_AIR,
    HU_BODY,
    HU_BONE,
    HU_LUNG,
    PRIVATE_CREATOR,
    SeriesGeometry,
    SyntheticPatient,
    as_localizer,
    instance_filename,
    make_ct_series,
    phantom_hu,
    synthetic_patient,
    synthetic_uid,
    with_burned_in_annotation,
    with_hostile_uids,
    without_sop_instance_uid,
    write_non_dicom,
    write_sample,
    write_series,
    write_truncated,
)
