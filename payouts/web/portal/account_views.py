"""The customer's payout account and notices."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for

from payouts.domain.errors import ValidationError
from payouts.domain.roles import Role
from payouts.services import destinations, notices
from payouts.web.access import roles_required
from payouts.web.context import actor, db
from payouts.web.portal.forms import ACCOUNT_TYPE_LABELS, DestinationForm
from payouts.web.portal.notices import describe
from payouts.web.portal.views import bp, customer_id
from payouts.web.translate import gettext as _, locale

CUSTOMERS = {Role.CUSTOMER}


def masked_number(account_number: str) -> str:
    """As payouts.domain.bank_accounts.masked shows it: only the last three digits."""
    return "****" + account_number[-3:]


@bp.route("/destination", methods=["GET", "POST"])
@roles_required(CUSTOMERS)
def destination():  # type: ignore[no-untyped-def]
    session, who = db(), actor()
    cid = customer_id()
    form = DestinationForm()
    if form.validate_on_submit():
        try:
            destinations.submit_destination(
                session, who, cid, bank_code=form.bank_code.data or "", branch_code=form.branch_code.data or "",
                account_type=form.account_type.data or "", account_number=form.account_number.data or "",
                holder_name=form.holder_kana.data or "")
        except ValidationError as exc:
            field = getattr(form, exc.field, None)
            if field is not None and hasattr(field, "errors"):
                field.errors = [*field.errors, exc.message]
            else:
                flash(str(exc), "error")
        else:
            flash(_("Your payout account was sent for approval. Staff check it before any money goes there."),
                  "success")
            return redirect(url_for("portal.destination"))
    history = destinations.destinations_of(session, cid)
    latest = history[0] if history else None
    return render_template(
        "portal/destination.html", form=form,
        current=destinations.current_destination(session, cid),
        pending=destinations.pending_destination(session, cid),
        rejected=latest if latest is not None and latest.status == "rejected" else None,
        masked=masked_number, portal_account_type_label=lambda v: ACCOUNT_TYPE_LABELS.get(v, v),
    ), 422 if form.is_submitted() else 200


@bp.get("/notices", endpoint="notices")
@roles_required(CUSTOMERS)
def notices_page():  # type: ignore[no-untyped-def]
    session, who = db(), actor()
    cid = customer_id()
    items = notices.my_notices(session, who, cid)
    lang = locale()
    shown = [(n, describe(n, lang), n.read_at is None) for n in items]
    # Seen now: marked read after the list (and which were new) has been taken. Not when
    # another site sent the browser here: a link elsewhere must not clear the customer's
    # alerts unseen (browsers say where a request came from in Sec-Fetch-Site).
    if any(new for _n, _t, new in shown) and request.headers.get("Sec-Fetch-Site", "none") in ("same-origin", "none"):
        notices.mark_all_read(session, who, cid)
    return render_template("portal/notices.html", notices=shown)
