"""Customer activation with a one-time code, and the optional second factor (TOTP)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import threading

import pyotp
import pytest
from sqlalchemy import select, update

from payouts.db.models import ActivationCode, AuditEvent, User
from payouts.db.session import make_session_factory
from payouts.domain.errors import PermissionDenied, ValidationError
from payouts.domain.roles import Actor, Role
from payouts.services import activation
from payouts.services.users import authenticate
from tests.conftest import REGULATOR, STAFF
from tests.integration.test_claims import Desk, audit_count, events_since

NEW_PASSWORD = "a long new passphrase"


@pytest.fixture
def desk(session) -> Desk:  # type: ignore[no-untyped-def]
    return Desk(session)


def login(desk: Desk, ref: str) -> User:
    return desk.session.scalar(select(User).where(User.username == ref.lower()).execution_options(populate_existing=True))


def code_rows(desk: Desk, user_id: int) -> list[ActivationCode]:
    return list(desk.session.scalars(select(ActivationCode).where(ActivationCode.user_id == user_id)
                                     .order_by(ActivationCode.id).execution_options(populate_existing=True)))


def refused_activation(desk: Desk, **kwargs: str) -> None:
    before = audit_count(desk.session)
    with pytest.raises(ValidationError) as error:
        activation.activate_account(desk.session, **kwargs)
    desk.session.rollback()
    assert error.value.field == "code"
    assert error.value.message == activation._INVALID  # one answer for every wrong input
    assert audit_count(desk.session) == before


# --- activation codes -----------------------------------------------------------------------


def test_issue_stores_only_a_hash_and_activation_sets_the_password(desk):  # type: ignore[no-untyped-def]
    user = login(desk, "C1")
    assert user.password_hash is None and user.session_version == 1
    before = audit_count(desk.session)
    code = activation.issue_activation_code(desk.session, STAFF, "C1")  # the CLI operator may
    assert re.fullmatch(r"([0-9A-HJKMNP-TV-Z]{4}-){3}[0-9A-HJKMNP-TV-Z]{4}", code)
    [row] = code_rows(desk, user.id)
    assert row.code_hash == hashlib.sha256(code.replace("-", "").encode()).hexdigest()
    assert row.used_at is None and row.issued_by_label == STAFF.label
    [event] = events_since(desk.session, before)
    assert event.action == "customer.activation_code_issued" and event.subject_id == str(user.id)
    assert code not in event.details + event.summary and code.replace("-", "") not in event.details

    before = audit_count(desk.session)
    # Typed as people type it: lower case, spaces instead of dashes, the login in capitals.
    activated = activation.activate_account(desk.session, username=" C1 ", code=code.lower().replace("-", " "),
                                            password=NEW_PASSWORD)
    assert activated.id == user.id
    user = login(desk, "C1")
    assert user.password_hash is not None and user.session_version == 2
    assert code_rows(desk, user.id)[0].used_at is not None
    assert authenticate(desk.session, "c1", NEW_PASSWORD) is not None
    [event] = events_since(desk.session, before)
    assert (event.action, event.actor_user_id, event.actor_role) == ("customer.activated", user.id, "customer")
    assert json.loads(event.details) == {"activation_code_id": row.id}


def test_a_used_code_does_not_work_again(desk):  # type: ignore[no-untyped-def]
    code = activation.issue_activation_code(desk.session, STAFF, "C1")
    activation.activate_account(desk.session, username="c1", code=code, password=NEW_PASSWORD)
    refused_activation(desk, username="c1", code=code, password="someone else's password")
    assert authenticate(desk.session, "c1", NEW_PASSWORD) is not None
    assert login(desk, "C1").session_version == 2


def test_wrong_code_and_wrong_login_get_the_same_answer(desk):  # type: ignore[no-untyped-def]
    code = activation.issue_activation_code(desk.session, STAFF, "C1")
    other = activation.issue_activation_code(desk.session, STAFF, "C2")
    refused_activation(desk, username="c1", code="0000-0000-0000-0000", password=NEW_PASSWORD)
    refused_activation(desk, username="c1", code=other, password=NEW_PASSWORD)  # C2's code
    refused_activation(desk, username="nobody", code=code, password=NEW_PASSWORD)
    refused_activation(desk, username="staff1", code=code, password=NEW_PASSWORD)  # not a customer login
    refused_activation(desk, username="c1", code="", password=NEW_PASSWORD)
    assert login(desk, "C1").password_hash is None
    assert all(r.used_at is None for r in code_rows(desk, login(desk, "C1").id))


def test_an_expired_code_is_refused(desk):  # type: ignore[no-untyped-def]
    code = activation.issue_activation_code(desk.session, STAFF, "C1")
    user = login(desk, "C1")
    desk.session.execute(update(ActivationCode).where(ActivationCode.user_id == user.id)
                         .values(expires_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)))
    desk.session.commit()
    refused_activation(desk, username="c1", code=code, password=NEW_PASSWORD)
    assert login(desk, "C1").password_hash is None


def test_codes_live_thirty_days(desk, monkeypatch):  # type: ignore[no-untyped-def]
    issued = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.timezone.utc)
    monkeypatch.setattr(activation, "utcnow", lambda: issued)
    code = activation.issue_activation_code(desk.session, STAFF, "C1")
    monkeypatch.setattr(activation, "utcnow", lambda: issued + dt.timedelta(days=30))
    refused_activation(desk, username="c1", code=code, password=NEW_PASSWORD)
    monkeypatch.setattr(activation, "utcnow", lambda: issued + dt.timedelta(days=30) - dt.timedelta(seconds=1))
    activation.activate_account(desk.session, username="c1", code=code, password=NEW_PASSWORD)


def test_a_newer_code_voids_the_older_ones(desk):  # type: ignore[no-untyped-def]
    first = activation.issue_activation_code(desk.session, STAFF, "C1")
    second = activation.issue_activation_code(desk.session, STAFF, "C1")
    assert first != second
    refused_activation(desk, username="c1", code=first, password=NEW_PASSWORD)
    activation.activate_account(desk.session, username="c1", code=second, password=NEW_PASSWORD)
    rows = code_rows(desk, login(desk, "C1").id)
    assert [r.used_at is not None for r in rows] == [False, True]


def test_a_short_password_leaves_the_code_usable(desk):  # type: ignore[no-untyped-def]
    code = activation.issue_activation_code(desk.session, STAFF, "C1")
    with pytest.raises(ValidationError) as error:
        activation.activate_account(desk.session, username="c1", code=code, password="short")
    assert error.value.field == "password"
    assert code_rows(desk, login(desk, "C1").id)[0].used_at is None
    activation.activate_account(desk.session, username="c1", code=code, password=NEW_PASSWORD)


def test_a_deactivated_login_cannot_activate(desk):  # type: ignore[no-untyped-def]
    code = activation.issue_activation_code(desk.session, STAFF, "C1")
    login(desk, "C1").active = False
    desk.session.commit()
    refused_activation(desk, username="c1", code=code, password=NEW_PASSWORD)


def test_only_staff_issue_codes_and_only_for_customers_with_a_login(desk):  # type: ignore[no-untyped-def]
    for actor in (REGULATOR, desk.customer("C1")):
        with pytest.raises(PermissionDenied):
            activation.issue_activation_code(desk.session, actor, "C1")
    with pytest.raises(ValidationError) as error:
        activation.issue_activation_code(desk.session, desk.staff1, "C404")
    assert error.value.field == "customer"
    assert desk.session.scalar(select(ActivationCode.id)) is None


# --- TOTP -----------------------------------------------------------------------------------

NOW = dt.datetime(2026, 3, 2, 12, 0, 10, tzinfo=dt.timezone.utc)


@pytest.fixture
def clock(monkeypatch):  # type: ignore[no-untyped-def]
    """activation's clock, fixed at NOW (move it by setting clock.now)."""

    class Clock:
        now = NOW

    monkeypatch.setattr(activation, "utcnow", lambda: Clock.now)
    return Clock


