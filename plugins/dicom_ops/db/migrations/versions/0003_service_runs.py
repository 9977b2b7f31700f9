"""service runs: which items each service took, and how each of its jobs ended

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 07:00:00

Services (``include/services/<name>/``) run on event items: ready series, quiet
studies, delivered RTSTRUCTs. ``service_item`` records each item a service took
(once per service and item), ``service_run`` each job's outcome for it, shown by
``dicom-ops services runs``. Two indexes let services find recent items by time.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "service_item",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service", sa.String(length=128), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("item_key", sa.String(length=64), nullable=False),
        sa.Column("stamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("series_id", sa.Integer(), nullable=True),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("event IN ('series_ready', 'study_ready', 'rtstruct_delivered')",
                           name=op.f("ck_service_item_event")),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"], name=op.f("fk_service_item_job_id_job"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["series_id"], ["series.id"],
                                name=op.f("fk_service_item_series_id_series")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_item")),
        sa.UniqueConstraint("service", "event", "item_key", "stamp", name="service_item_once"),
    )
    with op.batch_alter_table("service_item", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_service_item_service"), ["service"], unique=False)
    op.create_table(
        "service_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("job_name", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('running', 'succeeded', 'failed', 'skipped')",
                           name=op.f("ck_service_run_status")),
        sa.ForeignKeyConstraint(["item_id"], ["service_item.id"],
                                name=op.f("fk_service_run_item_id_service_item"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_run")),
        sa.UniqueConstraint("item_id", "job_name", name="service_run_once"),
    )
    with op.batch_alter_table("service_run", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_service_run_item_id"), ["item_id"], unique=False)
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.create_index("ix_series_ready_at", ["ready_at"], unique=False)
    with op.batch_alter_table("transfer", schema=None) as batch_op:
        batch_op.create_index("ix_transfer_delivered_at", ["delivered_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("transfer", schema=None) as batch_op:
        batch_op.drop_index("ix_transfer_delivered_at")
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.drop_index("ix_series_ready_at")
    with op.batch_alter_table("service_run", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_service_run_item_id"))
    op.drop_table("service_run")
    with op.batch_alter_table("service_item", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_service_item_service"))
    op.drop_table("service_item")
