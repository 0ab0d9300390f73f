"""Customer references compared byte by byte on PostgreSQL ("C" collation), as on SQLite.

An exchange's customer reference is an identifier, not words: sorting it by a language's rules
gains nothing and costs the loss import most of its customer-merge time. SQLite already
compares it byte by byte (BINARY), so both databases now order references the same way.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE customers ALTER COLUMN external_ref TYPE varchar(64) COLLATE "C"')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE customers ALTER COLUMN external_ref TYPE varchar(64) COLLATE "default"')
