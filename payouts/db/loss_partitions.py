"""Per-incident partitions of loss_positions on PostgreSQL, built whole and then attached.

Inserting a million positions into the partitioned table row by row costs four foreign-key
trigger lookups per row (customer, asset, incident, import): most of a large import's time. A
first import into an incident therefore builds the incident's partition as a plain table, adds
its key and index, and attaches it: ATTACH gives the partition the parent's foreign keys and
checks each over all its rows in one set-based pass. (Adding the foreign keys before ATTACH
would make ATTACH swap their triggers on customers, incidents, assets and loss_imports, which
needs exclusive locks that wait for every reader of those tables.) Later imports into the same
incident, and positions written one at a time (which land in the DEFAULT partition), go
through the parent table like any other insert. It all happens inside the import's
transaction, so a rejected or failed import leaves no table behind.

Locks, until the import commits: writers (not readers) of customers, incidents, assets and
loss_imports wait while the foreign keys are checked; ATTACH briefly takes the DEFAULT
partition exclusively, to check that it holds no row of the incident.
"""

from __future__ import annotations

import re

from sqlalchemy import text
from sqlalchemy.orm import Session

PARENT = "loss_positions"
DEFAULT_PARTITION = "loss_positions_default"
COLUMNS = "incident_id, customer_id, asset_code, amount_minor, import_id"
_PARTITION_RE = re.compile(r"loss_positions_(default|incident_\d+)")


def partition_name(incident_id: int) -> str:
    return f"loss_positions_incident_{int(incident_id)}"


def is_partition(table_name: str) -> bool:
    """True for the partitions of loss_positions: created at run time, not part of the models."""
    return _PARTITION_RE.fullmatch(table_name) is not None


def include_in_autogenerate(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic's include_name hook: partitions are the imports' business, not the migrations'."""
    return not (type_ == "table" and name is not None and is_partition(name))


def can_build(session: Session, incident_id: int) -> bool:
    """A partition can be built on PostgreSQL for an incident that has no positions yet."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    if session.scalar(text("SELECT to_regclass(:name)"), {"name": partition_name(incident_id)}):
        return False
    return not session.scalar(
        text(f"SELECT EXISTS (SELECT 1 FROM {PARENT} WHERE incident_id = :incident_id)"),
        {"incident_id": incident_id},
    )


def build_and_attach(session: Session, incident_id: int, rows_sql: str, params: dict) -> int:
    """Fill a new partition for ``incident_id`` from ``rows_sql`` and attach it; returns rows.

    ``rows_sql`` selects the five COLUMNS in order, every row of this incident. Rows go in in
    key order so the primary key builds from sorted input and reads of one customer's positions
    touch one page. Raises IntegrityError, with nothing attached, if a row refers to a
    customer, asset, incident or import that does not exist.
    """
    name = partition_name(incident_id)
    session.execute(text(f"CREATE TABLE {name} (LIKE {PARENT} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"))
    created = session.execute(
        text(f"INSERT INTO {name} ({COLUMNS}) {rows_sql} ORDER BY 1, 2, 3"), params
    ).rowcount
    session.execute(text(f"ALTER TABLE {name} ADD PRIMARY KEY (incident_id, customer_id, asset_code)"))
    session.execute(text(f"CREATE INDEX ON {name} (customer_id)"))
    # The partition bound as a CHECK lets ATTACH skip its own scan of the new table.
    session.execute(
        text(f"ALTER TABLE {name} ADD CONSTRAINT {name}_bound CHECK (incident_id = {int(incident_id)})")
    )
    # Adopts the key and index built above, adds the parent's foreign keys and checks them.
    session.execute(text(f"ALTER TABLE {PARENT} ATTACH PARTITION {name} FOR VALUES IN ({int(incident_id)})"))
    return created
