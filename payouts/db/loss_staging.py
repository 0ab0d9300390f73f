"""A per-transaction staging table for loss files, loaded in bulk and merged with SQL.

Rows go to a temporary table first (COPY on PostgreSQL, batched inserts on SQLite); checks
that need the whole file and the merge into customers and loss_positions then run as set-based
SQL, so memory stays flat however large the file is. The table disappears with the transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from payouts.db.types import UTCDateTime
from payouts.domain.loss_file import LossRow

TABLE = "loss_staging"
_SQLITE_BATCH = 20_000
_COPY_CHUNK = 5_000


def create(session: Session) -> None:
    if _dialect(session) == "postgresql":
        session.execute(
            text(
                f"CREATE TEMP TABLE {TABLE} (line integer NOT NULL, customer_ref text NOT NULL,"
                " asset text NOT NULL, amount numeric NOT NULL, name text NOT NULL,"
                " email text NOT NULL) ON COMMIT DROP"
            )
        )
    else:
        session.execute(text(f"DROP TABLE IF EXISTS temp.{TABLE}"))
        session.execute(
            text(
                f"CREATE TEMP TABLE {TABLE} (line INTEGER NOT NULL, customer_ref TEXT NOT NULL,"
                " asset TEXT NOT NULL, amount TEXT NOT NULL, name TEXT NOT NULL,"
                " email TEXT NOT NULL)"
            )
        )


def drop(session: Session) -> None:
    """SQLite keeps temp tables for the connection's life; PostgreSQL drops it on commit."""
    if _dialect(session) == "sqlite":
        session.execute(text(f"DROP TABLE IF EXISTS temp.{TABLE}"))


def load(session: Session, rows: Iterable[LossRow]) -> None:
    """Stream rows into the staging table; consumes the iterable."""
    if _dialect(session) == "postgresql":
        _copy_postgres(session, iter(rows))
    else:
        _insert_sqlite(session, iter(rows))
    # Temporary tables have no statistics until analysed; without them the planner picks
    # nested loops for the merge and a million-row import takes minutes instead of seconds.
    session.execute(text(f"ANALYZE {TABLE}"))


def _copy_postgres(session: Session, rows: Iterator[LossRow]) -> None:
    raw = session.connection().connection.driver_connection
    with raw.cursor() as cursor:  # type: ignore[union-attr]
        with cursor.copy(
            f"COPY {TABLE} (line, customer_ref, asset, amount, name, email) FROM STDIN"
        ) as copy:
            while True:
                chunk = list(islice(rows, _COPY_CHUNK))
                if not chunk:
                    break
                # Text COPY format; refs, assets and amounts are already restricted to safe
                # characters, names and e-mails have no control characters but may hold "\".
                copy.write(
                    "".join(
                        f"{r.line}\t{r.customer_ref}\t{r.asset}\t{r.amount_minor}\t"
                        f"{_copy_escape(r.name)}\t{_copy_escape(r.email)}\n"
                        for r in chunk
                    )
                )


def _copy_escape(value: str) -> str:
    return value.replace("\\", "\\\\") if "\\" in value else value


def _insert_sqlite(session: Session, rows: Iterator[LossRow]) -> None:
    raw = session.connection().connection.driver_connection
    sql = f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?, ?)"
    while True:
        chunk = list(islice(rows, _SQLITE_BATCH))
        if not chunk:
            break
        raw.executemany(  # type: ignore[union-attr]
            sql, [(r.line, r.customer_ref, r.asset, str(r.amount_minor), r.name, r.email) for r in chunk]
        )


@dataclass(frozen=True)
class Conflict:
    line: int
    message: str


def whole_file_conflicts(session: Session, limit: int) -> list[Conflict]:
    """Duplicate customer+asset rows, and one customer given two names or e-mails."""
    duplicates = session.execute(
        text(
            f"SELECT line, first_line, customer_ref, asset FROM ("
            f" SELECT line, customer_ref, asset,"
            f"  min(line) OVER (PARTITION BY customer_ref, asset) AS first_line"
            f" FROM {TABLE}) d WHERE line <> first_line ORDER BY line LIMIT :limit"
        ),
        {"limit": limit},
    ).all()
    found = [
        Conflict(line, f"duplicate row for customer {ref} and asset {asset} (first at line {first})")
        for line, first, ref, asset in duplicates
    ]
    for column in ("name", "email"):
        clashes = session.execute(
            text(
                f"SELECT max(line), customer_ref FROM {TABLE} WHERE {column} <> ''"
                f" GROUP BY customer_ref HAVING count(DISTINCT {column}) > 1"
                f" ORDER BY max(line) LIMIT :limit"
            ),
            {"limit": limit},
        ).all()
        found += [
            Conflict(line, f"customer {ref} is given two different values for {column}")
            for line, ref in clashes
        ]
    return sorted(found, key=lambda c: c.line)[:limit]


@dataclass(frozen=True)
class MergeCounts:
    customers_created: int
    customers_updated: int
    positions_created: int
    positions_updated: int


def merge(session: Session, incident_id: int, import_id: int, now: dt.datetime) -> MergeCounts:
    """Create or update customers, then create or update the incident's loss positions."""
    now_param = bindparam("now", value=now, type_=UTCDateTime)
    per_customer = (
        f"SELECT customer_ref, max(name) AS name, max(email) AS email FROM {TABLE} GROUP BY customer_ref"
    )
    updated_customers = session.execute(
        text(
            f"UPDATE customers AS c SET"
            f" name = CASE WHEN s.name <> '' THEN s.name ELSE c.name END,"
            f" email = CASE WHEN s.email <> '' THEN s.email ELSE c.email END,"
            f" updated_at = :now"
            f" FROM ({per_customer}) AS s"
            f" WHERE c.external_ref = s.customer_ref"
            f" AND ((s.name <> '' AND s.name <> c.name) OR (s.email <> '' AND s.email <> c.email))"
        ).bindparams(now_param)
    ).rowcount
    created_customers = session.execute(
        text(
            f"INSERT INTO customers (external_ref, name, email, locale, created_at, updated_at)"
            f" SELECT s.customer_ref, s.name, s.email, 'ja', :now, :now FROM ({per_customer}) AS s"
            f" WHERE NOT EXISTS (SELECT 1 FROM customers c WHERE c.external_ref = s.customer_ref)"
        ).bindparams(now_param)
    ).rowcount
    updated_positions = session.execute(
        text(
            f"UPDATE loss_positions AS p SET amount_minor = s.amount, import_id = :import_id"
            f" FROM {TABLE} AS s JOIN customers AS c ON c.external_ref = s.customer_ref"
            f" WHERE p.incident_id = :incident_id AND p.customer_id = c.id"
            f" AND p.asset_code = s.asset AND p.amount_minor <> s.amount"
        ),
        {"import_id": import_id, "incident_id": incident_id},
    ).rowcount
    created_positions = session.execute(
        text(
            f"INSERT INTO loss_positions (incident_id, customer_id, asset_code, amount_minor, import_id)"
            f" SELECT :incident_id, c.id, s.asset, s.amount, :import_id"
            f" FROM {TABLE} AS s JOIN customers AS c ON c.external_ref = s.customer_ref"
            f" WHERE NOT EXISTS (SELECT 1 FROM loss_positions p WHERE p.incident_id = :incident_id"
            f"  AND p.customer_id = c.id AND p.asset_code = s.asset)"
        ),
        {"import_id": import_id, "incident_id": incident_id},
    ).rowcount
    return MergeCounts(created_customers, updated_customers, created_positions, updated_positions)


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name
