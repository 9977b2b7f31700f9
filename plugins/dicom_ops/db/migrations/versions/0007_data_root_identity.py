"""data root identity: which data root (shared folder) this app DB belongs to

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 07:10:00

With workers on several hosts, each host mounts the data root itself. A host that
mounted the wrong folder (or none: an empty local directory) would write series and
results where nobody else sees them. ``dicom-ops db upgrade`` now writes a marker
file with an id into the data root and the same id here; the listener and the
workers compare the two at start. No row yet means "not stamped": the next
``db upgrade`` stamps it.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "data_root_identity",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("marker_id", sa.String(length=64), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_root_identity")),
        sa.UniqueConstraint("marker_id", name=op.f("uq_data_root_identity_marker_id")),
    )


def downgrade() -> None:
    op.drop_table("data_root_identity")
