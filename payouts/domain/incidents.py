"""Incident vocabulary: types, statuses, and the rules for a staff-given incident reference."""

from __future__ import annotations

import datetime as dt
import re
from enum import Enum
from zoneinfo import ZoneInfo

from payouts.domain.errors import ValidationError


#: Dates of the exchange's business (policy periods, "the day it happened") are Japanese dates.
JST = ZoneInfo("Asia/Tokyo")


def business_date(moment: dt.datetime) -> dt.date:
    """The date in Japan of an aware moment: 05:00 JST on 1 April is still 31 March in UTC."""
    return moment.astimezone(JST).date()


class IncidentType(str, Enum):
    HACK = "hack"
    OPERATIONAL_FAILURE = "operational_failure"
    INSIDER_FRAUD = "insider_fraud"
    OTHER = "other"


class IncidentStatus(str, Enum):
    """Life of an incident: recorded, claims open to customers, being paid, closed."""

    RECORDED = "recorded"
    CLAIMS_OPEN = "claims_open"
    PAYING = "paying"
    CLOSED = "closed"


_REF_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}")


def check_incident_ref(ref: str) -> str:
    """A short, URL-safe reference such as ``2026-HACK-01``."""
    if not isinstance(ref, str) or not _REF_RE.fullmatch(ref):
        raise ValidationError(
            "ref", "must be 1-40 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return ref


def check_incident_type(value: str) -> IncidentType:
    try:
        return IncidentType(value)
    except ValueError:
        allowed = ", ".join(t.value for t in IncidentType)
        raise ValidationError("incident_type", f"must be one of {allowed}; got {value!r}") from None
