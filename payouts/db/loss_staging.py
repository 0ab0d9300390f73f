"""A per-transaction staging table for loss files, loaded in bulk and merged with SQL.

Rows go to a temporary table first (on PostgreSQL the file itself through COPY, checked in SQL;
on SQLite rows read and checked in Python, in batches); checks
that need the whole file and the merge into customers and loss_positions then run as set-based
SQL, so memory stays flat however large the file is. The table disappears with the transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from payouts.db import loss_partitions
from payouts.db.types import UTCDateTime
from payouts.domain.money import MAX_QUANTITY_DIGITS
from payouts.domain.loss_file import (
    EMAIL_PATTERN,
    MAX_EMAIL_LENGTH,
    MAX_NAME_LENGTH,
    MAX_REF_LENGTH,
    REF_PATTERN,
    LossFileError,
    LossRow,
)

TABLE = "loss_staging"
#: One row per customer in the file: the contact details the merge writes.
CUSTOMERS_TABLE = "loss_staging_customers"
#: Advisory lock that serialises the customer-creating part of imports ("cust").
_CUSTOMERS_LOCK_KEY = 0x63757374
RAW_TABLE = "loss_raw"
_SQLITE_BATCH = 20_000


#: Memory for the import's sorts and hashes (this transaction only): the default 4 MB sends a
#: million-row GROUP BY to disk.
IMPORT_WORK_MEM = "256MB"


def create(session: Session) -> None:
    """The typed staging table for the Python reading path (SQLite)."""
    session.execute(text(f"DROP TABLE IF EXISTS temp.{TABLE}"))
    session.execute(
        text(
            f"CREATE TEMP TABLE {TABLE} (line INTEGER NOT NULL, customer_ref TEXT NOT NULL,"
            " asset TEXT NOT NULL, amount TEXT NOT NULL, name TEXT NOT NULL,"
            " email TEXT NOT NULL)"
        )
    )


def drop(session: Session) -> None:
    """SQLite keeps temp tables for the connection's life; PostgreSQL drops them on commit."""
    if _dialect(session) == "sqlite":
        session.execute(text(f"DROP TABLE IF EXISTS temp.{TABLE}"))
        session.execute(text(f"DROP TABLE IF EXISTS temp.{CUSTOMERS_TABLE}"))


def _temp(session: Session, table: str) -> str:
    return f"temp.{table}" if _dialect(session) == "sqlite" else table


def _on_commit_drop(session: Session) -> str:
    return "" if _dialect(session) == "sqlite" else " ON COMMIT DROP"


def load(session: Session, rows: Iterable[LossRow]) -> None:
    """Stream rows read in Python into the staging table (SQLite), in batches."""
    raw = session.connection().connection.driver_connection
    sql = f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?, ?)"
    iterator = iter(rows)
    while chunk := list(islice(iterator, _SQLITE_BATCH)):
        raw.executemany(  # type: ignore[union-attr]
            sql, [(r.line, r.customer_ref, r.asset, str(r.amount_minor), r.name, r.email) for r in chunk]
        )
    # Without statistics the planner picks nested loops for the merge.
    session.execute(text(f"ANALYZE {TABLE}"))


# --- PostgreSQL: the file itself goes through COPY and is checked in SQL -------------------
#
# Parsing a million rows in Python costs far more than the database needs, so on PostgreSQL
# the file's bytes are COPY'd as CSV into a raw text table and every row rule of
# payouts.domain.loss_file is checked there, set-based, with the same patterns and messages.
# The same bad-file tests run against both paths.


def supports_raw_copy(session: Session) -> bool:
    return _dialect(session) == "postgresql"


def copy_raw(session: Session, columns: list[str], body: Iterable[bytes]) -> None:
    """COPY the file after its header line into the raw table, numbering rows as they come."""
    session.execute(text(f"SET LOCAL work_mem = '{IMPORT_WORK_MEM}'"))
    session.execute(
        text(
            f"CREATE TEMP TABLE {RAW_TABLE} (row_no bigint GENERATED ALWAYS AS IDENTITY,"
            " customer_ref text, asset text, amount text, name text, email text) ON COMMIT DROP"
        )
    )
    raw = session.connection().connection.driver_connection
    import psycopg

    try:
        with raw.cursor() as cursor:  # type: ignore[union-attr]
            with cursor.copy(
                f"COPY {RAW_TABLE} ({', '.join(columns)}) FROM STDIN (FORMAT csv, ENCODING 'UTF8')"
            ) as copy:
                for chunk in body:
                    copy.write(chunk)
    except psycopg.errors.DataError as exc:
        raise LossFileError(_copy_problem(exc)) from None


