"""Where a job taken over from a lost run picks up: after its packing, if that finished.

A stranded job (``jobs.claims.claim_stranded_job``) that was packed but never uploaded
goes straight to its upload: its zip and maps are complete (the zip is written
atomically, and its checksum is recorded only after the maps), so packing it again
would only cost time. A zip that does not match the recorded checksum, or a job
that never got that far, is prepared again from the start, in its own work folder.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy import select

from dicom_ops.config import Settings
from dicom_ops.db.audit import record_event
from dicom_ops.db.models import Transfer
from dicom_ops.db.session import session_scope
from dicom_ops.draw.transfer_lifecycle import awaits_upload
from dicom_ops.pipeline.export import ZIP_NAME
from dicom_ops.pipeline.workspace import job_work_dir


def already_packed(settings: Settings, job_id: int, *, actor: str = "draw_export") -> bool:
    """True when the job's upload zip is complete and waits for its upload; recorded as
    an audit event, so the job's history says why preparation did not run again."""
    with session_scope(settings.db_url) as session:
        transfer = session.scalars(select(Transfer).where(Transfer.job_id == job_id)
                                   ).one_or_none()
        if transfer is None or not awaits_upload(transfer.status) or not transfer.zip_sha256:
            return False
        expected = transfer.zip_sha256
    zip_path = job_work_dir(settings, job_id) / ZIP_NAME
    if not zip_path.is_file() or _sha256(zip_path) != expected:
        return False
    with session_scope(settings.db_url) as session:
        record_event(session, "packing kept", f"zip sha256 {expected[:12]} already packed; "
                     "continuing at the upload", job_id=job_id, actor=actor)
    return True


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
