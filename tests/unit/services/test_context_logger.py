"""The worker's logger never writes the item's patient identifiers at INFO or above."""

from __future__ import annotations

import logging

from dicom_ops.services.context import PhiSafeLogger, identifiers_of
from pydicom.dataset import Dataset


def headers() -> Dataset:
    ds = Dataset()
    ds.PatientName = "Testpatient^Wilhelmina"
    ds.PatientID = "MRN0042"
    ds.PatientBirthDate = "19510203"
    ds.AccessionNumber = "ACC777"
    return ds


def test_info_lines_lose_names_ids_dates_accession_and_uids_debug_keeps_them(caplog):
    logger = PhiSafeLogger(logging.getLogger("dicom_ops.services.test"), identifiers_of(headers()))

    with caplog.at_level(logging.DEBUG, logger="dicom_ops.services.test"):
        logger.info("patient %s (%s) born %s, accession %s, series %s", "TESTPATIENT^Wilhelmina",
                    "MRN0042", "19510203", "ACC777", "1.2.826.0.1.3680043.8.498.1")
        logger.warning("no slices for Wilhelmina")
        logger.debug("debug keeps %s", "MRN0042")

    info, warning, debug = (record.getMessage() for record in caplog.records)
    assert info == ("patient <redacted>^<redacted> (<redacted>) born <redacted>, accession "
                    "<redacted>, series <uid>")
    assert warning == "no slices for <redacted>"
    assert debug == "debug keeps MRN0042"


def test_an_exception_logs_its_traceback_only_at_debug(caplog):
    logger = PhiSafeLogger(logging.getLogger("dicom_ops.services.test"), identifiers_of(headers()))

    with caplog.at_level(logging.DEBUG, logger="dicom_ops.services.test"):
        try:
            raise ValueError("MRN0042 broke")
        except ValueError:
            logger.exception("failed for %s", "MRN0042")

    above_debug = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert [r.getMessage() for r in above_debug] == ["failed for <redacted>"]
    assert above_debug[0].exc_info is None
    assert any(r.exc_info for r in caplog.records if r.levelno == logging.DEBUG)
