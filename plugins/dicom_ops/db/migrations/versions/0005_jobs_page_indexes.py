"""jobs page indexes: the jobs table's filters and plots stay fast with 100,000 jobs

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 08:00:00

The "DICOM jobs" page pages by keyset on the job id, newest first, filtered by status,
template or creation day, and plots the last 30 days by creation and by finish time.
Each of those needs an index that starts with its column (and, for the filters, ends
with the id the page is ordered by); without them every page is a full scan of ``job``.
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_job_status_id": ["status", "id"],
    "ix_job_template_id": ["template", "id"],
    "ix_job_created_at": ["created_at"],
    "ix_job_finished_at": ["finished_at"],
}


def upgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        for name, columns in INDEXES.items():
            batch_op.create_index(name, columns)


def downgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        for name in INDEXES:
            batch_op.drop_index(name)
