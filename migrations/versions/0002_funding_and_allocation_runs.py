"""Funding and allocation: reserve ledger, insurance tower, terms, runs, receivables.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import payouts.db.types

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('insurance_policies',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('policy_number', sa.String(length=60), nullable=False),
    sa.Column('insurer', sa.String(length=200), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('period_end', sa.Date(), nullable=False),
    sa.Column('created_by_label', sa.String(length=200), nullable=False),
    sa.Column('created_at', payouts.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('period_end >= period_start', name=op.f('ck_insurance_policies_period_ordered')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_insurance_policies')),
    sa.UniqueConstraint('policy_number', name=op.f('uq_insurance_policies_policy_number'))
    )
    op.create_table('insurance_layers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('policy_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('attachment_jpy', sa.BigInteger(), nullable=False),
    sa.Column('limit_jpy', sa.BigInteger(), nullable=False),
    sa.Column('share', payouts.db.types.ExactDecimal(), nullable=False),
    sa.Column('aggregate_limit_jpy', sa.BigInteger(), nullable=True),
    sa.Column('excluded_incident_types', sa.String(length=200), nullable=False),
    sa.Column('created_at', payouts.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('aggregate_limit_jpy IS NULL OR aggregate_limit_jpy >= 0', name=op.f('ck_insurance_layers_aggregate_non_negative')),
    sa.CheckConstraint('attachment_jpy >= 0', name=op.f('ck_insurance_layers_attachment_non_negative')),
    sa.CheckConstraint('limit_jpy >= 0', name=op.f('ck_insurance_layers_limit_non_negative')),
    sa.ForeignKeyConstraint(['policy_id'], ['insurance_policies.id'], name=op.f('fk_insurance_layers_policy_id_insurance_policies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_insurance_layers')),
    sa.UniqueConstraint('code', name=op.f('uq_insurance_layers_code'))
    )
    op.create_table('compensation_terms',
    sa.Column('incident_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('deductible_jpy', sa.BigInteger(), nullable=False),
    sa.Column('cap_jpy', sa.BigInteger(), nullable=True),
    sa.Column('tranches_jpy', sa.String(length=500), nullable=False),
    sa.Column('set_by_label', sa.String(length=200), nullable=False),
    sa.Column('set_at', payouts.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('cap_jpy IS NULL OR cap_jpy >= 0', name=op.f('ck_compensation_terms_cap_non_negative')),
    sa.CheckConstraint('deductible_jpy >= 0', name=op.f('ck_compensation_terms_deductible_non_negative')),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], name=op.f('fk_compensation_terms_incident_id_incidents')),
    sa.PrimaryKeyConstraint('incident_id', name=op.f('pk_compensation_terms'))
    )
    op.create_table('recoveries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('incident_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('amount_jpy', sa.BigInteger(), nullable=False),
    sa.Column('source', sa.String(length=300), nullable=False),
    sa.Column('created_by_label', sa.String(length=200), nullable=False),
    sa.Column('created_at', payouts.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount_jpy > 0', name=op.f('ck_recoveries_amount_positive')),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], name=op.f('fk_recoveries_incident_id_incidents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recoveries'))
    )
    op.create_table('allocation_runs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('incident_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('inputs_sha256', sa.String(length=64), nullable=False),
    sa.Column('inputs_summary', sa.Text(), nullable=False),
    sa.Column('customers', sa.BigInteger(), nullable=False),
    sa.Column('total_eligible_jpy', sa.BigInteger(), nullable=False),
    sa.Column('total_funded_jpy', sa.BigInteger(), nullable=False),
    sa.Column('shortfall_jpy', sa.BigInteger(), nullable=False),
    sa.Column('recovery_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_by_label', sa.String(length=200), nullable=False),
    sa.Column('created_at', payouts.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("(kind = 'initial') = (sequence = 1)", name=op.f('ck_allocation_runs_initial_first')),
    sa.CheckConstraint("kind IN ('initial', 'later_money')", name=op.f('ck_allocation_runs_kind_known')),
    sa.CheckConstraint('total_funded_jpy >= 0 AND shortfall_jpy >= 0 AND total_funded_jpy + shortfall_jpy = total_eligible_jpy', name=op.f('ck_allocation_runs_totals_reconcile')),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], name=op.f('fk_allocation_runs_incident_id_incidents')),
    sa.ForeignKeyConstraint(['recovery_id'], ['recoveries.id'], name=op.f('fk_allocation_runs_recovery_id_recoveries')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_allocation_runs')),
    sa.UniqueConstraint('incident_id', 'sequence', name=op.f('uq_allocation_runs_incident_id_sequence'))
    )
    op.create_table('allocation_lines',
    sa.Column('run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('customer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('approved_jpy', sa.BigInteger(), nullable=False),
    sa.Column('eligible_jpy', sa.BigInteger(), nullable=False),
    sa.Column('payout_jpy', sa.BigInteger(), nullable=False),
    sa.Column('by_source', sa.Text(), nullable=False),
    sa.CheckConstraint('payout_jpy >= 0 AND payout_jpy <= eligible_jpy AND eligible_jpy <= approved_jpy', name=op.f('ck_allocation_lines_payout_within_claim')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_allocation_lines_customer_id_customers')),
    sa.ForeignKeyConstraint(['run_id'], ['allocation_runs.id'], name=op.f('fk_allocation_lines_run_id_allocation_runs')),
    sa.PrimaryKeyConstraint('run_id', 'customer_id', name=op.f('pk_allocation_lines'))
    )
    with op.batch_alter_table('allocation_lines', schema=None) as batch_op:
        batch_op.create_index('ix_allocation_lines_customer', ['customer_id'], unique=False)

    op.create_table('allocation_sources',
    sa.Column('run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('draw_order', sa.Integer(), nullable=False),
    sa.Column('source_id', sa.String(length=40), nullable=False),
    sa.Column('layer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('available_jpy', sa.BigInteger(), nullable=False),
    sa.Column('used_jpy', sa.BigInteger(), nullable=False),
    sa.Column('aggregate_remaining_after_jpy', sa.BigInteger(), nullable=True),
    sa.CheckConstraint("source_id <> 'reserve' OR layer_id IS NULL", name=op.f('ck_allocation_sources_reserve_has_no_layer')),
    sa.CheckConstraint('used_jpy >= 0 AND used_jpy <= available_jpy', name=op.f('ck_allocation_sources_used_within_available')),
    sa.ForeignKeyConstraint(['layer_id'], ['insurance_layers.id'], name=op.f('fk_allocation_sources_layer_id_insurance_layers')),
    sa.ForeignKeyConstraint(['run_id'], ['allocation_runs.id'], name=op.f('fk_allocation_sources_run_id_allocation_runs')),
    sa.PrimaryKeyConstraint('run_id', 'draw_order', name=op.f('pk_allocation_sources'))
    )
    op.create_table('insurance_receivables',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('layer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('amount_jpy', sa.BigInteger(), nullable=False),
    sa.Column('received_jpy', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('received_jpy >= 0 AND received_jpy <= amount_jpy', name=op.f('ck_insurance_receivables_received_within_amount')),
    sa.ForeignKeyConstraint(['layer_id'], ['insurance_layers.id'], name=op.f('fk_insurance_receivables_layer_id_insurance_layers')),
    sa.ForeignKeyConstraint(['run_id'], ['allocation_runs.id'], name=op.f('fk_insurance_receivables_run_id_allocation_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_insurance_receivables')),
    sa.UniqueConstraint('run_id', 'layer_id', name=op.f('uq_insurance_receivables_run_id_layer_id'))
    )
    op.create_table('reserve_entries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('amount_jpy', sa.BigInteger(), nullable=False),
    sa.Column('incident_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('allocation_run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('memo', sa.String(length=500), nullable=False),
    sa.Column('created_by_label', sa.String(length=200), nullable=False),
    sa.Column('created_at', payouts.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("(kind IN ('deposit', 'withdrawal')) = (incident_id IS NULL)", name=op.f('ck_reserve_entries_incident_for_earmarks')),
    sa.CheckConstraint("kind IN ('deposit', 'withdrawal', 'earmark', 'release', 'payment')", name=op.f('ck_reserve_entries_kind_known')),
    sa.CheckConstraint('amount_jpy > 0', name=op.f('ck_reserve_entries_amount_positive')),
    sa.ForeignKeyConstraint(['allocation_run_id'], ['allocation_runs.id'], name=op.f('fk_reserve_entries_allocation_run_id_allocation_runs')),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], name=op.f('fk_reserve_entries_incident_id_incidents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reserve_entries'))
    )
    with op.batch_alter_table('reserve_entries', schema=None) as batch_op:
        batch_op.create_index('ix_reserve_entries_incident', ['incident_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('reserve_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_reserve_entries_incident')

    op.drop_table('reserve_entries')
    op.drop_table('insurance_receivables')
    op.drop_table('allocation_sources')
    with op.batch_alter_table('allocation_lines', schema=None) as batch_op:
        batch_op.drop_index('ix_allocation_lines_customer')

    op.drop_table('allocation_lines')
    op.drop_table('allocation_runs')
    op.drop_table('recoveries')
    op.drop_table('compensation_terms')
    op.drop_table('insurance_layers')
    op.drop_table('insurance_policies')
