"""The sandbox rail: a simulated bank whose book is the ``sandbox_transfers`` table.

It behaves like the outside system it stands for: it writes on its own connection and commits
at once, whatever our transaction does afterwards, and it keeps one transfer per idempotency
key, so asking twice with the same key returns the first answer and moves no money. It can be
told to fail like a bank does (latency, transient refusals, permanent rejections, and a
response lost after the bank accepted the batch) so that tests and the demo exercise every path.

A batch costs one multi-row INSERT ... ON CONFLICT DO NOTHING and one SELECT of its keys, in
one short transaction: a worker pays a thousand orders a call without a round trip per order.

Deterministic rejections, for tests and the demo:
  account number 0000000           -> rejected, "closed_account"
  holder name starting ﾃｽﾄｴﾗ-       -> rejected, "name_mismatch" (テストエラー as a customer
                                      types it: the long mark becomes '-' in Zengin kana)
Random ones (``rejection_rate``) give "no_account".
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import Engine, Row, String, any_, bindparam, func, select, text
from sqlalchemy.dialects import postgresql, sqlite

from payouts.db.models import SandboxTransfer
from payouts.db.types import utcnow
from payouts.rails.base import Outcome, PaymentOrder, RailResult, RailTimeout

_TABLE = SandboxTransfer.__table__

#: Keys per SELECT: under SQLite's 32,766 bound parameters; a batch of 1,000 is one query.
_CHUNK = 2000

CLOSED_ACCOUNT_NUMBER = "0000000"
#: テストエラー in Zengin kana; a holder name never carries ｰ (to_zengin_kana writes '-').
NAME_MISMATCH_PREFIX = "ﾃｽﾄｴﾗ-"

_ACCOUNT_FIELDS = ("bank_code", "branch_code", "account_type", "account_number", "holder_kana")
#: Every column a transfer is booked with, and its PostgreSQL type (for the array insert).
_COLUMNS = {"idempotency_key": "varchar", "amount_jpy": "bigint", "bank_code": "varchar",
            "branch_code": "varchar", "account_type": "varchar", "account_number": "varchar",
            "holder_kana": "varchar", "outcome": "varchar", "reason": "varchar",
            "bank_reference": "varchar", "created_at": "timestamptz"}


def _rate(value: object, name: str) -> Fraction:
    # Floats are refused: a probability of 0.1 is not one tenth, and money code never sees one.
    if isinstance(value, bool) or not isinstance(value, (int, Fraction, Decimal)):
        raise TypeError(f"{name} must be an int, Fraction or Decimal, not {type(value).__name__}")
    rate = Fraction(value)
    if not 0 <= rate <= 1:
        raise ValueError(f"{name} must be between 0 and 1, got {rate}")
    return rate


class SandboxRail:
    """A simulated bank on ``engine``'s database. Seeded, its failures repeat exactly."""

    name = "sandbox"

    def __init__(
        self,
        engine: Engine,
        *,
        latency_ms: int = 0,
        transient_failure_rate: Fraction = Fraction(0),
        rejection_rate: Fraction = Fraction(0),
        timeout_after_accept_rate: Fraction = Fraction(0),
        seed: int | None = None,
    ) -> None:
        if type(latency_ms) is not int or latency_ms < 0:
            raise ValueError("latency_ms must be a non-negative integer")
        self.engine = engine
        self.latency_ms = latency_ms
        self.transient_failure_rate = _rate(transient_failure_rate, "transient_failure_rate")
        self.rejection_rate = _rate(rejection_rate, "rejection_rate")
        self.timeout_after_accept_rate = _rate(
            timeout_after_accept_rate, "timeout_after_accept_rate"
        )
        self._random = random.Random(seed)
        key = _TABLE.c.idempotency_key
        if engine.dialect.name == "postgresql":
            insert = postgresql.insert(_TABLE)
            # One array parameter: psycopg parses a 1,000-placeholder IN list on every call.
            in_batch = key == any_(bindparam("keys", type_=postgresql.ARRAY(String)))
        elif engine.dialect.name == "sqlite":
            insert = sqlite.insert(_TABLE)
            in_batch = key.in_(bindparam("keys", expanding=True))
        else:
            raise ValueError(f"the sandbox runs on PostgreSQL or SQLite, not {engine.dialect.name}")
        # RETURNING is what lets SQLAlchemy batch the executemany into multi-row statements.
        self._insert_statement = insert.on_conflict_do_nothing(
            index_elements=["idempotency_key"]
        ).returning(key)
        self._select_statement = select(_TABLE).where(in_batch)
        # On PostgreSQL the rows travel as one array per column: a multi-row VALUES of 11,000
        # placeholders is parsed by psycopg in Python on every call (its cache skips long
        # queries), which cost more than the database's work.
        self._insert_arrays = text(
            f"INSERT INTO {_TABLE.name} ({', '.join(_COLUMNS)})"
            f" SELECT * FROM unnest({', '.join(f'CAST(:{c} AS {t}[])' for c, t in _COLUMNS.items())})"
            " ON CONFLICT (idempotency_key) DO NOTHING"
        ) if engine.dialect.name == "postgresql" else None

    def _draw(self, rate: Fraction) -> bool:
        """True with probability ``rate``, compared in integers."""
        if rate == 0:
            return False
        return self._random.randrange(rate.denominator) < rate.numerator

    def _decide(self, order: PaymentOrder) -> tuple[str, str]:
        account = order.account
        if account.account_number == CLOSED_ACCOUNT_NUMBER:
            return "rejected", "closed_account"
        if account.holder_kana.startswith(NAME_MISMATCH_PREFIX):
            return "rejected", "name_mismatch"
        if self._draw(self.rejection_rate):
            return "rejected", "no_account"
        return "paid", ""

    def pay(self, orders: Sequence[PaymentOrder]) -> list[RailResult]:
        if not orders:
            return []
        if self.latency_ms > 0:
            time.sleep(self.latency_ms / 1000)
        now = utcnow()
        transient = [self._draw(self.transient_failure_rate) for _ in orders]
        rows: dict[str, dict[str, object]] = {}
        for order, refused in zip(orders, transient, strict=True):
            # The first order for a key is the one the bank books; a second one in the same
            # batch is judged against it like any later call.
            if refused or order.idempotency_key in rows:
                continue
            outcome, reason = self._decide(order)
            rows[order.idempotency_key] = {
                "idempotency_key": order.idempotency_key,
                "amount_jpy": order.amount_jpy,
                **{field: getattr(order.account, field) for field in _ACCOUNT_FIELDS},
                "outcome": outcome,
                "reason": reason,
                "bank_reference": "SBX" + uuid.uuid4().hex[:12].upper(),
                "created_at": now,
            }
        stored: dict[str, Row[Any]] = {}
        if rows:
            keys = list(rows)
            with self.engine.begin() as conn:
                # PostgreSQL: one statement of one array per column. SQLite: an executemany of
                # one cached statement, which SQLAlchemy's "insertmanyvalues" sends as
                # multi-row INSERTs, without compiling a new statement for every batch.
                if self._insert_arrays is not None:
                    conn.execute(self._insert_arrays,
                                 {c: [row[c] for row in rows.values()] for c in _COLUMNS})
                else:
                    conn.execute(self._insert_statement, list(rows.values()))
                for start in range(0, len(keys), _CHUNK):
                    chunk = {"keys": keys[start:start + _CHUNK]}
                    found = conn.execute(self._select_statement, chunk)
                    stored.update((row.idempotency_key, row) for row in found)
        # The bank has committed; now, maybe, the answer never reaches us.
        if self._draw(self.timeout_after_accept_rate):
            raise RailTimeout(f"sandbox: response lost after the bank took {len(rows)} transfers")
        results = []
        for order, refused in zip(orders, transient, strict=True):
            if refused:
                results.append(RailResult(order.idempotency_key, Outcome.TRANSIENT, None,
                                          "bank temporarily unavailable (simulated)"))
                continue
            row = stored.get(order.idempotency_key)
            if row is None:  # pragma: no cover - the insert or a concurrent caller stored it
                raise RuntimeError(f"sandbox: transfer {order.idempotency_key} vanished")
            results.append(_result_for(order, row))
        return results


