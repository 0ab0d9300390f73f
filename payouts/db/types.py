"""Column types that keep money exact on both PostgreSQL and SQLite.

SQLite's NUMERIC affinity silently turns an integer above 2**63 into a REAL, and a decimal
string such as "88.549" into a float. So exact values are stored as canonical text on SQLite
and as NUMERIC on PostgreSQL; Python always sees ``int`` or ``Decimal``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import DateTime, Numeric, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from payouts.domain.money import canonical_decimal

#: Digits kept for minor-unit quantities: 10**24 wei is 25 digits; 78 covers any uint256.
QUANTITY_DIGITS = 78


class ExactInteger(TypeDecorator[int]):
    """An unbounded non-fractional quantity (minor units of an asset)."""

    impl = Numeric(QUANTITY_DIGITS, 0)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[object]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(QUANTITY_DIGITS + 1))
        return dialect.type_descriptor(Numeric(QUANTITY_DIGITS, 0, asdecimal=True))

    def process_bind_param(self, value: int | None, dialect: Dialect) -> object:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"ExactInteger needs an int, got {type(value).__name__}")
        return str(value) if dialect.name == "sqlite" else Decimal(value)

    def process_result_value(self, value: object, dialect: Dialect) -> int | None:
        if value is None:
            return None
        return int(value)  # type: ignore[call-overload]


class ExactDecimal(TypeDecorator[Decimal]):
    """An exact decimal such as a reference price, with no fixed scale."""

    impl = Numeric()
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[object]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(80))
        return dialect.type_descriptor(Numeric(asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> object:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"ExactDecimal needs a Decimal, got {type(value).__name__}")
        return canonical_decimal(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: object, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(canonical_decimal(Decimal(str(value))))


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on both databases (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> object:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware datetime (UTC)")
        value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


def non_negative_quantity_check(column: str, dialect_name: str) -> str:
    """SQL for a CHECK that an ExactInteger column holds a non-negative integer."""
    if dialect_name == "sqlite":
        # Canonical text: digits only, no leading zero unless the value is 0.
        return (
            f"{column} <> '' AND {column} NOT GLOB '*[^0-9]*' "
            f"AND ({column} = '0' OR {column} NOT GLOB '0*')"
        )
    return f"{column} >= 0"


def utcnow() -> dt.datetime:
    """Now in UTC, to the microsecond both databases keep."""
    return dt.datetime.now(dt.timezone.utc)
