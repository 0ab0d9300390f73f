"""Per-request database session and the acting user as an audit Actor."""

from __future__ import annotations

import re
import uuid

from flask import current_app, g, request
from flask_login import current_user
from sqlalchemy.orm import Session

from payouts.domain.roles import Actor, Role


def db() -> Session:
    """The request's session, opened on first use and closed when the request ends."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["payouts"].session_factory()
    return g.db_session


def close_db(_exc: BaseException | None = None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


_REQUEST_ID_RE = re.compile(r"[0-9A-Za-z-]{8,64}")


def request_id() -> str:
    """The id that ties this request's audit events together.

    A proxy's X-Request-ID is kept only when it looks like an id, so a client cannot plant
    arbitrary text in the audit trail; otherwise a fresh one is drawn.
    """
    if "request_id" not in g:
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if _REQUEST_ID_RE.fullmatch(given) else uuid.uuid4().hex
    return g.request_id


def actor() -> Actor:
    """The logged-in user as the actor recorded in audit events."""
    return Actor(
        label=current_user.username,
        role=Role(current_user.role),
        user_id=current_user.id,
        request_id=request_id(),
        customer_id=getattr(current_user, "customer_id", None),
    )