def _result_for(order: PaymentOrder, row: Row[Any]) -> RailResult:
    """The stored transfer decides: same key and details, same answer, one payment."""
    key = order.idempotency_key
    same = row.amount_jpy == order.amount_jpy and all(
        getattr(row, field) == getattr(order.account, field) for field in _ACCOUNT_FIELDS
    )
    if not same:
        # Another payment already owns this key; booking this one too would pay twice.
        return RailResult(key, Outcome.REJECTED, None, "key_reused")
    if row.outcome == "paid":
        return RailResult(key, Outcome.PAID, row.bank_reference, "")
    return RailResult(key, Outcome.REJECTED, row.bank_reference, row.reason)


def count_transfers(engine: Engine, *, outcome: str | None = None) -> int:
    """Transfers in the sandbox bank's book (all, or only "paid" / "rejected")."""
    query = select(func.count()).select_from(_TABLE)
    if outcome is not None:
        query = query.where(_TABLE.c.outcome == outcome)
    with engine.connect() as conn:
        return int(conn.scalar(query) or 0)


def total_paid(engine: Engine) -> int:
    """Yen the sandbox bank has paid out, over all keys."""
    paid = _TABLE.c.outcome == "paid"
    query = select(func.coalesce(func.sum(_TABLE.c.amount_jpy), 0)).where(paid)
    with engine.connect() as conn:
        return int(conn.scalar(query) or 0)


def find_transfer(engine: Engine, idempotency_key: str) -> dict[str, object] | None:
    """The sandbox bank's record for a key, as a dict, or None."""
    with engine.connect() as conn:
        query = select(_TABLE).where(_TABLE.c.idempotency_key == idempotency_key)
        row = conn.execute(query).first()
    return dict(row._mapping) if row is not None else None
