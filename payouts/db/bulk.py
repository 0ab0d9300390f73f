"""Bulk writes inside the caller's transaction: COPY on PostgreSQL, executemany on SQLite."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from itertools import islice

from sqlalchemy.orm import Session

_BATCH = 20_000


def bulk_insert(session: Session, table: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Insert plain values (ints and strs) into ``table``; memory bounded by one batch."""
    connection = session.connection()
    raw = connection.connection.driver_connection
    iterator = iter(rows)
    if connection.dialect.name == "postgresql":
        with raw.cursor() as cursor:  # type: ignore[union-attr]
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in iterator:
                    copy.write_row(row)
        return
    placeholders = ", ".join("?" for _ in columns)
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"
    while batch := list(islice(iterator, _BATCH)):
        raw.executemany(sql, batch)  # type: ignore[union-attr]


def raw_timestamp(session: Session, moment: dt.datetime) -> object:
    """A moment as bulk_insert's raw driver expects it, stored as UTCDateTime stores it:
    aware on PostgreSQL, SQLAlchemy's naive-UTC text on SQLite."""
    if session.get_bind().dialect.name == "postgresql":
        return moment
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
