"""Activating a customer login with its one-time code, and the second factor (TOTP) at login."""

from __future__ import annotations

import datetime as dt
import io
import time

import pyotp
import pytest
from payouts.domain.roles import Role
from payouts.services import activation, claims, incidents, loss_import
from tests.conftest import STAFF, make_config
from tests.web.conftest import csrf_token, login

PASSWORD = "correct horse battery"


@pytest.fixture
def code(app, accounts) -> str:  # type: ignore[no-untyped-def]
    """Customer C3 (no login yet) in a fresh incident whose claims are open: a login without a
    password exists for C3, and staff issued this activation code for it."""
    session = app.extensions["payouts"].session_factory()
    t = dt.datetime(2026, 2, 1, 9, 0, tzinfo=dt.timezone.utc)
    incidents.record_incident(session, STAFF, ref="INC-2", title="Second hack", incident_type="hack",
                              occurred_at=t, discovered_at=t)
    incidents.set_reference_price(session, STAFF, incident_ref="INC-2", asset_code="BTC",
                                  price="10000000", source="test VWAP")
    data = b"customer_ref,asset,amount,name\nC3,BTC,0.1,Customer Three\n"
    assert loss_import.import_losses(session, STAFF, "INC-2", io.BytesIO(data), "c3.csv").status == "imported"
    claims.open_claims(session, STAFF, "INC-2")
    issued = activation.issue_activation_code(session, STAFF, "C3")
    session.close()
    return issued


def english(client):  # type: ignore[no-untyped-def]
    client.get("/lang/en")
    return client


def activate(client, username: str, code: str, password: str = PASSWORD, confirm: str | None = None):  # type: ignore[no-untyped-def]
    page = client.get("/activate")
    return client.post("/activate", data={
        "csrf_token": csrf_token(page.text), "username": username, "code": code,
        "password": password, "confirm": password if confirm is None else confirm})


def test_login_page_links_to_activation(app):  # type: ignore[no-untyped-def]
    page = english(app.test_client()).get("/login")
    assert 'href="/activate"' in page.text and "First time here?" in page.text


def test_activation_then_login_shows_the_customers_claim(app, code):  # type: ignore[no-untyped-def]
    client = english(app.test_client())
    assert login(client, "c3", PASSWORD).status_code == 401  # no password yet
    done = activate(client, "C3", code.lower().replace("-", " "))  # typed loosely, as from a letter
    assert done.status_code == 302 and done.headers["Location"].endswith("/login")
    assert "Your account is active" in client.get("/login").text
    assert login(client, "C3", PASSWORD).status_code == 302
    home = client.get("/portal/")
    assert home.status_code == 200 and "Second hack (INC-2)" in home.text
    assert "JPY 1,000,000" in home.text  # 0.1 BTC at JPY 10,000,000


def test_wrong_code_and_unknown_customer_are_refused_alike(app, code):  # type: ignore[no-untyped-def]
    client = english(app.test_client())
    wrong = activate(client, "C3", "AAAA-BBBB-CCCC-DDDD")
    unknown = activate(client, "C999", code)
    staff = activate(client, "staff@test", code)
    for response in (wrong, unknown, staff):
        assert response.status_code == 422
        assert "The customer number or activation code is not valid" in response.text
        assert 'id="code-error"' in response.text
    assert login(client, "c3", PASSWORD).status_code == 401


def test_passwords_must_match_and_be_long_enough(app, code):  # type: ignore[no-untyped-def]
    client = english(app.test_client())
    mismatch = activate(client, "C3", code, confirm=PASSWORD + "x")
    assert mismatch.status_code == 422 and "The two passwords are not the same." in mismatch.text
    short = activate(client, "C3", code, password="short-pw")
    assert short.status_code == 422 and "Use at least 12 characters." in short.text
    # Neither used the code up.
    assert activate(client, "C3", code).status_code == 302


def test_a_code_works_once(app, code):  # type: ignore[no-untyped-def]
    client = english(app.test_client())
    assert activate(client, "C3", code).status_code == 302
    again = activate(client, "C3", code, password="another password here")
    assert again.status_code == 422 and "not valid" in again.text
    assert login(client, "c3", "another password here").status_code == 401
    assert login(client, "c3", PASSWORD).status_code == 302


