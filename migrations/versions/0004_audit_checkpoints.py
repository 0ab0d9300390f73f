"""Audit checkpoints: published heads of the audit chain; append-only on PostgreSQL.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import payouts.db.types

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

CHECKPOINTS_APPEND_ONLY_SQL = """
CREATE FUNCTION audit_checkpoints_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_checkpoints is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_checkpoints_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_checkpoints_refuse_change();
"""


def upgrade() -> None:
    op.create_table('audit_checkpoints',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', payouts.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by_label', sa.String(length=200), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=False),
    sa.CheckConstraint('seq >= 1', name=op.f('ck_audit_checkpoints_seq_positive')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_checkpoints'))
    )
    op.create_index('ix_audit_checkpoints_seq', 'audit_checkpoints', ['seq'])
    if op.get_bind().dialect.name == 'postgresql':
        # Like audit_events: a published checkpoint is never rewritten or removed.
        op.execute(CHECKPOINTS_APPEND_ONLY_SQL)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP TRIGGER IF EXISTS audit_checkpoints_append_only ON audit_checkpoints')
        op.execute('DROP FUNCTION IF EXISTS audit_checkpoints_refuse_change()')
    op.drop_index('ix_audit_checkpoints_seq', 'audit_checkpoints')
    op.drop_table('audit_checkpoints')
