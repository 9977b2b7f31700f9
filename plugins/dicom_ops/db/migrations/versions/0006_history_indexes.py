"""history indexes: the import's poll does not read every upload attempt ever made

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 07:30:00

``transfer_lifecycle.further_results`` runs on every import poll and looks for
accepted upload attempts whose server copy is not settled yet. Without an index
both SQLite and PostgreSQL read the whole ``upload_attempt`` table, one row per
upload ever made (bench/history.py shows the plan and the cost with 10,000 finished
jobs). The other recurring queries needed no index, only a correlated subquery
(``jobs.recovery``) or starting from the folders on disk (``cleanup.survey``).
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("upload_attempt", schema=None) as batch_op:
        batch_op.create_index("ix_upload_attempt_unsettled", ["server_copy", "outcome"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("upload_attempt", schema=None) as batch_op:
        batch_op.drop_index("ix_upload_attempt_unsettled")
