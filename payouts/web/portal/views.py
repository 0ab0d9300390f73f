"""Customer pages. A customer only ever sees records of their own customer id."""

from __future__ import annotations

from flask import Blueprint, render_template

from payouts.domain.roles import Role
from payouts.services import portal
from payouts.web.access import roles_required
from payouts.web.context import actor, db

bp = Blueprint("portal", __name__)


@bp.get("/")
@roles_required({Role.CUSTOMER})
def home():  # type: ignore[no-untyped-def]
    # The customer comes from the server-side login, never from the URL or the form.
    losses = portal.my_losses(db(), actor())
    return render_template("portal/home.html", losses=losses)
