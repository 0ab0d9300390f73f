"""Foundation records: assets, users, customers, incidents, prices, loss imports, audit.

Revision ID: 0001
Revises: 
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import payouts.db.types
from payouts.db.types import non_negative_quantity_check

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None

AUDIT_APPEND_ONLY_SQL = """
CREATE FUNCTION audit_events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change();
"""


def upgrade() -> None:
    op.create_table('assets',
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('decimals', sa.Integer(), nullable=False),
    sa.CheckConstraint('decimals >= 0 AND decimals <= 30', name=op.f('ck_assets_decimals_range')),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_assets'))
    )
    op.create_table('audit_events',
    sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('occurred_at', payouts.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor_user_id', sa.BigInteger(), nullable=True),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('actor_role', sa.String(length=20), nullable=False),
    sa.Column('action', sa.String(length=80), nullable=False),
    sa.Column('subject_type', sa.String(length=40), nullable=False),
    sa.Column('subject_id', sa.String(length=80), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('details', sa.Text(), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.CheckConstraint('seq >= 1', name=op.f('ck_audit_events_seq_positive')),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_audit_events')),
    sa.UniqueConstraint('hash', name=op.f('uq_audit_events_hash'))
    )
    op.create_index('ix_audit_events_action', 'audit_events', ['action'])
    op.create_index('ix_audit_events_subject', 'audit_events', ['subject_type', 'subject_id'])
    if op.get_bind().dialect.name == 'postgresql':
        # The audit trail is append-only: even the application's own role cannot rewrite it.
        op.execute(AUDIT_APPEND_ONLY_SQL)

    op.create_table('customers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('external_ref', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('locale', sa.String(length=8), nullable=False),
    sa.Column('created_at', payouts.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', payouts.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customers')),
    sa.UniqueConstraint('external_ref', name=op.f('uq_customers_external_ref'))
    )
    op.create_table('users',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('username', sa.String(length=120), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('customer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('session_version', sa.Integer(), nullable=False),
    sa.Column('created_at', payouts.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_login_at', payouts.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("(role = 'customer') = (customer_id IS NOT NULL)", name=op.f('ck_users_customer_link')),
    sa.CheckConstraint("role IN ('customer', 'staff', 'approver', 'admin', 'regulator')", name=op.f('ck_users_role_known')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_users_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('customer_id', name=op.f('uq_users_customer_id')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    op.create_table('incidents',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('ref', sa.String(length=40), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('incident_type', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('occurred_at', payouts.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('discovered_at', payouts.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('created_at', payouts.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.CheckConstraint("incident_type IN ('hack', 'operational_failure', 'insider_fraud', 'other')", name=op.f('ck_incidents_type_known')),
    sa.CheckConstraint("status IN ('recorded', 'claims_open', 'paying', 'closed')", name=op.f('ck_incidents_status_known')),
    sa.CheckConstraint('discovered_at >= occurred_at', name=op.f('ck_incidents_discovered_after_occurred')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_incidents_created_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_incidents')),
    sa.UniqueConstraint('ref', name=op.f('uq_incidents_ref'))
    )
    op.create_table('loss_imports',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('incident_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('byte_size', sa.BigInteger(), nullable=False),
    sa.Column('row_count', sa.BigInteger(), nullable=False),
    sa.Column('customers_created', sa.BigInteger(), nullable=False),
    sa.Column('customers_updated', sa.BigInteger(), nullable=False),
    sa.Column('positions_created', sa.BigInteger(), nullable=False),
    sa.Column('positions_updated', sa.BigInteger(), nullable=False),
    sa.Column('positions_unchanged', sa.BigInteger(), nullable=False),
    sa.Column('imported_by_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('imported_by_label', sa.String(length=200), nullable=False),
    sa.Column('created_at', payouts.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['imported_by_id'], ['users.id'], name=op.f('fk_loss_imports_imported_by_id_users')),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], name=op.f('fk_loss_imports_incident_id_incidents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_loss_imports')),
    sa.UniqueConstraint('incident_id', 'sha256', name=op.f('uq_loss_imports_incident_id_sha256'))
    )
    op.create_table('reference_prices',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('incident_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('asset_code', sa.String(length=16), nullable=False),
    sa.Column('price_jpy', payouts.db.types.ExactDecimal(), nullable=False),
    sa.Column('source', sa.String(length=500), nullable=False),
    sa.Column('set_by_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('set_by_label', sa.String(length=200), nullable=False),
    sa.Column('set_at', payouts.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['asset_code'], ['assets.code'], name=op.f('fk_reference_prices_asset_code_assets')),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], name=op.f('fk_reference_prices_incident_id_incidents')),
    sa.ForeignKeyConstraint(['set_by_id'], ['users.id'], name=op.f('fk_reference_prices_set_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reference_prices')),
    sa.UniqueConstraint('incident_id', 'asset_code', name=op.f('uq_reference_prices_incident_id_asset_code'))
    )
    op.create_table('loss_positions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('incident_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('customer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('asset_code', sa.String(length=16), nullable=False),
    sa.Column('amount_minor', payouts.db.types.ExactInteger(precision=78, scale=0), nullable=False),
    sa.Column('import_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['asset_code'], ['assets.code'], name=op.f('fk_loss_positions_asset_code_assets')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_loss_positions_customer_id_customers')),
    sa.ForeignKeyConstraint(['import_id'], ['loss_imports.id'], name=op.f('fk_loss_positions_import_id_loss_imports')),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], name=op.f('fk_loss_positions_incident_id_incidents')),
    sa.CheckConstraint(
        non_negative_quantity_check('amount_minor', op.get_bind().dialect.name),
        name=op.f('ck_loss_positions_amount_non_negative'),
    ),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_loss_positions')),
    sa.UniqueConstraint('incident_id', 'customer_id', 'asset_code', name=op.f('uq_loss_positions_incident_id_customer_id_asset_code'))
    )
    op.create_index('ix_loss_positions_customer', 'loss_positions', ['customer_id'])
    op.bulk_insert(
        sa.table('assets', sa.column('code'), sa.column('name'), sa.column('decimals')),
        [
            {'code': 'JPY', 'name': 'Japanese yen', 'decimals': 0},
            {'code': 'BTC', 'name': 'Bitcoin', 'decimals': 8},
            {'code': 'ETH', 'name': 'Ether', 'decimals': 18},
            {'code': 'XRP', 'name': 'XRP', 'decimals': 6},
            {'code': 'XEM', 'name': 'NEM', 'decimals': 6},
            {'code': 'USDT', 'name': 'Tether USD', 'decimals': 6},
        ],
    )



def downgrade() -> None:
    op.drop_index('ix_loss_positions_customer', 'loss_positions')
    op.drop_table('loss_positions')
    op.drop_table('reference_prices')
    op.drop_table('loss_imports')
    op.drop_table('incidents')
    op.drop_table('users')
    op.drop_table('customers')
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events')
        op.execute('DROP FUNCTION IF EXISTS audit_events_refuse_change()')
    op.drop_index('ix_audit_events_subject', 'audit_events')
    op.drop_index('ix_audit_events_action', 'audit_events')
    op.drop_table('audit_events')
    op.drop_table('assets')