def test_activation_is_rate_limited(db_url, tmp_path, code):  # type: ignore[no-untyped-def]
    from payouts.web.app import create_app

    limited = create_app(make_config(db_url, tmp_path, login_rate_limit="3 per minute"))
    client = limited.test_client()
    codes = [activate(client, "C3", "AAAA-BBBB-CCCC-DDDD").status_code for _ in range(5)]
    assert codes == [422, 422, 422, 429, 429]
    limited.extensions["payouts"].engine.dispose()


# --- second factor --------------------------------------------------------------------------


def _enable(client) -> str:  # type: ignore[no-untyped-def]
    """Turn TOTP on through the security page; returns the secret."""
    page = client.get("/account/security")
    assert page.status_code == 200 and "<svg" in page.text
    with client.session_transaction() as sess:
        secret = sess["totp_setup"]["secret"]
    assert " ".join(secret[i:i + 4] for i in range(0, len(secret), 4)) in page.text  # shown as text too
    wrong = client.post("/account/security/totp/enable", data={"csrf_token": csrf_token(page.text), "code": _wrong(secret)})
    assert wrong.status_code == 422 and "That code does not match" in wrong.text
    done = client.post("/account/security/totp/enable",
                       data={"csrf_token": csrf_token(page.text), "code": pyotp.TOTP(secret).now()})
    assert done.status_code == 302
    assert "On." in client.get("/account/security").text
    return secret


def _wrong(secret: str) -> str:
    """Six digits that no step around now accepts."""
    totp, now = pyotp.TOTP(secret), time.time()
    near = {totp.at(now + d) for d in (-60, -30, 0, 30, 60)}
    return next(c for c in ("000000", "111111", "222222", "333333", "444444", "555555", "666666") if c not in near)


def _at_second_step(client_for, accounts, role: Role):  # type: ignore[no-untyped-def]
    """A login of ``role`` that turned a second factor on, then signed out and in again with its
    password: waiting for its code. Returns the client and the TOTP secret."""
    client = english(client_for(role))
    secret = _enable(client)
    client.post("/logout", data={"csrf_token": csrf_token(client.get("/account/security").text)})
    username, password = accounts[role]
    assert login(client, username, password).headers["Location"].endswith("/login/totp")
    return client, secret


def _send_again(client, saved: dict) -> None:  # type: ignore[no-untyped-def, type-arg]
    """The browser sends a session cookie saved earlier instead of its current one."""
    with client.session_transaction() as sess:
        sess.clear()
        sess.update(saved)


def _next_code(secret: str) -> str:
    # The code of the next 30-second step: enabling used up the current one (no replays).
    return pyotp.TOTP(secret).at(time.time() + 30)


def test_totp_login_needs_the_code(app, accounts, client_for):  # type: ignore[no-untyped-def]
    client = english(client_for(Role.CUSTOMER))
    secret = _enable(client)
    token = csrf_token(client.get("/portal/").text)
    client.post("/logout", data={"csrf_token": token})

    username, password = accounts[Role.CUSTOMER]
    english(client)
    step_one = login(client, username, password)
    assert step_one.status_code == 302 and step_one.headers["Location"].endswith("/login/totp")
    assert client.get("/portal/").status_code == 302  # not logged in yet

    page = client.get("/login/totp")
    assert page.status_code == 200 and "6-digit code" in page.text
    wrong = client.post("/login/totp", data={"csrf_token": csrf_token(page.text), "code": "12345x"})
    assert wrong.status_code in (401, 422)
    assert client.get("/portal/").status_code == 302
    wrong = client.post("/login/totp", data={"csrf_token": csrf_token(page.text), "code": _wrong(secret)})
    assert wrong.status_code == 401 and "That code is not right" in wrong.text

    with client.session_transaction() as sess:
        sess["planted"] = "before the second step"
    done = client.post("/login/totp", data={"csrf_token": csrf_token(page.text), "code": _next_code(secret)})
    assert done.status_code == 302
    assert client.get("/portal/").status_code == 200
    with client.session_transaction() as sess:
        assert "planted" not in sess and "totp_pending" not in sess  # a fresh session