_COPY_MESSAGES = (
    ("extra data after last expected column", "has more fields than the header"),
    ("missing data for column", "has fewer fields than the header"),
    ("unterminated CSV quoted field", "has a quoted field that is never closed"),
    ("invalid byte sequence", "is not valid UTF-8; export the file as UTF-8"),
)


def _copy_problem(exc: Exception) -> str:
    """Turn a COPY error into 'line N: problem', N counted in the whole file (header is 1)."""
    import re

    diag = getattr(exc, "diag", None)
    context = (getattr(diag, "context", None) or "") if diag else ""
    primary = (getattr(diag, "message_primary", None) or str(exc)) if diag else str(exc)
    match = re.search(r"line (\d+)", context)
    message = next((ours for theirs, ours in _COPY_MESSAGES if theirs in primary), primary)
    return f"line {int(match.group(1)) + 1}: {message}" if match else message


def check_and_stage(session: Session, limit: int, *, rows_are_plain: bool = False) -> tuple[int, list[str], int]:
    """Check every raw row and build the typed staging table in one pass over the file.

    Returns (number of bad rows, the first ``limit`` of them as 'line N: problem', rows). A
    row's amount is converted only when the row has no problem, so a bad amount is reported
    rather than raised. ``rows_are_plain`` says payouts.domain.plain_rows found every row
    plainly valid: the rows are then only typed, not checked again.
    """
    # 10^decimals once per asset: computing it in each row's conversion cost a second at 1M.
    assets = "(SELECT code, decimals, power(10::numeric, decimals) AS scale FROM assets OFFSET 0)"
    if rows_are_plain:
        # Plain fields need no trimming (they have no spaces at either end), and every asset
        # is known; the LEFT JOIN and its one check keep a surprise from typing as a null.
        trimmed = (
            f"SELECT (r.row_no + 1)::integer AS line, r.customer_ref AS ref, r.asset,"
            f" r.amount, coalesce(r.name, '') AS name, coalesce(r.email, '') AS email"
            f" FROM {RAW_TABLE} r"
        )
        problem = "CASE WHEN a.code IS NULL THEN 'unknown asset ' || quote_literal(left(t.asset, 20)) END"
    else:
        # Each field is trimmed once (this query), checked once (the next one; OFFSET 0
        # keeps the planner from copying the checks into the outer query) and converted last.
        trimmed = (
            f"SELECT (r.row_no + 1)::integer AS line,"
            f" r.customer_ref IS NULL AND r.asset IS NULL AND r.amount IS NULL AS blank,"
            f" btrim(coalesce(r.customer_ref, '')) AS ref, btrim(coalesce(r.asset, '')) AS asset,"
            f" btrim(coalesce(r.amount, '')) AS amount, btrim(coalesce(r.name, '')) AS name,"
            f" btrim(coalesce(r.email, '')) AS email FROM {RAW_TABLE} r OFFSET 0"
        )
        problem = _ROW_PROBLEM
    checked = (
        f"SELECT t.line, {problem} AS problem, t.ref, a.code, a.scale, t.amount, t.name, t.email"
        f" FROM ({trimmed}) t LEFT JOIN {assets} a ON a.code = t.asset OFFSET 0"
    )
    # References are compared byte by byte ("C"), like customers.external_ref: grouping and
    # sorting a million of them is then several times cheaper than under a language's rules.
    session.execute(
        text(
            f"CREATE TEMP TABLE {TABLE} ON COMMIT DROP AS SELECT line, problem,"
            f" ref COLLATE \"C\" AS customer_ref, code AS asset,"
            f" CASE WHEN problem IS NULL THEN (amount::numeric * scale)::numeric(78, 0)"
            f" END AS amount, name, email FROM ({checked}) c"
        ),
        {} if rows_are_plain else {"ref_re": f"^(?:{REF_PATTERN})$", "email_re": f"^(?:{EMAIL_PATTERN})$"},
    )
    rows = session.execute(
        text(
            f"SELECT line, problem, count(*) OVER () FROM {TABLE}"
            f" WHERE problem IS NOT NULL ORDER BY line LIMIT :limit"
        ),
        {"limit": limit},
    ).all()
    total = rows[0][2] if rows else 0
    if total:
        return total, [f"line {line}: {message}" for line, message, _n in rows], 0
    # Statistics steer the merge's joins to hashes rather than nested loops. They need the
    # row count and a rough idea of the references, not a 30,000-row sample (a tenth of a
    # 100k-row import's time): a small sample of that one column does.
    session.execute(text("SET LOCAL default_statistics_target = 10"))
    session.execute(text(f"ANALYZE {TABLE} (customer_ref)"))
    session.execute(text("RESET default_statistics_target"))
    return 0, [], session.scalar(text(f"SELECT count(*) FROM {TABLE}")) or 0


