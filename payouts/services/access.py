"""Role checks shared by every service: the server-side half of access control."""

from __future__ import annotations

from collections.abc import Collection

from payouts.domain.errors import PermissionDenied
from payouts.domain.roles import Actor, Role


def require_role(actor: Actor, allowed: Collection[Role], action: str) -> None:
    if actor.role not in allowed:
        raise PermissionDenied(f"role {actor.role.value!r} may not {action}")