def test_wrong_codes_are_counted_on_the_server_so_a_replayed_cookie_starts_nothing_again(app, accounts, client_for):  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from payouts.db.models import AuditEvent

    client, secret = _at_second_step(client_for, accounts, Role.STAFF)
    token = csrf_token(client.get("/login/totp").text)
    with client.session_transaction() as sess:
        after_password = dict(sess)  # the cookie a guesser would keep and send again
    for _ in range(activation.MAX_TOTP_FAILURES - 1):
        _send_again(client, after_password)  # each guess from the same saved cookie
        assert client.post("/login/totp", data={"csrf_token": token, "code": _wrong(secret)}).status_code == 401
    last = client.post("/login/totp", data={"csrf_token": token, "code": _wrong(secret)})
    assert last.status_code == 302 and last.headers["Location"].endswith("/login")
    assert "Too many wrong codes" in client.get("/login").text
    # The saved cookie is worth nothing now, even with the right code: the password comes first.
    _send_again(client, after_password)
    code = _next_code(secret)
    late = client.post("/login/totp", data={"csrf_token": token, "code": code})
    assert late.status_code == 302 and late.headers["Location"].endswith("/login")
    assert client.get("/staff/incidents").status_code == 302
    with app.extensions["payouts"].session_factory() as session:
        assert session.scalar(select(AuditEvent.action).where(AuditEvent.action == "user.totp_locked"))
    # ... and it did not use up the code: the real user, signing in again, can use it.
    username, password = accounts[Role.STAFF]
    assert login(client, username, password).headers["Location"].endswith("/login/totp")
    token = csrf_token(client.get("/login/totp").text)
    assert client.post("/login/totp", data={"csrf_token": token, "code": code}).status_code == 302
    assert client.get("/staff/incidents").status_code == 200


def test_a_session_cookie_copied_before_logout_is_worthless_after_it(client_for):  # type: ignore[no-untyped-def]
    client = english(client_for(Role.STAFF))
    assert client.get("/staff/incidents").status_code == 200
    with client.session_transaction() as sess:
        copied = dict(sess)
    client.post("/logout", data={"csrf_token": csrf_token(client.get("/staff/incidents").text)})
    _send_again(client, copied)
    assert client.get("/staff/incidents").status_code == 302


def test_the_pending_second_step_expires(app, accounts, client_for):  # type: ignore[no-untyped-def]
    client, secret = _at_second_step(client_for, accounts, Role.STAFF)  # staff may turn it on too
    with client.session_transaction() as sess:
        sess["totp_pending"] = {**sess["totp_pending"], "since": int(time.time()) - 301}
    page = client.get("/login/totp")
    assert page.status_code == 302 and page.headers["Location"].endswith("/login")
    token = csrf_token(client.get("/login").text)
    late = client.post("/login/totp", data={"csrf_token": token, "code": _next_code(secret)})
    assert late.status_code == 302 and late.headers["Location"].endswith("/login")
    assert client.get("/staff/incidents").status_code == 302


def test_turning_totp_off_needs_a_current_code(app, accounts, client_for):  # type: ignore[no-untyped-def]
    client = english(client_for(Role.CUSTOMER))
    secret = _enable(client)
    page = client.get("/account/security")
    wrong = client.post("/account/security/totp/disable", data={"csrf_token": csrf_token(page.text), "code": _wrong(secret)})
    assert wrong.status_code == 422 and "That code does not match." in wrong.text
    done = client.post("/account/security/totp/disable",
                       data={"csrf_token": csrf_token(page.text), "code": _next_code(secret)})
    assert done.status_code == 302
    assert "Off." in client.get("/account/security").text  # this session carries on
    username, password = accounts[Role.CUSTOMER]
    fresh = app.test_client()
    assert login(fresh, username, password).headers["Location"] == "/"  # straight in again
    assert fresh.get("/portal/").status_code == 200


def test_regulators_protect_their_own_login_with_a_second_factor(app, accounts, client_for):  # type: ignore[no-untyped-def]
    client, secret = _at_second_step(client_for, accounts, Role.REGULATOR)
    assert client.get("/staff/incidents").status_code == 302  # not in on the password alone
    page = client.get("/login/totp")
    done = client.post("/login/totp", data={"csrf_token": csrf_token(page.text), "code": _next_code(secret)})
    assert done.status_code == 302
    assert client.get("/staff/incidents").status_code == 200
    # Still read-only everywhere else.
    token = csrf_token(client.get("/staff/incidents").text)
    assert client.post("/staff/incidents/new", data={"csrf_token": token}).status_code == 403
