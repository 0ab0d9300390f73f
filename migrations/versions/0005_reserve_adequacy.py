"""Reserve adequacy: rule versions, trading volumes, wallet snapshots, past incidents, stress tests.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import payouts.db.types

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('external_incidents',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('occurred_on', sa.Date(), nullable=False),
    sa.Column('loss_jpy', sa.BigInteger(), nullable=False),
    sa.Column('description', sa.String(length=500), nullable=False),
    sa.Column('recorded_by_label', sa.String(length=200), nullable=False),
    sa.Column('recorded_at', payouts.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('loss_jpy >= 0', name=op.f('ck_external_incidents_loss_non_negative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_external_incidents'))
    )
    op.create_table('reserve_rule_versions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('effective_from', sa.Date(), nullable=False),
    sa.Column('parameters', sa.Text(), nullable=False),
    sa.Column('illustrative', sa.Boolean(), nullable=False),
    sa.Column('rationale', sa.Text(), nullable=False),
    sa.Column('created_by_label', sa.String(length=200), nullable=False),
    sa.Column('created_at', payouts.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('version >= 1', name=op.f('ck_reserve_rule_versions_version_positive')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reserve_rule_versions')),
    sa.UniqueConstraint('version', name=op.f('uq_reserve_rule_versions_version'))
    )
    op.create_table('stress_tests',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.Column('preset', sa.String(length=40), nullable=True),
    sa.Column('wallet', sa.String(length=10), nullable=False),
    sa.Column('share_lost', payouts.db.types.ExactDecimal(), nullable=False),
    sa.Column('loss_jpy', sa.BigInteger(), nullable=False),
    sa.Column('customers', sa.Integer(), nullable=False),
    sa.Column('as_of', sa.Date(), nullable=False),
    sa.Column('funded_jpy', sa.BigInteger(), nullable=False),
    sa.Column('shortfall_jpy', sa.BigInteger(), nullable=False),
    sa.Column('details', sa.Text(), nullable=False),
    sa.Column('created_by_label', sa.String(length=200), nullable=False),
    sa.Column('created_at', payouts.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("wallet IN ('cold', 'hot')", name=op.f('ck_stress_tests_wallet_known')),
    sa.CheckConstraint('funded_jpy + shortfall_jpy = loss_jpy', name=op.f('ck_stress_tests_totals_reconcile')),
    sa.CheckConstraint('funded_jpy >= 0 AND shortfall_jpy >= 0', name=op.f('ck_stress_tests_amounts_non_negative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stress_tests'))
    )
    op.create_table('trading_volumes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('month', sa.Date(), nullable=False),
    sa.Column('market', sa.String(length=40), nullable=False),
    sa.Column('volume_jpy', sa.BigInteger(), nullable=False),
    sa.Column('recorded_by_label', sa.String(length=200), nullable=False),
    sa.Column('recorded_at', payouts.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('volume_jpy >= 0', name=op.f('ck_trading_volumes_volume_non_negative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trading_volumes')),
    sa.UniqueConstraint('month', 'market', name=op.f('uq_trading_volumes_month_market'))
    )
    op.create_table('wallet_snapshots',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('as_of', sa.Date(), nullable=False),
    sa.Column('wallet', sa.String(length=10), nullable=False),
    sa.Column('value_jpy', sa.BigInteger(), nullable=False),
    sa.Column('recorded_by_label', sa.String(length=200), nullable=False),
    sa.Column('recorded_at', payouts.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("wallet IN ('cold', 'hot')", name=op.f('ck_wallet_snapshots_wallet_known')),
    sa.CheckConstraint('value_jpy >= 0', name=op.f('ck_wallet_snapshots_value_non_negative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wallet_snapshots')),
    sa.UniqueConstraint('as_of', 'wallet', name=op.f('uq_wallet_snapshots_as_of_wallet'))
    )
    _append_only()


APPEND_ONLY = ("reserve_rule_versions", "stress_tests")


def _append_only() -> None:
    """Rule versions and stored stress tests are records of what was decided: never rewritten."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE FUNCTION adequacy_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP"
        " USING ERRCODE = 'insufficient_privilege'; END; $$"
    )
    for table in APPEND_ONLY:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {table}"
            " FOR EACH STATEMENT EXECUTE FUNCTION adequacy_refuse_change()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute("DROP FUNCTION IF EXISTS adequacy_refuse_change()")
    op.drop_table('wallet_snapshots')
    op.drop_table('trading_volumes')
    op.drop_table('stress_tests')
    op.drop_table('reserve_rule_versions')
    op.drop_table('external_incidents')
