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
PUBLIC = frozenset[Role]()


def roles_required(roles: Collection[Role]) -> Callable[[F], F]:
    """Allow only logged-in users whose role is in ``roles``; others get 403 (anonymous: login)."""
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
        return wrapper  # type: ignore[return-value]

    return decorate


def public(view: F) -> F:
    """Mark a view as open to anyone (login page, health check, language switch)."""
    setattr(view, ACCESS_ATTR, PUBLIC)
    return view
