"""Login: argon2, wrong passwords, rate limit, CSRF, session rotation and logout."""

from __future__ import annotations

from payouts.domain.roles import Role
from tests.conftest import make_config
from tests.web.conftest import csrf_token, login


def test_login_and_logout(app, accounts):  # type: ignore[no-untyped-def]
    client = app.test_client()
    username, password = accounts[Role.STAFF]
    response = login(client, username, password)
    assert response.status_code == 302
    assert client.get("/staff/incidents").status_code == 200
    token = csrf_token(client.get("/staff/incidents").text)
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    after = client.get("/staff/incidents")
    assert after.status_code == 302 and "/login" in after.headers["Location"]


def test_wrong_password_and_unknown_user_look_the_same(app, accounts):  # type: ignore[no-untyped-def]
    client = app.test_client()
    username, _password = accounts[Role.STAFF]
    wrong = login(client, username, "not-the-password")
    unknown = login(client, "nobody@test", "not-the-password")
    assert wrong.status_code == unknown.status_code == 401
    assert client.get("/staff/incidents").status_code == 302


def test_passwords_are_stored_as_argon2_hashes(app, accounts):  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from payouts.db.models import User

    session = app.extensions["payouts"].session_factory()
    hashes = session.scalars(select(User.password_hash)).all()
    assert hashes and all(h.startswith("$argon2id$") for h in hashes)
    passwords = {p for _u, p in accounts.values()}
    assert not any(p in h for h in hashes for p in passwords)


def test_login_without_csrf_token_is_refused(app, accounts):  # type: ignore[no-untyped-def]
    username, password = accounts[Role.STAFF]
    response = app.test_client().post("/login", data={"username": username, "password": password})
    assert response.status_code == 400


def test_forms_without_csrf_token_are_refused(client_for):  # type: ignore[no-untyped-def]
    client = client_for(Role.STAFF)
    response = client.post("/staff/incidents/INC-1/prices",
                           data={"asset": "BTC", "price": "1", "source": "s"})
    assert response.status_code == 400


def test_login_is_rate_limited(db_url, tmp_path, accounts):  # type: ignore[no-untyped-def]
    from payouts.web.app import create_app

    limited = create_app(make_config(db_url, tmp_path, login_rate_limit="3 per minute"))
    client = limited.test_client()
    username, _ = accounts[Role.STAFF]
    codes = [login(client, username, "wrong-password-x").status_code for _ in range(5)]
    assert codes[:3] == [401, 401, 401]
    assert codes[3:] == [429, 429]
    limited.extensions["payouts"].engine.dispose()


def test_session_is_rotated_on_login(app, accounts):  # type: ignore[no-untyped-def]
    client = app.test_client()
    client.get("/login")
    with client.session_transaction() as sess:
        sess["planted"] = "by an attacker"
    username, password = accounts[Role.STAFF]
    login(client, username, password)
    with client.session_transaction() as sess:
        assert "planted" not in sess


def test_password_change_ends_existing_sessions(app, client_for):  # type: ignore[no-untyped-def]
    from payouts.domain.roles import SYSTEM_ACTOR
    from payouts.services import users

    client = client_for(Role.STAFF)
    assert client.get("/staff/incidents").status_code == 200
    session = app.extensions["payouts"].session_factory()
    users.set_password(session, SYSTEM_ACTOR, "staff@test", "a-brand-new-password")
    session.close()
    assert client.get("/staff/incidents").status_code == 302


def test_cookie_and_header_settings(app, accounts):  # type: ignore[no-untyped-def]
    client = app.test_client()
    username, password = accounts[Role.STAFF]
    response = login(client, username, password)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    page = client.get("/staff/incidents")
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"


def test_secure_cookies_in_production_shape(db_url, tmp_path):  # type: ignore[no-untyped-def]
    from payouts.web.app import create_app

    secure = create_app(make_config(db_url, tmp_path, secure_cookies=True))
    assert secure.config["SESSION_COOKIE_SECURE"] is True
    assert secure.config["SESSION_COOKIE_NAME"].startswith("__Host-")
    secure.extensions["payouts"].engine.dispose()


def test_language_switch_only_redirects_within_the_site(app):  # type: ignore[no-untyped-def]
    client = app.test_client()
    assert client.get("/lang/en?next=/login").headers["Location"] == "/login"
    for evil in ("https://evil.example/", "//evil.example/", "/\\evil.example", "/\t/evil.example",
                 "/\n/evil.example", "/\r/evil.example", "/ /evil.example", "javascript:alert(1)"):
        assert client.get("/lang/en", query_string={"next": evil}).headers["Location"] == "/"


def test_login_is_also_limited_per_username_across_addresses(db_url, tmp_path, accounts):  # type: ignore[no-untyped-def]
    from payouts.web.app import create_app

    limited = create_app(make_config(db_url, tmp_path, login_rate_limit="3 per minute"))
    username, _ = accounts[Role.STAFF]
    codes = []
    for n in range(5):
        client = limited.test_client()
        page = client.get("/login", environ_base={"REMOTE_ADDR": f"10.0.0.{n}"})
        codes.append(client.post("/login", environ_base={"REMOTE_ADDR": f"10.0.0.{n}"}, data={
            "username": username, "password": "wrong-password-x", "csrf_token": csrf_token(page.text)}).status_code)
    assert codes == [401, 401, 401, 429, 429]
    limited.extensions["payouts"].engine.dispose()


def test_a_planted_request_id_does_not_reach_the_audit_trail(app, client_for):  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from payouts.db.models import AuditEvent

    client = client_for(Role.STAFF)
    token = csrf_token(client.get("/staff/incidents/INC-1").text)
    client.post("/staff/incidents/INC-1/prices", headers={"X-Request-ID": "<script>forged entry</script>"},
                data={"csrf_token": token, "asset": "ETH", "price": "1", "source": "s"})
    session = app.extensions["payouts"].session_factory()
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "price.set", AuditEvent.subject_id == "INC-1")
                           .order_by(AuditEvent.seq.desc()))
    assert event.request_id and "<" not in event.request_id
    session.close()
