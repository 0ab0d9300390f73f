"""`payouts claims ...` and `payouts customers activation-code`, run through Flask's CLI runner
against the test app (the same commands as the console script, without a subprocess each)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import re

import pytest
from sqlalchemy import select

from payouts.cli import cli
from payouts.db.models import Claim, User
from payouts.domain.roles import SYSTEM_ACTOR, Actor, Role
from payouts.services import activation, claims, incidents, loss_import, users
from tests.conftest import STAFF


@pytest.fixture
def setup(app):  # type: ignore[no-untyped-def]
    """INC-1 with C1 (0.5 BTC = ¥5,000,000) and C2 (1.25 BTC = ¥12,500,000); a threshold of
    ¥10,000,000 between them; a login for staff, approver and admin."""
    state = app.extensions["payouts"]
    state.config = dataclasses.replace(state.config, four_eyes_threshold_jpy=10_000_000)
    session = state.session_factory()
    t = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.timezone.utc)
    incidents.record_incident(session, STAFF, ref="INC-1", title="Test hack", incident_type="hack",
                              occurred_at=t, discovered_at=t)
    incidents.set_reference_price(session, STAFF, incident_ref="INC-1", asset_code="BTC",
                                  price="10000000", source="test VWAP")
    data = b"customer_ref,asset,amount,name\nC1,BTC,0.5,Customer One\nC2,BTC,1.25,Customer Two\n"
    assert loss_import.import_losses(session, STAFF, "INC-1", io.BytesIO(data), "seed.csv").status == "imported"
    for role in (Role.STAFF, Role.APPROVER, Role.ADMIN):
        users.create_user(session, SYSTEM_ACTOR, username=f"{role.value}@test", display_name=role.value,
                          role=role, password="a-long-test-password")
    yield session
    session.close()


@pytest.fixture
def run(app):  # type: ignore[no-untyped-def]
    runner = app.test_cli_runner()

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(cli, list(args))

    return invoke


def _accept_all(session) -> None:  # type: ignore[no-untyped-def]
    for claim in list(session.scalars(select(Claim).order_by(Claim.id))):
        user = session.scalar(select(User).where(User.customer_id == claim.customer_id))
        claims.accept_claim(session, Actor(user.username, Role.CUSTOMER, user.id), claim.id, claim.row_version)


def _statuses(session) -> dict[int, str]:  # type: ignore[no-untyped-def]
    session.expire_all()
    result = dict(session.execute(select(Claim.id, Claim.status)).all())
    session.rollback()
    return result


def test_open_then_list_claims(setup, run):  # type: ignore[no-untyped-def]
    opened = run("claims", "open", "INC-1")
    assert opened.exit_code == 0, opened.output
    assert "opened 2 claims for INC-1" in opened.stdout
    again = run("claims", "open", "INC-1")
    assert again.exit_code == 2 and "already has its claims open" in again.stderr

    listed = run("claims", "list", "INC-1")
    assert listed.exit_code == 0, listed.output
    lines = [line.split("\t") for line in listed.stdout.strip().splitlines()]
    assert [(ref, status, version, total) for _id, ref, status, version, total, _name in lines] == [
        ("C1", "open", "v1", "5000000"), ("C2", "open", "v1", "12500000")]
    assert run("claims", "list", "INC-1", "--status", "accepted").stdout == ""


def test_list_refuses_bad_input(setup, run):  # type: ignore[no-untyped-def]
    unknown = run("claims", "list", "NOPE")
    assert unknown.exit_code == 2 and "no incident 'NOPE'" in unknown.stderr
    bad_status = run("claims", "list", "INC-1", "--status", "lost")
    assert bad_status.exit_code == 2 and "'lost' is not one of" in bad_status.output


def test_open_refuses_an_unknown_incident(setup, run):  # type: ignore[no-untyped-def]
    result = run("claims", "open", "NOPE")
    assert result.exit_code == 2 and "no incident 'NOPE'" in result.stderr


def test_bulk_approve_as_a_named_staff_user(setup, run):  # type: ignore[no-untyped-def]
    run("claims", "open", "INC-1")
    _accept_all(setup)
    before = _statuses(setup)

    missing = run("claims", "bulk-approve", "INC-1")
    assert missing.exit_code == 2 and "--as USERNAME" in missing.stderr
    admin = run("claims", "bulk-approve", "INC-1", "--as", "admin@test")
    assert admin.exit_code == 2 and "only staff or approver" in admin.stderr
    nobody = run("claims", "bulk-approve", "INC-1", "--as", "ghost@test")
    assert nobody.exit_code == 2 and "no active login 'ghost@test'" in nobody.stderr
    zero = run("claims", "bulk-approve", "INC-1", "--as", "staff@test", "--limit", "0")
    assert zero.exit_code == 2
    assert _statuses(setup) == before  # nothing changed by any refusal

    done = run("claims", "bulk-approve", "INC-1", "--as", "staff@test")
    assert done.exit_code == 0, done.output
    assert "approved 1 claims of INC-1 as staff@test" in done.stdout
    statuses = sorted(_statuses(setup).values())
    assert statuses == ["accepted", "approved"]  # C2 is above the threshold: two people approve it
    approved = run("claims", "list", "INC-1", "--status", "approved").stdout
    assert "\tC1\t" in approved and "C2" not in approved


def test_activation_code_is_printed_and_works(setup, run):  # type: ignore[no-untyped-def]
    refused = run("customers", "activation-code", "C1")
    assert refused.exit_code == 2 and "has no login yet" in refused.stderr  # claims not open
    run("claims", "open", "INC-1")
    result = run("customers", "activation-code", "C1")
    assert result.exit_code == 0, result.output
    code = result.stdout.strip()
    assert re.fullmatch(r"[0-9A-Z]{4}(-[0-9A-Z]{4}){3}", code)
    user = activation.activate_account(setup, username="c1", code=code, password="a-new-long-password")
    assert user.password_hash
    unknown = run("customers", "activation-code", "NOPE")
    assert unknown.exit_code == 2 and "'NOPE'" in unknown.stderr