def at(totp: pyotp.TOTP, seconds: int) -> str:
    return totp.at(NOW + dt.timedelta(seconds=seconds))


def test_totp_enable_verify_and_replay(desk, clock):  # type: ignore[no-untyped-def]
    actor = desk.customer("C1")
    secret = activation.new_totp_secret()
    totp = pyotp.TOTP(secret)
    assert secret in activation.totp_uri(secret, "c1") and "issuer=payouts" in activation.totp_uri(secret, "c1")
    with pytest.raises(ValidationError):
        wrong = next(c for c in ("000000", "111111", "222222", "333333")
                     if c not in {at(totp, -30), at(totp, 0), at(totp, 30)})
        activation.enable_totp(desk.session, actor, secret, wrong)
    assert login(desk, "C1").totp_secret is None

    before = audit_count(desk.session)
    activation.enable_totp(desk.session, actor, secret, at(totp, 0))
    user = login(desk, "C1")
    assert user.totp_secret == secret and user.totp_last_step == totp.timecode(NOW)
    assert [e.action for e in events_since(desk.session, before)] == ["user.totp_enabled"]
    assert secret not in desk.session.scalar(select(AuditEvent.details).order_by(AuditEvent.seq.desc()).limit(1))

    # The code that turned it on was used: the same code is refused, though still in its window.
    assert activation.verify_totp(desk.session, user.id, at(totp, 0)) is False
    # The next time step's code (clock drift of one step) works once.
    next_code = at(totp, 30)
    assert activation.verify_totp(desk.session, user.id, next_code) is True
    assert login(desk, "C1").totp_last_step == totp.timecode(NOW) + 1
    assert activation.verify_totp(desk.session, user.id, next_code) is False  # replay
    assert activation.verify_totp(desk.session, user.id, at(totp, 0)) is False  # an older step
    # Wrong, malformed and far-off codes.
    clock.now = NOW + dt.timedelta(seconds=60)
    for code in ("12345", "1234567", "abcdef", "", at(totp, 60 + 90)):
        assert activation.verify_totp(desk.session, user.id, code) is False
    assert activation.verify_totp(desk.session, user.id, " " + at(totp, 60)[:3] + " " + at(totp, 60)[3:]) is True
    # Enabling again is refused while it is on.
    with pytest.raises(ValidationError, match="already on"):
        activation.enable_totp(desk.session, actor, activation.new_totp_secret(), at(totp, 60))


