"""Import jobs remember the login that queued them (import_jobs.created_by_id).

A loss file imported by a job was recorded with no importer, so the four-eyes rule that keeps
whoever imported an incident's losses from approving its claims did not see them: every large
file goes through a job.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('import_jobs') as batch:
        batch.add_column(sa.Column('created_by_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch.create_foreign_key(op.f('fk_import_jobs_created_by_id_users'), 'users', ['created_by_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('import_jobs') as batch:
        batch.drop_constraint(op.f('fk_import_jobs_created_by_id_users'), type_='foreignkey')
        batch.drop_column('created_by_id')