_FRACTION = "rtrim(split_part(t.amount, '.', 2), '0')"
#: Every row rule of payouts.domain.loss_file, in SQL, over the trimmed fields t and asset a.
_ROW_PROBLEM = f"""CASE
        WHEN t.blank THEN 'is blank'
        WHEN t.ref = '' THEN 'customer_ref is empty'
        WHEN length(t.ref) > {MAX_REF_LENGTH} OR t.ref !~ :ref_re
            THEN 'customer_ref ' || quote_literal(left(t.ref, 80)) || ' is not a valid reference'
        WHEN a.code IS NULL THEN 'unknown asset ' || quote_literal(left(t.asset, 20))
        WHEN t.amount = '' THEN 'amount is empty (' || a.code || ')'
        WHEN t.amount !~ '^[0-9]+([.][0-9]+)?$' THEN CASE
            WHEN t.amount ~ '^-[0-9]+([.][0-9]+)?$'
                THEN 'amount must not be negative, got ' || quote_literal(t.amount) || ' (' || a.code || ')'
            ELSE 'amount is not a plain decimal number: ' || quote_literal(left(t.amount, 40)) || ' (' || a.code || ')'
            END
        WHEN length(ltrim(split_part(t.amount, '.', 1), '0')) + a.decimals > {MAX_QUANTITY_DIGITS}
            THEN 'amount is too large (more than {MAX_QUANTITY_DIGITS} digits in minor units) (' || a.code || ')'
        WHEN length({_FRACTION}) > a.decimals
            THEN 'amount has ' || length({_FRACTION}) || ' decimal places; this asset allows '
                 || a.decimals || ' (' || a.code || ')'
        WHEN length(t.name) > {MAX_NAME_LENGTH} THEN 'name is longer than {MAX_NAME_LENGTH} characters'
        WHEN t.name ~ '[\\x01-\\x1f\\x7f]' THEN 'name contains control characters'
        WHEN t.email <> '' AND (length(t.email) > {MAX_EMAIL_LENGTH} OR t.email !~ :email_re)
            THEN 'email ' || quote_literal(left(t.email, 80)) || ' is not a valid address'
    END"""


@dataclass(frozen=True)
class Conflict:
    line: int
    message: str


def stage_customers(session: Session) -> None:
    """One row per customer of the staged file, in one pass over it: the contact details the
    merge writes, and what whole_file_conflicts needs to find a customer given two of them."""
    session.execute(text(f"DROP TABLE IF EXISTS {_temp(session, CUSTOMERS_TABLE)}"))
    session.execute(
        text(
            f"CREATE TEMP TABLE {CUSTOMERS_TABLE}{_on_commit_drop(session)} AS SELECT customer_ref,"
            f" max(name) AS name, min(NULLIF(name, '')) AS least_name,"
            f" max(email) AS email, min(NULLIF(email, '')) AS least_email,"
            f" max(CASE WHEN name <> '' THEN line END) AS name_line,"
            f" max(CASE WHEN email <> '' THEN line END) AS email_line, max(line) AS last_line"
            # Grouped from rows sorted by reference: at a million rows that beats hashing the
            # groups, and it writes the table in reference order, which merge's insert of new
            # customers then keeps without sorting again.
            f" FROM (SELECT customer_ref, name, email, line FROM {TABLE} ORDER BY customer_ref) AS s"
            f" GROUP BY customer_ref"
        )
    )


def whole_file_conflicts(session: Session, limit: int) -> list[Conflict]:
    """Duplicate customer+asset rows, and one customer given two names or e-mails (after
    stage_customers)."""
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
    # "" means not given, so it never clashes: two values clash when the smallest given one
    # differs from the largest.
    clashes = session.execute(
        text(
            f"SELECT customer_ref, name_line, least_name <> name, email_line, least_email <> email"
            f" FROM {CUSTOMERS_TABLE} WHERE least_name <> name OR least_email <> email"
            f" ORDER BY last_line LIMIT :limit"
        ),
        {"limit": limit},
    ).all()
    for ref, name_line, names, email_line, emails in clashes:
        # Each clash is reported at the last row that gives the clashing field.
        for column, line, clash in (("name", name_line, names), ("email", email_line, emails)):
            if clash:
                found.append(Conflict(line, f"customer {ref} is given two different values for {column}"))
    return sorted(found, key=lambda c: c.line)[:limit]


