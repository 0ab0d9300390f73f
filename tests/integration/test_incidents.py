"""Recording incidents and fixing reference prices: validation, audit, roles."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select

from payouts.db.models import AuditEvent, Incident
from payouts.domain.errors import PermissionDenied, ValidationError
from payouts.services import incidents
from tests.conftest import REGULATOR, STAFF

T = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc)


def record(session, **overrides):  # type: ignore[no-untyped-def]
    values = dict(ref="INC-1", title="Hot wallet", incident_type="hack", occurred_at=T,
                  discovered_at=T + dt.timedelta(hours=1))
    values.update(overrides)
    return incidents.record_incident(session, STAFF, **values)


def test_record_incident_writes_an_audit_event(session):  # type: ignore[no-untyped-def]
    incident = record(session)
    event = session.scalar(select(AuditEvent))
    assert (event.action, event.subject_type, event.subject_id) == ("incident.recorded", "incident", "INC-1")
    assert event.actor == STAFF.label and event.actor_role == "staff"
    assert incident.status == "recorded"


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"ref": "bad ref!"}, "ref"),
        ({"title": "  "}, "title"),
        ({"incident_type": "earthquake"}, "incident_type"),
        ({"discovered_at": T - dt.timedelta(days=1)}, "discovered_at"),
        ({"occurred_at": dt.datetime(2099, 1, 1, tzinfo=dt.timezone.utc),
          "discovered_at": dt.datetime(2099, 1, 1, tzinfo=dt.timezone.utc)}, "occurred_at"),
        ({"occurred_at": dt.datetime(2026, 1, 1)}, "occurred_at"),
    ],
)
def test_invalid_incident_is_refused_naming_the_field(session, overrides, field):  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError) as error:
        record(session, **overrides)
    assert error.value.field == field
    assert session.scalar(select(AuditEvent)) is None


def test_duplicate_reference_is_refused_and_leaves_no_event(session):  # type: ignore[no-untyped-def]
    record(session)
    with pytest.raises(ValidationError, match="already exists"):
        record(session)
    assert len(session.scalars(select(AuditEvent)).all()) == 1
    assert len(session.scalars(select(Incident)).all()) == 1


def test_regulator_cannot_record(session):  # type: ignore[no-untyped-def]
    with pytest.raises(PermissionDenied):
        incidents.record_incident(session, REGULATOR, ref="R", title="t", incident_type="hack",
                                  occurred_at=T, discovered_at=T)


def test_price_set_then_changed_is_audited_with_before_and_after(session):  # type: ignore[no-untyped-def]
    record(session)
    incidents.set_reference_price(session, STAFF, incident_ref="INC-1", asset_code="XEM",
                                  price="88.549", source="VWAP window A")
    price = incidents.set_reference_price(session, STAFF, incident_ref="INC-1", asset_code="XEM",
                                          price="88.55", source="VWAP window B")
    assert price.price_jpy == Decimal("88.55")
    events = session.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
    assert [e.action for e in events] == ["incident.recorded", "price.set", "price.changed"]
    assert '"price_jpy":["88.549","88.55"]' in events[-1].details


@pytest.mark.parametrize("price", ["0", "-1", "abc", "1e3", "1,000"])
def test_bad_prices_are_refused(session, price):  # type: ignore[no-untyped-def]
    record(session)
    with pytest.raises(ValidationError) as error:
        incidents.set_reference_price(session, STAFF, incident_ref="INC-1", asset_code="BTC",
                                      price=price, source="s")
    assert error.value.field == "price"


def test_price_needs_a_source_and_a_known_asset(session):  # type: ignore[no-untyped-def]
    record(session)
    with pytest.raises(ValidationError) as error:
        incidents.set_reference_price(session, STAFF, incident_ref="INC-1", asset_code="BTC",
                                      price="1", source=" ")
    assert error.value.field == "source"
    with pytest.raises(ValidationError) as error:
        incidents.set_reference_price(session, STAFF, incident_ref="INC-1", asset_code="NOPE",
                                      price="1", source="s")
    assert error.value.field == "asset"
