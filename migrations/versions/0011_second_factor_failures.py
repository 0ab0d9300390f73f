"""Wrong second-factor codes counted on the server (users.totp_failures).

The count of wrong codes for a login waiting for its second factor lived in the signed session
cookie, so replaying the cookie issued after the password started the count again. Counted
here, enough wrong codes end every pending second step of the user (their session version
moves on), whatever cookie is sent.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('totp_failures', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.drop_column('totp_failures')