@dataclass(frozen=True)
class MergeCounts:
    customers_created: int
    customers_updated: int
    positions_created: int
    positions_updated: int


def take_merge_turn(session: Session) -> None:
    """Wait for this transaction's turn to write customers, imports and positions (PostgreSQL).

    Imports into different incidents may bring the same new customer. Rather than make every
    insert speculative (ON CONFLICT costs ~1.8x at a million rows), imports take turns from here
    to their commit; SQLite has a single writer anyway. Take the turn before writing anything
    an import writes: a partition's foreign keys lock customers, incidents, assets and
    loss_imports against writers until commit, so an import that had already written its
    loss_imports row before waiting here would deadlock with the one building its partition.
    """
    if _dialect(session) == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CUSTOMERS_LOCK_KEY})


def merge(session: Session, incident_id: int, import_id: int, now: dt.datetime) -> MergeCounts:
    """Create or update customers, then create or update the incident's loss positions.

    Runs after stage_customers, once whole_file_conflicts found none, inside take_merge_turn's
    turn.
    """
    now_param = bindparam("now", value=now, type_=UTCDateTime)
    updated_customers = session.execute(
        text(
            f"UPDATE customers AS c SET"
            f" name = CASE WHEN s.name <> '' THEN s.name ELSE c.name END,"
            f" email = CASE WHEN s.email <> '' THEN s.email ELSE c.email END,"
            f" updated_at = :now"
            f" FROM {CUSTOMERS_TABLE} AS s"
            f" WHERE c.external_ref = s.customer_ref"
            f" AND ((s.name <> '' AND s.name <> c.name) OR (s.email <> '' AND s.email <> c.email))"
        ).bindparams(now_param)
    ).rowcount
    created_customers = session.execute(
        text(
            f"INSERT INTO customers (external_ref, name, email, locale, created_at, updated_at)"
            f" SELECT s.customer_ref, s.name, s.email, 'ja', :now, :now FROM {CUSTOMERS_TABLE} AS s"
            f" WHERE NOT EXISTS (SELECT 1 FROM customers c WHERE c.external_ref = s.customer_ref)"
            # In reference order, as stage_customers wrote the table (a scan of a fresh table
            # returns its rows as written): ids then follow references, and the unique index
            # fills by appending instead of splitting pages all over it. Only speed depends on
            # the order, so it is not asked for again (sorting 700k rows here cost 1.5 s).
        ).bindparams(now_param)
    ).rowcount
    rows = (
        f"SELECT :incident_id, c.id, s.asset, s.amount, :import_id"
        f" FROM {TABLE} AS s JOIN customers AS c ON c.external_ref = s.customer_ref"
    )
    params = {"import_id": import_id, "incident_id": incident_id}
    if loss_partitions.can_build(session, incident_id):
        # The first import into an incident: every row is new, and set-based checks beat
        # per-row foreign-key triggers (see payouts.db.loss_partitions).
        created = loss_partitions.build_and_attach(session, incident_id, rows, params)
        return MergeCounts(created_customers, updated_customers, created, 0)
    updated_positions = session.execute(
        text(
            f"UPDATE loss_positions AS p SET amount_minor = s.amount, import_id = :import_id"
            f" FROM {TABLE} AS s JOIN customers AS c ON c.external_ref = s.customer_ref"
            f" WHERE p.incident_id = :incident_id AND p.customer_id = c.id"
            f" AND p.asset_code = s.asset AND p.amount_minor <> s.amount"
        ),
        params,
    ).rowcount
    created_positions = session.execute(
        text(
            f"INSERT INTO loss_positions ({loss_partitions.COLUMNS}) {rows}"
            f" WHERE NOT EXISTS (SELECT 1 FROM loss_positions p WHERE p.incident_id = :incident_id"
            f"  AND p.customer_id = c.id AND p.asset_code = s.asset)"
            # In (customer, asset) order: the indexes and the customers' foreign-key checks
            # then walk their pages in order instead of at random.
            f" ORDER BY c.id, s.asset"
        ),
        params,
    ).rowcount
    return MergeCounts(created_customers, updated_customers, created_positions, updated_positions)


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name
