"""The demo data `make run` loads: every role can sign in, and loading again adds nothing."""

from __future__ import annotations

from sqlalchemy import func, select

from payouts.db.models import AuditEvent, Claim, Customer, LossPosition, User
from payouts.domain.roles import SYSTEM_ACTOR
from payouts.services import audit_trail, demo, users


def _counts(session):  # type: ignore[no-untyped-def]
    return {model.__name__: session.scalar(select(func.count()).select_from(model))
            for model in (Customer, LossPosition, Claim, User)}


def test_demo_loads_once_with_a_login_for_every_role(session):  # type: ignore[no-untyped-def]
    logins = demo.load_demo(session, n_customers=120)
    roles = {login.role for login in logins}
    assert {"staff", "approver", "admin", "regulator", "customer", "activation"} <= roles
    for login in logins:
        if login.role != "activation":
            assert users.authenticate(session, login.username, login.password) is not None, login.role
    first = _counts(session)
    assert first["Customer"] == 120 and first["Claim"] == 120 and first["LossPosition"] >= 120

    again = demo.load_demo(session, n_customers=120)
    assert _counts(session) == first  # nothing doubled
    # New passwords each load: the old ones no longer open the demo logins.
    old = next(login for login in logins if login.role == "staff")
    new = next(login for login in again if login.role == "staff")
    assert old.password != new.password
    assert users.authenticate(session, new.username, new.password) is not None
    assert users.authenticate(session, old.username, old.password) is None
    assert audit_trail.verify(session, SYSTEM_ACTOR).problem is None
    assert session.scalar(select(func.count()).select_from(AuditEvent)) > 0
