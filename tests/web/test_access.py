"""Access control, walked over the whole URL map rather than route by route.

Every view must declare its roles; each role outside them gets 403 on every method, anonymous
users are sent to the login page, and a regulator can never reach a write.
"""

from __future__ import annotations

import pytest

from payouts.domain.roles import Role
from payouts.web.access import ACCESS_ATTR, OWN_LOGIN_ATTR
from tests.web.conftest import csrf_token

SAMPLE_ARGS = {"ref": "INC-1", "import_id": 1, "code": "en", "filename": "app.css", "run_id": 1, "test_id": 1,
               "customer_ref": "C1", "claim_id": 1, "file_id": 1, "destination_id": 1, "disbursement_id": 1, "job_id": 1, "payment_id": 1}
OPEN_ENDPOINTS = {"static"}


def _routes(app):  # type: ignore[no-untyped-def]
    for rule in app.url_map.iter_rules():
        if rule.endpoint in OPEN_ENDPOINTS:
            continue
        view = app.view_functions[rule.endpoint]
        url = rule.build({a: SAMPLE_ARGS[a] for a in rule.arguments})[1]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule.endpoint, view, url, method


def test_every_view_declares_who_may_use_it(app):  # type: ignore[no-untyped-def]
    undeclared = [e for e, view, _u, _m in _routes(app) if not hasattr(view, ACCESS_ATTR)]
    assert undeclared == []


@pytest.mark.parametrize("role", [*Role, "other"])
def test_every_route_refuses_roles_it_does_not_allow(app, client_for, role):  # type: ignore[no-untyped-def]
    client = client_for(role)
    # A valid CSRF token, so that the role check (not the CSRF check) is what answers.
    token = csrf_token(client.get("/", follow_redirects=True).text)
    actual_role = Role.CUSTOMER if role == "other" else role
    checked = 0
    for endpoint, view, url, method in _routes(app):
        allowed = getattr(view, ACCESS_ATTR)
        if not allowed or actual_role in allowed:
            continue
        response = client.open(url, method=method, data={"csrf_token": token})
        assert response.status_code == 403, f"{role} {method} {url} ({endpoint}) -> {response.status_code}"
        checked += 1
    if actual_role is not Role.ADMIN:
        assert checked > 0


def test_anonymous_users_are_sent_to_login(app):  # type: ignore[no-untyped-def]
    client = app.test_client()
    token = csrf_token(client.get("/login").text)
    for endpoint, view, url, method in _routes(app):
        if not getattr(view, ACCESS_ATTR):
            continue
        response = client.open(url, method=method, data={"csrf_token": token})
        assert response.status_code == 302, f"{method} {url}"
        assert "/login" in response.headers["Location"]


#: The only writes a regulator may make: turning their own login's second factor on and off.
OWN_LOGIN_WRITES = {"auth.totp_enable", "auth.totp_disable"}


def test_regulator_reaches_no_write(app, client_for):  # type: ignore[no-untyped-def]
    """Regulators read everything and change nothing: no non-GET route admits them, except the
    named few that change only their own login (marked own_login on the view)."""
    own_login = set()
    for endpoint, view, url, method in _routes(app):
        allowed = getattr(view, ACCESS_ATTR)
        if getattr(view, OWN_LOGIN_ATTR, False):
            own_login.add(endpoint)
        elif method != "GET" and allowed:
            assert Role.REGULATOR not in allowed, f"{method} {url} admits regulators"
    assert own_login == OWN_LOGIN_WRITES


def test_regulator_can_read_the_back_office(client_for):  # type: ignore[no-untyped-def]
    client = client_for(Role.REGULATOR)
    page = client.get("/staff/incidents/INC-1")
    assert page.status_code == 200
    assert "INC-1" in page.text
    assert 'action="/staff/incidents/INC-1/imports"' not in page.text  # no upload form shown


def test_customer_sees_only_own_losses(client_for):  # type: ignore[no-untyped-def]
    mine = client_for(Role.CUSTOMER).get("/portal/")
    assert mine.status_code == 200
    assert ">0.5<" in mine.text and ">1.25<" not in mine.text  # cells, not digits of a timestamp
    assert "5,000,000" in mine.text  # 0.5 BTC at ¥10,000,000
    other = client_for("other").get("/portal/")
    assert ">1.25<" in other.text and ">0.5<" not in other.text
