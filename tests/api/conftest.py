"""An app with /api/v1 installed, INC-1 seeded, and one API key per role."""

from __future__ import annotations

import datetime as dt
import io

import pytest

from payouts.domain.roles import SYSTEM_ACTOR, Role
from payouts.services import api_keys, incidents, loss_import
from tests.conftest import STAFF
from tests.web.conftest import accounts, client_for  # noqa: F401 - fixtures (cookie logins)

KEY_ROLES = (Role.STAFF, Role.APPROVER, Role.ADMIN, Role.REGULATOR)
LOSSES = b"customer_ref,asset,amount,name\nC1,BTC,0.5,Customer One\nC2,BTC,1.25,Customer Two\n"


@pytest.fixture
def api_app(app):  # type: ignore[no-untyped-def]
    from payouts.web.api import init_api

    init_api(app)  # a no-op once create_app installs the API itself
    return app


def seed_incident(session, ref: str = "INC-1") -> None:  # type: ignore[no-untyped-def]
    t = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.timezone.utc)
    incidents.record_incident(session, STAFF, ref=ref, title="Test hack", incident_type="hack",
                              occurred_at=t, discovered_at=t)
    incidents.set_reference_price(session, STAFF, incident_ref=ref, asset_code="BTC",
                                  price="10000000", source="test VWAP")
    report = loss_import.import_losses(session, STAFF, ref, io.BytesIO(LOSSES), "seed.csv")
    assert report.status == "imported", report.problems


@pytest.fixture
def keys(api_app):  # type: ignore[no-untyped-def]
    """role -> secret of a live key acting as that role; INC-1 is seeded."""
    session = api_app.extensions["payouts"].session_factory()
    seed_incident(session)
    secrets = {role: api_keys.create_key(session, SYSTEM_ACTOR, name=f"{role.value}-key", role=role).secret
               for role in KEY_ROLES}
    session.close()
    return secrets


@pytest.fixture
def call(api_app, keys):  # type: ignore[no-untyped-def]
    """call(role, method, path, **kwargs): a request with that role's key ("none": no key)."""
    client = api_app.test_client()

    def make(role, method: str, path: str, **kwargs):  # type: ignore[no-untyped-def]
        headers = dict(kwargs.pop("headers", {}))
        if role != "none":
            headers["Authorization"] = f"Bearer {keys[role] if role in keys else role}"
        return client.open("/api/v1" + path, method=method, headers=headers, **kwargs)

    return make
