"""upload attempts: every upload attempt of a job, remembered

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 10:00:00

Before this revision a transfer kept only a counter of its attempts, and an
attempt whose answer was lost failed the job for a person to check. From now on
every attempt is a row (``upload_attempt``), so an unknown outcome can be retried
automatically within ``DICOM_OPS_MAX_UPLOAD_ATTEMPTS`` and every task the server
answered for can be followed up. Existing transfers get the rows they imply: a
task id the server gave becomes an ``accepted`` attempt, a transfer left
``uploading`` an ``unknown`` one.
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "upload_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("server_task_id", sa.String(length=256), nullable=True),
        sa.Column("server_copy", sa.String(length=16), nullable=True),
        sa.Column("server_copy_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "outcome IN ('unknown', 'accepted', 'refused')",
            name=op.f("ck_upload_attempt_outcome"),
        ),
        sa.CheckConstraint(
            "server_copy IS NULL OR server_copy IN ('confirmed', 'failed', 'gone', 'abandoned')",
            name=op.f("ck_upload_attempt_server_copy"),
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["job.id"], name=op.f("fk_upload_attempt_job_id_job"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_upload_attempt")),
        sa.UniqueConstraint("job_id", "number", name="job_number"),
    )
    with op.batch_alter_table("upload_attempt", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_upload_attempt_job_id"), ["job_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_upload_attempt_server_task_id"),
                              ["server_task_id"], unique=False)
    _attempts_of_existing_transfers()


def _attempts_of_existing_transfers() -> None:
    """One attempt row per transfer that has been answered or is mid-upload."""
    connection = op.get_bind()
    transfer = sa.table(
        "transfer", sa.column("job_id", sa.Integer), sa.column("status", sa.String),
        sa.column("server_task_id", sa.String), sa.column("upload_attempts", sa.Integer),
        sa.column("uploaded_at", sa.DateTime(timezone=True)),
        sa.column("confirmed_at", sa.DateTime(timezone=True)),
    )
    attempt = sa.table(
        "upload_attempt", sa.column("job_id", sa.Integer), sa.column("number", sa.Integer),
        sa.column("started_at", sa.DateTime(timezone=True)),
        sa.column("ended_at", sa.DateTime(timezone=True)),
        sa.column("outcome", sa.String), sa.column("detail", sa.String),
        sa.column("server_task_id", sa.String), sa.column("server_copy", sa.String),
        sa.column("server_copy_at", sa.DateTime(timezone=True)),
    )
    now = datetime.now(UTC)
    rows = []
    for job_id, status, task_id, attempts, uploaded_at, confirmed_at in connection.execute(
            sa.select(transfer.c.job_id, transfer.c.status, transfer.c.server_task_id,
                      transfer.c.upload_attempts, transfer.c.uploaded_at,
                      transfer.c.confirmed_at)):
        number = max(attempts or 0, 1)
        if task_id:
            rows.append({"job_id": job_id, "number": number,
                         "started_at": uploaded_at or now, "ended_at": uploaded_at or now,
                         "outcome": "accepted", "detail": "recorded before revision 0002",
                         "server_task_id": task_id,
                         "server_copy": "confirmed" if status == "confirmed" else None,
                         "server_copy_at": confirmed_at if status == "confirmed" else None})
        elif status == "uploading":
            rows.append({"job_id": job_id, "number": number, "started_at": now,
                         "ended_at": None, "outcome": "unknown",
                         "detail": "in flight before revision 0002", "server_task_id": None,
                         "server_copy": None, "server_copy_at": None})
    if rows:
        op.bulk_insert(attempt, rows)


def downgrade() -> None:
    with op.batch_alter_table("upload_attempt", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_upload_attempt_server_task_id"))
        batch_op.drop_index(batch_op.f("ix_upload_attempt_job_id"))
    op.drop_table("upload_attempt")
