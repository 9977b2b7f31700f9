"""Keeping what re-identification needs in the app DB: the UID map and the subject map.

``uid_map`` rows hold de-identified UID -> original UID per job (UIDs are not patient
demographics; re-identification must look them up). ``subject_map`` holds the pseudonym,
the date offset and the demographics, the latter only as a Fernet token.
"""

from __future__ import annotations

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from dicom_ops.db.models import SubjectMap, UidMap
from dicom_ops.deid.checked import CheckedDeidResult
from dicom_ops.deid.engine import SeriesDeidResult
from dicom_ops.deid.keys import DeidKeys
from dicom_ops.deid.subject import decrypt_subject, encrypt_subject


def store_deid_maps(session: Session, job_id: int,
                    result: SeriesDeidResult | CheckedDeidResult, keys: DeidKeys) -> None:
    """Write the job's UID map and encrypted subject map, replacing earlier ones of the job
    (a retried de-identification gives the same UIDs)."""
    session.execute(delete(UidMap).where(UidMap.job_id == job_id))
    session.execute(delete(SubjectMap).where(SubjectMap.job_id == job_id))
    rows = [{"job_id": job_id, "deid_uid": new, "original_uid": original, "kind": kind}
            for new, (original, kind) in sorted(result.uid_map.items())]
    if rows:
        session.execute(insert(UidMap), rows)
    session.add(SubjectMap(job_id=job_id, pseudonym=result.pseudonym,
                           date_offset_days=result.date_offset_days,
                           encrypted=encrypt_subject(result.subject, keys)))
    session.flush()


def load_uid_map(session: Session, job_id: int) -> dict[str, tuple[str, str]]:
    """De-identified UID -> (original UID, kind) for the job."""
    rows = session.execute(select(UidMap.deid_uid, UidMap.original_uid, UidMap.kind)
                           .where(UidMap.job_id == job_id))
    return {deid: (original, kind) for deid, original, kind in rows}


def load_subject(session: Session, job_id: int, keys: DeidKeys
                 ) -> tuple[str, int, dict[str, str]] | None:
    """(pseudonym, date offset in days, original demographics) of the job, or None."""
    row = session.execute(select(SubjectMap).where(SubjectMap.job_id == job_id)).scalar_one_or_none()
    if row is None:
        return None
    return row.pseudonym, row.date_offset_days, decrypt_subject(row.encrypted, keys)
