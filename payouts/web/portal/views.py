"""Customer pages. A customer only ever sees records of their own customer id."""

from __future__ import annotations

import datetime as dt

from flask import g, Blueprint, current_app, render_template
from flask_login import current_user

from payouts.domain.claims import FourEyesPolicy
from payouts.domain.roles import Role
from payouts.services import claims, destinations, notices, portal
from payouts.web.access import roles_required
from payouts.web.context import actor, db
from payouts.web.portal.steps import JST, next_step, status_label

bp = Blueprint("portal", __name__)


def policy() -> FourEyesPolicy:
    return FourEyesPolicy(current_app.extensions["payouts"].config.four_eyes_threshold_jpy)


def customer_id() -> int:
    """The customer behind the login (never one named in the URL or a form)."""
    return claims.customer_id_of(db(), actor())


def _jst_time(value: dt.datetime | None) -> str:
    return value.astimezone(JST).strftime("%Y-%m-%d %H:%M JST") if value else "—"


def _jst_date(value: dt.date | dt.datetime | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, dt.datetime):
        value = value.astimezone(JST).date()
    return value.strftime("%Y-%m-%d")


@bp.app_context_processor
def _portal_helpers() -> dict[str, object]:
    def unread() -> int:
        # Called only by the portal's own templates, for customers: counted when shown.
        if not (current_user.is_authenticated and current_user.role == Role.CUSTOMER.value
                and current_user.customer_id is not None):
            return 0
        if "portal_unread_count" in g:  # the page already counted them with its notices
            return int(g.portal_unread_count)
        return notices.unread_count(db(), current_user.customer_id)

    return {"portal_unread_count": unread, "portal_time": _jst_time, "portal_date": _jst_date,
            "portal_status_label": status_label}


def destination_state(session, cid: int) -> str:  # type: ignore[no-untyped-def]
    """approved, pending or missing: whether payouts have somewhere to go."""
    return destinations.destination_status(session, cid)


@bp.get("/")
@roles_required({Role.CUSTOMER})
def home():  # type: ignore[no-untyped-def]
    # The customer comes from the server-side login, never from the URL or the form.
    session, who = db(), actor()
    cid = customer_id()
    account = destination_state(session, cid)
    cards = []
    for claim in claims.my_claims(session, who):
        detail = claims.my_claim(session, who, claim.id, policy())
        cards.append((detail, next_step(claim, detail.disputes, has_destination=account == "approved")))
    with_claims = {detail.incident.id for detail, _step in cards}
    # Incidents whose claims are not open yet: the losses as the ledger shows them.
    losses = [item for item in portal.my_losses(session, who) if item.incident.id not in with_claims]
    return render_template("portal/home.html", cards=cards, losses=losses, account=account,
                           unread=notices.unread_count(session, cid))


# The other portal pages register their routes on this blueprint.
from payouts.web.portal import account_views, claims_views  # noqa: E402,F401
