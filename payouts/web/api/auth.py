"""Authentication by API key and the scope check every API view declares.

``Authorization: Bearer <key>`` is the only credential the API accepts: the session cookie of
a logged-in browser is ignored here (and CSRF, which protects cookies, is exempt for the API
blueprints only). The key's role builds the Actor that services check and audit.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from functools import wraps
from typing import Any, TypeVar

from flask import g, request

from payouts.db.models import ApiKey
from payouts.domain.roles import Actor, Role
from payouts.services import api_keys
from payouts.web import context
from payouts.web.access import ACCESS_ATTR, PUBLIC
from payouts.web.api.errors import ApiError

F = TypeVar("F", bound=Callable[..., Any])
#: The key scopes (roles) an API view admits; tests walk the URL map for it.
API_ROLES_ATTR = "_payouts_api_roles"
#: Who may read: every back-office role, regulators included.
READERS = frozenset({Role.STAFF, Role.APPROVER, Role.ADMIN, Role.REGULATOR})
#: Who may write: staff roles; a regulator key never writes.
WRITERS = frozenset({Role.STAFF, Role.APPROVER, Role.ADMIN})
ADMINS = frozenset({Role.ADMIN})


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, "Authorization",
                    headers={"WWW-Authenticate": 'Bearer realm="payouts-api"'})


def presented_secret() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return None
    return secret.strip()


def presented_key() -> ApiKey | None:
    """The live key the request presents, if any: looked up once per request (the rate limit's
    bucket, the upload cap and authentication all ask)."""
    if "api_key_lookup" not in g:
        secret = presented_secret()
        g.api_key_lookup = None if secret is None else api_keys.authenticate(context.db(), secret)
    return g.api_key_lookup  # type: ignore[no-any-return]


def authenticate() -> None:
    """before_request of the API blueprints: who is calling, or 401."""
    if presented_secret() is None:
        raise _unauthorized("send an API key: Authorization: Bearer <key>")
    key = presented_key()
    if key is None:
        raise _unauthorized("the API key is not valid (unknown or revoked)")
    g.api_key = key
    g.api_actor = api_keys.actor_for(key, context.request_id())


def current_key() -> ApiKey:
    return g.api_key  # type: ignore[no-any-return]


def actor() -> Actor:
    return g.api_actor  # type: ignore[no-any-return]


def api_roles(roles: Collection[Role]) -> Callable[[F], F]:
    """Admit only keys whose role is in ``roles``; others get 403.

    No browser session reaches an API view (the key is the only credential), so for the
    session-based checks of payouts.web.access the view is declared open (PUBLIC) and its
    real declaration is API_ROLES_ATTR, which tests/api walks.
    """
    allowed = frozenset(roles)

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            who = actor()
            if who.role not in allowed:
                raise ApiError(403, "forbidden", f"an API key with scope {who.role.value!r} may not do this")
            return view(*args, **kwargs)

        setattr(wrapper, ACCESS_ATTR, PUBLIC)
        setattr(wrapper, API_ROLES_ATTR, allowed)
        return wrapper  # type: ignore[return-value]

    return decorate


def rate_limit_key() -> str:
    """Flask-Limiter's bucket: one per live API key; requests with no key or one that is not
    valid share one per address (a bucket per presented secret would give each made-up key a
    fresh allowance, and guessing would never be slowed)."""
    key = presented_key()
    if key is None:
        return "api-anon:" + (request.remote_addr or "?")
    return f"api-key:{key.id}"
