"""Loss positions keyed by (incident, customer, asset); on PostgreSQL, partitioned by incident.

The surrogate id goes (nothing referred to it) and the natural key becomes the primary key. On
PostgreSQL the table becomes a LIST partitioned table with a DEFAULT partition for rows written
one at a time; a first import into an incident builds and attaches that incident's own partition
(payouts.db.loss_partitions). Existing rows are carried over unchanged, each incident's into a
partition of its own.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import payouts.db.types
from payouts.db.types import non_negative_quantity_check

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_COLUMNS = "incident_id, customer_id, asset_code, amount_minor, import_id"


def _create(with_id: bool) -> None:
    dialect = op.get_bind().dialect.name
    columns = [sa.Column('id', _ID, nullable=False)] if with_id else []
    key = (
        [sa.PrimaryKeyConstraint('id', name=op.f('pk_loss_positions')),
         sa.UniqueConstraint('incident_id', 'customer_id', 'asset_code',
                             name=op.f('uq_loss_positions_incident_id_customer_id_asset_code'))]
        if with_id else
        [sa.PrimaryKeyConstraint('incident_id', 'customer_id', 'asset_code',
                                 name=op.f('pk_loss_positions'))]
    )
    op.create_table(
        'loss_positions',
        *columns,
        sa.Column('incident_id', _ID, nullable=False, autoincrement=False),
        sa.Column('customer_id', _ID, nullable=False, autoincrement=False),
        sa.Column('asset_code', sa.String(length=16), nullable=False),
        sa.Column('amount_minor', payouts.db.types.ExactInteger(precision=78, scale=0), nullable=False),
        sa.Column('import_id', _ID, nullable=False),
        sa.ForeignKeyConstraint(['asset_code'], ['assets.code'], name=op.f('fk_loss_positions_asset_code_assets')),
        sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_loss_positions_customer_id_customers')),
        sa.ForeignKeyConstraint(['import_id'], ['loss_imports.id'], name=op.f('fk_loss_positions_import_id_loss_imports')),
        sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], name=op.f('fk_loss_positions_incident_id_incidents')),
        sa.CheckConstraint(non_negative_quantity_check('amount_minor', dialect),
                           name=op.f('ck_loss_positions_amount_non_negative')),
        *key,
        **({} if with_id or dialect != 'postgresql'
           else {'postgresql_partition_by': 'LIST (incident_id)'}),
    )
    if not with_id and dialect == 'postgresql':
        op.execute('CREATE TABLE loss_positions_default PARTITION OF loss_positions DEFAULT')
    op.create_index('ix_loss_positions_customer', 'loss_positions', ['customer_id'])


def _set_aside() -> None:
    """Rename the current table (and, on PostgreSQL, its schema-wide index names) out of the way."""
    op.drop_index('ix_loss_positions_customer', 'loss_positions')
    op.rename_table('loss_positions', 'loss_positions_old')
    if op.get_bind().dialect.name == 'postgresql':
        for index in ('pk_loss_positions', 'uq_loss_positions_incident_id_customer_id_asset_code'):
            op.execute(f'ALTER INDEX IF EXISTS {index} RENAME TO {index}_old')


def upgrade() -> None:
    _set_aside()
    _create(with_id=False)
    if op.get_bind().dialect.name == 'postgresql':
        # Each incident's positions go to its own partition, as an import would have put them:
        # the DEFAULT partition stays empty, so attaching a new incident's partition later has
        # nothing to scan there.
        incident_ids = op.get_bind().execute(
            sa.text('SELECT DISTINCT incident_id FROM loss_positions_old ORDER BY 1')).scalars().all()
        for incident_id in incident_ids:
            op.execute(f'CREATE TABLE loss_positions_incident_{int(incident_id)} PARTITION OF loss_positions'
                       f' FOR VALUES IN ({int(incident_id)})')
    op.execute(f'INSERT INTO loss_positions ({_COLUMNS}) SELECT {_COLUMNS} FROM loss_positions_old')
    op.drop_table('loss_positions_old')


def downgrade() -> None:
    # Partitions built by imports go with their parent; every row comes back into one table.
    _set_aside()
    _create(with_id=True)
    op.execute(
        f'INSERT INTO loss_positions ({_COLUMNS}) SELECT {_COLUMNS} FROM loss_positions_old'
        ' ORDER BY incident_id, customer_id, asset_code'
    )
    op.drop_table('loss_positions_old')
