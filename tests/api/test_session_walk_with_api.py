"""The session-based access walk of tests/web/test_access.py still holds with the API installed
(API views are declared; no browser session reaches them, the key does)."""

from __future__ import annotations

import pytest

from tests.web.test_access import (  # noqa: F401 - collected here against an app with the API
    test_anonymous_users_are_sent_to_login,
    test_every_route_refuses_roles_it_does_not_allow,
    test_every_view_declares_who_may_use_it,
    test_regulator_reaches_no_write,
)


@pytest.fixture
def app(app):  # type: ignore[no-untyped-def]
    from payouts.web.api import init_api

    init_api(app)
    return app
