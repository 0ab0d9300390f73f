"""Opaque cursors: ?after=<cursor>&limit=<n>, and "next" in every list response."""

from __future__ import annotations

import base64
import binascii

from payouts.web.api.errors import ApiError

MAX_KEY = 2**63 - 1


def encode(value: int) -> str:
    return base64.urlsafe_b64encode(f"c1:{value}".encode()).decode().rstrip("=")


def decode(cursor: str | None) -> int | None:
    if cursor is None or cursor == "":
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        version, _, number = raw.partition(":")
        value = int(number)
        if version != "c1" or not number.isdigit() or not 0 <= value <= MAX_KEY:
            raise ValueError(raw)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise ApiError(400, "validation_error", "after: not a cursor this API returned", "after") from None
    return value


def page(items: list, limit: int, key) -> dict:  # type: ignore[no-untyped-def,type-arg]
    """``items`` fetched with limit + 1: the page and the cursor that continues after it."""
    more = len(items) > limit
    shown = items[:limit]
    return {"items": shown, "next": encode(key(shown[-1])) if more and shown else None}