def test_verify_twice_with_the_same_code(desk, clock):  # type: ignore[no-untyped-def]
    actor = desk.customer("C2")
    secret = activation.new_totp_secret()
    totp = pyotp.TOTP(secret)
    activation.enable_totp(desk.session, actor, secret, at(totp, -30))  # the previous step, within drift
    user_id = actor.user_id
    code = at(totp, 0)
    assert activation.verify_totp(desk.session, user_id, code) is True
    assert activation.verify_totp(desk.session, user_id, code) is False


def test_verify_without_a_second_factor_is_false(desk, clock):  # type: ignore[no-untyped-def]
    totp = pyotp.TOTP(activation.new_totp_secret())
    assert activation.verify_totp(desk.session, desk.customer("C1").user_id, at(totp, 0)) is False
    assert activation.verify_totp(desk.session, 999_999, at(totp, 0)) is False


def test_disable_needs_a_fresh_code_and_ends_sessions(desk, clock):  # type: ignore[no-untyped-def]
    actor = desk.customer("C1")
    secret = activation.new_totp_secret()
    totp = pyotp.TOTP(secret)
    activation.enable_totp(desk.session, actor, secret, at(totp, 0))
    with pytest.raises(ValidationError, match="does not match"):
        activation.disable_totp(desk.session, actor, at(totp, 0))  # already used
    activation.disable_totp(desk.session, actor, at(totp, 30))
    user = login(desk, "C1")
    assert (user.totp_secret, user.totp_last_step, user.session_version) == (None, None, 2)
    with pytest.raises(ValidationError, match="no second factor"):
        activation.disable_totp(desk.session, actor, at(totp, 30))


def test_a_second_factor_belongs_to_a_login(desk, clock):  # type: ignore[no-untyped-def]
    secret = activation.new_totp_secret()
    with pytest.raises(PermissionDenied):
        activation.enable_totp(desk.session, Actor("cli", Role.STAFF), secret, pyotp.TOTP(secret).at(NOW))
    with pytest.raises(PermissionDenied):
        activation.disable_totp(desk.session, Actor("cli", Role.STAFF), "123456")


# --- more than one session ------------------------------------------------------------------


def test_a_code_used_in_another_session_is_refused_in_this_one(desk, clock, engine):  # type: ignore[no-untyped-def]
    """A request that loaded the login before another request used a code still refuses it."""
    actor = desk.customer("C1")
    secret = activation.new_totp_secret()
    totp = pyotp.TOTP(secret)
    activation.enable_totp(desk.session, actor, secret, at(totp, -30))
    with make_session_factory(engine)() as other:
        held = other.get(User, actor.user_id)  # as a request's current_user holds its login
        assert held.totp_last_step == totp.timecode(NOW) - 1
        other.commit()
        assert activation.verify_totp(desk.session, actor.user_id, at(totp, 0)) is True
        assert activation.verify_totp(other, actor.user_id, at(totp, 0)) is False
        assert held.totp_last_step == totp.timecode(NOW)


def test_activation_ends_sessions_started_meanwhile(desk, engine):  # type: ignore[no-untyped-def]
    first = activation.issue_activation_code(desk.session, STAFF, "C1")
    with make_session_factory(engine)() as other:
        held = other.scalar(select(User).where(User.username == "c1"))
        assert held.session_version == 1
        other.commit()
        activation.activate_account(desk.session, username="c1", code=first, password=NEW_PASSWORD)
        assert login(desk, "C1").session_version == 2
        second = activation.issue_activation_code(desk.session, STAFF, "C1")
        activation.activate_account(other, username="c1", code=second, password="another long passphrase")
    assert login(desk, "C1").session_version == 3  # moved on again, not back to 2


@pytest.mark.postgres
def test_the_same_code_at_once_is_accepted_once(pg_engine, monkeypatch):  # type: ignore[no-untyped-def]
    factory = make_session_factory(pg_engine)
    with factory() as session:
        desk = Desk(session)
        actor = desk.customer("C1")
        secret = activation.new_totp_secret()
        totp = pyotp.TOTP(secret)
        now = [NOW]
        monkeypatch.setattr(activation, "utcnow", lambda: now[0])
        activation.enable_totp(session, actor, secret, at(totp, -30))
    for attempt in range(3):
        now[0] = NOW + dt.timedelta(seconds=30 * attempt)
        code = at(totp, 30 * attempt)
        barrier = threading.Barrier(4, timeout=30)
        results: list[bool] = []

        def verify() -> None:
            with factory() as session:
                held = session.get(User, actor.user_id)  # as a request does: the login is loaded first
                session.commit()
                barrier.wait()
                results.append(activation.verify_totp(session, actor.user_id, code))
                assert held.id == actor.user_id

        threads = [threading.Thread(target=verify) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(results) == [False, False, False, True], (attempt, results)
