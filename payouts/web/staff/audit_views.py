"""Back-office pages for the audit trail: the log with filters, verification and checkpoints."""

from __future__ import annotations

import datetime as dt

from flask import flash, redirect, render_template, request, url_for

from payouts.domain.errors import ValidationError
from payouts.domain.roles import BACK_OFFICE_READERS, STAFF_WRITERS
from payouts.services import audit_trail
from payouts.web.access import roles_required
from payouts.web.context import actor, db
from payouts.web.staff.views import bp
from payouts.web.translate import gettext as _


FILTERS = ("actor", "action", "subject_type", "subject_id", "since", "until")


def bounded_date(raw: str | None) -> dt.date | None:
    """A date from a query string, only within 2000-2100 (anything else is ignored)."""
    try:
        value = dt.date.fromisoformat(raw) if raw else None
    except ValueError:
        return None
    return value if value is None or dt.date(2000, 1, 1) <= value <= dt.date(2100, 12, 31) else None


def _date(name: str) -> dt.date | None:
    return bounded_date(request.args.get(name))


@bp.get("/audit")
@roles_required(BACK_OFFICE_READERS)
def audit_log():  # type: ignore[no-untyped-def]
    where = audit_trail.EventFilter(
        actor=request.args.get("actor", "").strip()[:200], action=request.args.get("action", "").strip()[:80],
        subject_type=request.args.get("subject_type", "").strip()[:40],
        subject_id=request.args.get("subject_id", "").strip()[:80], since=_date("since"), until=_date("until"))
    before = request.args.get("before", type=int)
    if before is not None and not 1 <= before <= 2**62:
        before = None
    events, following = audit_trail.search_events(db(), actor(), where, before_seq=before)
    # Only the known filters go back into links: other keys could steer url_for itself.
    args = {k: request.args[k] for k in FILTERS if request.args.get(k)}
    return render_template("staff/audit_log.html", events=events, where=where, following=following, args=args)


@bp.get("/audit/verify")
@roles_required(BACK_OFFICE_READERS)
def audit_verify():  # type: ignore[no-untyped-def]
    session, who = db(), actor()
    result = audit_trail.verify(session, who)
    return render_template("staff/audit_verify.html", result=result,
                           checkpoints=audit_trail.list_checkpoints(session, who))


@bp.post("/audit/checkpoints")
@roles_required(STAFF_WRITERS)
def audit_checkpoint():  # type: ignore[no-untyped-def]
    note = (request.form.get("note") or "").strip()
    try:
        checkpoint = audit_trail.record_checkpoint(db(), actor(), note)
    except ValidationError as exc:
        flash(str(exc), "error")
    else:
        flash(_("Checkpoint recorded at seq %(seq)s.", seq=checkpoint.seq), "success")
    return redirect(url_for("staff.audit_verify"))
