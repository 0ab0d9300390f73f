"""Each key scope reaches only what it may, walked over the whole API URL map."""

from __future__ import annotations

import pytest

from payouts.domain.roles import SYSTEM_ACTOR, Role
from payouts.services import api_keys
from payouts.web.access import ACCESS_ATTR
from payouts.web.api.auth import API_ROLES_ATTR
from tests.api.conftest import KEY_ROLES

SAMPLE = {"ref": "INC-1", "import_id": 1, "job_id": 1, "claim_id": 1, "run_id": 1, "disbursement_id": 1,
          "customer_ref": "C1"}
OPEN = {"api_openapi_json", "api_docs"}


def _api_routes(app):  # type: ignore[no-untyped-def]
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1") or rule.endpoint in OPEN:
            continue
        view = app.view_functions[rule.endpoint]
        url = rule.build({a: SAMPLE[a] for a in rule.arguments})[1]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule.endpoint, view, url[len("/api/v1"):], method


def test_every_api_view_declares_its_scopes(api_app):  # type: ignore[no-untyped-def]
    routes = list(_api_routes(api_app))
    assert len(routes) >= 20
    assert [e for e, view, _u, _m in routes if not getattr(view, API_ROLES_ATTR, None)] == []
    # The session-based walk (tests/web/test_access.py) sees them declared too.
    assert all(hasattr(view, ACCESS_ATTR) for _e, view, _u, _m in routes)


def test_no_write_admits_a_regulator_key(api_app):  # type: ignore[no-untyped-def]
    for endpoint, view, url, method in _api_routes(api_app):
        if method != "GET":
            assert Role.REGULATOR not in getattr(view, API_ROLES_ATTR), f"{method} {url}"


@pytest.mark.parametrize("role", KEY_ROLES)
def test_each_scope_is_refused_what_it_may_not_do(api_app, call, role):  # type: ignore[no-untyped-def]
    checked = 0
    for endpoint, view, url, method in _api_routes(api_app):
        if role in getattr(view, API_ROLES_ATTR):
            continue
        response = call(role, method, url, json={})
        assert response.status_code == 403, f"{role} {method} {url} -> {response.status_code}"
        assert response.json["error"]["code"] == "forbidden"
        checked += 1
    if role is not Role.ADMIN:
        assert checked > 0


def test_regulator_key_reads_everything_and_every_post_is_refused(api_app, call):  # type: ignore[no-untyped-def]
    posts = 0
    for endpoint, view, url, method in _api_routes(api_app):
        response = call(Role.REGULATOR, method, url, json={})
        if method == "POST":
            assert response.status_code == 403, f"POST {url}"
            posts += 1
        else:
            assert response.status_code != 403 or endpoint == "api_v1.list_api_keys", f"GET {url}"
    assert posts >= 5
    assert call(Role.REGULATOR, "GET", "/incidents/INC-1").status_code == 200


@pytest.mark.parametrize("credential", ["none", "not-a-key", ""])
def test_missing_or_unknown_keys_get_401_everywhere(api_app, call, credential):  # type: ignore[no-untyped-def]
    for _endpoint, _view, url, method in _api_routes(api_app):
        response = call(credential, method, url, json={})
        assert response.status_code == 401, f"{method} {url}"
        assert response.json["error"]["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_revoked_key_stops_working_and_use_is_recorded(api_app, call, keys):  # type: ignore[no-untyped-def]
    session = api_app.extensions["payouts"].session_factory()
    key = next(k for k in api_keys.list_keys(session, SYSTEM_ACTOR) if k.name == "staff-key")
    key_id, model, last_used = key.id, type(key), key.last_used_at
    session.rollback()  # SQLite: every transaction holds the write lock (BEGIN IMMEDIATE)
    assert last_used is None
    assert call(Role.STAFF, "GET", "/incidents").status_code == 200
    assert session.get(model, key_id).last_used_at is not None
    session.rollback()
    api_keys.revoke_key(session, SYSTEM_ACTOR, key_id)
    session.close()
    assert call(Role.STAFF, "GET", "/incidents").status_code == 401


def test_session_cookies_are_not_api_credentials(api_app, client_for):  # type: ignore[no-untyped-def]
    client = client_for(Role.ADMIN)  # logged in through the form
    assert client.get("/api/v1/incidents").status_code == 401
    assert client.post("/api/v1/incidents", json={}).status_code == 401


def test_keys_are_stored_hashed_and_admin_key_lists_them(api_app, call, keys):  # type: ignore[no-untyped-def]
    session = api_app.extensions["payouts"].session_factory()
    stored = api_keys.list_keys(session, SYSTEM_ACTOR)
    session.close()  # SQLite: release the write lock before the API writes last_used_at
    for key in stored:
        assert keys[Role(key.role)] != key.key_hash and keys[Role(key.role)].startswith(key.prefix)
    listed = call(Role.ADMIN, "GET", "/api-keys").json
    assert {k["name"] for k in listed["items"]} == {f"{r.value}-key" for r in KEY_ROLES}
    assert all("secret" not in k and "key_hash" not in k for k in listed["items"])
