"""pacs query records: one row per query of a PACS, one per series asked of it

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 06:56:56

The pacs_query DAG (and `dicom-ops pacs query`) records what each run found, what it
skipped and why, and what came back; `pacs_request` remembers each series asked for,
so a partial retrieve is asked again next run and a series still arriving is not.
A series fetched by C-GET or WADO-RS is registered by folder intake, so
``intake_folder.source`` may now be ``pacs`` too.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("intake_folder", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_intake_folder_source"), type_="check")
        batch_op.create_check_constraint("source", "source IN ('watcher', 'queue', 'pacs')")
    op.create_table('pacs_query',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pacs', sa.String(length=256), nullable=False),
    sa.Column('filters', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('studies_found', sa.Integer(), nullable=False),
    sa.Column('series_found', sa.Integer(), nullable=False),
    sa.Column('filtered', sa.Integer(), nullable=False),
    sa.Column('known', sa.Integer(), nullable=False),
    sa.Column('over_limit', sa.Integer(), nullable=False),
    sa.Column('unusable', sa.Integer(), nullable=False),
    sa.Column('requested', sa.Integer(), nullable=False),
    sa.Column('received_instances', sa.Integer(), nullable=False),
    sa.Column('failed_instances', sa.Integer(), nullable=False),
    sa.Column('failed_series', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.CheckConstraint("status IN ('running', 'done', 'failed')", name=op.f('ck_pacs_query_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pacs_query'))
    )
    op.create_table('pacs_request',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('query_id', sa.Integer(), nullable=False),
    sa.Column('study_uid', sa.String(length=64), nullable=False),
    sa.Column('series_uid', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('expected_instances', sa.Integer(), nullable=True),
    sa.Column('completed', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('warning', sa.Integer(), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("state IN ('planned', 'requested', 'received', 'partial', 'failed')", name=op.f('ck_pacs_request_state')),
    sa.ForeignKeyConstraint(['query_id'], ['pacs_query.id'], name=op.f('fk_pacs_request_query_id_pacs_query'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pacs_request'))
    )
    with op.batch_alter_table('pacs_request', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pacs_request_query_id'), ['query_id'], unique=False)
        batch_op.create_index('ix_pacs_request_series_uid', ['series_uid', 'id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('pacs_request', schema=None) as batch_op:
        batch_op.drop_index('ix_pacs_request_series_uid')
        batch_op.drop_index(batch_op.f('ix_pacs_request_query_id'))

    op.drop_table('pacs_request')
    op.drop_table('pacs_query')
    op.execute("DELETE FROM intake_folder WHERE source = 'pacs'")
    with op.batch_alter_table("intake_folder", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_intake_folder_source"), type_="check")
        batch_op.create_check_constraint("source", "source IN ('watcher', 'queue')")
