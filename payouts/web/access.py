"""Server-side access control for views: every view declares the roles that may use it.

The declaration is kept on the view function, so a test can walk the whole URL map and check
each route against it; a view that declares nothing is caught by that test.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from functools import wraps
from typing import Any, TypeVar

from flask import abort
from flask_login import current_user

from payouts.domain.roles import Role
from payouts.web.extensions import login_manager

F = TypeVar("F", bound=Callable[..., Any])
ACCESS_ATTR = "_payouts_roles"
#: Set on views that change only the signed-in user's own login (a second factor), never a
#: record: the one kind of write a regulator may make. The access walk lists them by name.
OWN_LOGIN_ATTR = "_payouts_own_login"
PUBLIC = frozenset[Role]()


def roles_required(roles: Collection[Role], *, own_login: bool = False) -> Callable[[F], F]:
    """Allow only logged-in users whose role is in ``roles``; others get 403 (anonymous: login).

    ``own_login`` marks a view that changes nothing but the user's own sign-in security.
    """
    allowed = frozenset(roles)

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if Role(current_user.role) not in allowed:
                abort(403)
            return view(*args, **kwargs)

        setattr(wrapper, ACCESS_ATTR, allowed)
        setattr(wrapper, OWN_LOGIN_ATTR, own_login)
        return wrapper  # type: ignore[return-value]

    return decorate


def public(view: F) -> F:
    """Mark a view as open to anyone (login page, health check, language switch)."""
    setattr(view, ACCESS_ATTR, PUBLIC)
    return view
