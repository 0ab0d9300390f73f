"""Payments remember that an attempt with their key went unanswered (disbursements.key_unanswered).

A payment whose attempt timed out may be booked at the bank under its key. Telling that from the
last failure reason alone was not enough: a later "try again" answer (drawn before the bank looks
at the key) replaced the reason, and a retry then gave the payment a new key and a new account,
paying it twice. The flag stays set until an answer that speaks for the key arrives.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('disbursements') as batch:
        batch.add_column(sa.Column('key_unanswered', sa.Boolean(), server_default=sa.false(), nullable=False))
    # Payments whose last attempt timed out are the ones known to be unanswered.
    op.execute("UPDATE disbursements SET key_unanswered = true WHERE failure_reason = 'timeout'")


def downgrade() -> None:
    with op.batch_alter_table('disbursements') as batch:
        batch.drop_column('key_unanswered')
