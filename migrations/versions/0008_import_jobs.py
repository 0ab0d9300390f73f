"""Import jobs: large loss files run by a worker, with a status to follow.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import payouts.db.types

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('import_jobs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('incident_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('stored_name', sa.String(length=100), nullable=False),
    sa.Column('byte_size', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('outcome', sa.String(length=30), nullable=True),
    sa.Column('import_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('rows', sa.BigInteger(), nullable=True),
    sa.Column('problem_count', sa.BigInteger(), nullable=True),
    sa.Column('problems', sa.Text(), nullable=False),
    sa.Column('created_by_label', sa.String(length=200), nullable=False),
    sa.Column('created_by_role', sa.String(length=20), nullable=False),
    sa.Column('created_at', payouts.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', payouts.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', payouts.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('queued', 'running', 'done')", name=op.f('ck_import_jobs_status_known')),
    sa.ForeignKeyConstraint(['import_id'], ['loss_imports.id'], name=op.f('fk_import_jobs_import_id_loss_imports')),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], name=op.f('fk_import_jobs_incident_id_incidents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_jobs')),
    sa.UniqueConstraint('stored_name', name=op.f('uq_import_jobs_stored_name'))
    )
    with op.batch_alter_table('import_jobs', schema=None) as batch_op:
        batch_op.create_index('ix_import_jobs_incident', ['incident_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('import_jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_import_jobs_incident')

    op.drop_table('import_jobs')
