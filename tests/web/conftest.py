"""Logins for every role and a helper that signs in through the real form (CSRF included)."""

from __future__ import annotations

import io
import re
import secrets

import pytest

from payouts.domain.roles import SYSTEM_ACTOR, Role
from payouts.services import incidents, loss_import, users
from tests.conftest import STAFF

_TOKEN_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"')


def csrf_token(html: str) -> str:
    match = _TOKEN_RE.search(html)
    assert match, "page has no CSRF token"
    return match.group(1) or match.group(2)


@pytest.fixture
def accounts(app):  # type: ignore[no-untyped-def]
    """username -> password for one user of each role; the customer owns customer C1."""
    session = app.extensions["payouts"].session_factory()
    _seed_incident(session)
    created = {}
    for role in Role:
        password = secrets.token_urlsafe(16)
        username = f"{role.value}@test"
        users.create_user(session, SYSTEM_ACTOR, username=username, display_name=role.value,
                          role=role, password=password,
                          customer_ref="C1" if role is Role.CUSTOMER else None)
        created[role] = (username, password)
    users.create_user(session, SYSTEM_ACTOR, username="other-customer@test", display_name="other",
                      role=Role.CUSTOMER, password="other-password-123", customer_ref="C2")
    created["other"] = ("other-customer@test", "other-password-123")
    session.close()
    return created


def _seed_incident(session) -> None:  # type: ignore[no-untyped-def]
    import datetime as dt

    t = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.timezone.utc)
    incidents.record_incident(session, STAFF, ref="INC-1", title="Test hack", incident_type="hack",
                              occurred_at=t, discovered_at=t)
    incidents.set_reference_price(session, STAFF, incident_ref="INC-1", asset_code="BTC",
                                  price="10000000", source="test VWAP")
    data = b"customer_ref,asset,amount,name\nC1,BTC,0.5,Customer One\nC2,BTC,1.25,Customer Two\n"
    report = loss_import.import_losses(session, STAFF, "INC-1", io.BytesIO(data), "seed.csv")
    assert report.status == "imported", report.problems


def login(client, username: str, password: str):  # type: ignore[no-untyped-def]
    page = client.get("/login")
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": csrf_token(page.text)},
    )


@pytest.fixture
def client_for(app, accounts):  # type: ignore[no-untyped-def]
    """A logged-in test client for a role (or "other" for the second customer)."""

    def make(role):  # type: ignore[no-untyped-def]
        client = app.test_client()
        username, password = accounts[role]
        response = login(client, username, password)
        assert response.status_code == 302, response.text
        return client

    return make


@pytest.fixture
def approved_claims(app, accounts):  # type: ignore[no-untyped-def]
    """INC-1 with its claims open and every one approved (for pages about what comes after)."""
    from tests.helpers import approve_all_claims

    session = app.extensions["payouts"].session_factory()
    approve_all_claims(session, STAFF, "INC-1")
    session.close()
