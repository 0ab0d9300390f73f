"""Back-office pages for allocation: terms, preview, commit, runs, lines, later money."""

from __future__ import annotations

from flask import current_app, abort, flash, redirect, render_template, request, url_for
from payouts.domain.errors import ConflictError, ValidationError
from payouts.domain.roles import BACK_OFFICE_READERS, STAFF_WRITERS
from payouts.services import allocation, funding, incidents
from payouts.web.access import roles_required
from payouts.web.context import actor, db
from payouts.web.staff.forms import CommitForm, RecoveryForm, TermsForm
from payouts.web.staff.views import attach_error, bp, submit
from payouts.web.translate import gettext as _

PAGE_SIZE = 50
#: Incidents with more customers than this compute their preview only when asked.
PREVIEW_AUTO_LIMIT = 50_000


def _terms_form(incident_id: int) -> TermsForm:
    terms = funding.get_terms(db(), incident_id)
    form = TermsForm()
    if terms is not None and not form.is_submitted():
        form.deductible_jpy.data = terms.deductible_jpy
        form.cap_jpy.data = terms.cap_jpy
        form.tranches_jpy.data = terms.tranches_jpy
    return form


@bp.get("/incidents/<ref>/allocation")
@roles_required(BACK_OFFICE_READERS)
def allocation_page(ref: str):  # type: ignore[no-untyped-def]
    return _render_allocation(ref)


def _render_allocation(ref: str, terms_form=None, recovery_form=None, status=200):  # type: ignore[no-untyped-def]
    session, who = db(), actor()
    incident = incidents.get_incident(session, who, ref)
    runs = allocation.runs(session, who, incident)
    preview = problem = None
    customers = incidents.summarize_incident(session, who, incident).customers
    # A large incident's preview takes tens of seconds: computed when asked for, not on every
    # visit (a regulator browsing must not set the engine off for a million customers).
    on_request = customers > PREVIEW_AUTO_LIMIT and request.args.get("preview") != "1"
    if not runs and not on_request:
        try:
            preview = allocation.preview(session, who, ref)
        except ValidationError as exc:
            problem = exc.message
    lines = []
    if preview is not None:
        query = request.args.get("q", "").strip()
        chosen = [c for c in preview.result.customers if not query or query in c.id]
        lines = chosen[:PAGE_SIZE]
    commit_form = CommitForm()
    if preview is not None:
        commit_form.digest.data = preview.digest
    return render_template(
        "staff/allocation.html", incident=incident, runs=runs, preview=preview, problem=problem,
        preview_on_request=on_request and not runs, customers=customers,
        lines=lines, terms_form=terms_form or _terms_form(incident.id), commit_form=commit_form,
        recovery_form=recovery_form or RecoveryForm(), query=request.args.get("q", ""),
    ), status


@bp.post("/incidents/<ref>/terms")
@roles_required(STAFF_WRITERS)
def terms_set(ref: str):  # type: ignore[no-untyped-def]
    incident = incidents.get_incident(db(), actor(), ref)
    form = _terms_form(incident.id)
    return submit(
        form,
        lambda: funding.set_terms(db(), actor(), incident_ref=ref, deductible_jpy=form.deductible_jpy.data,
                                  cap_jpy=form.cap_jpy.data, tranches_jpy=form.tranches_jpy.data or ""),
        _("Compensation terms saved."), url_for("staff.allocation_page", ref=ref),
        lambda f: _render_allocation(ref, terms_form=f, status=422))


@bp.post("/incidents/<ref>/allocation/commit")
@roles_required(STAFF_WRITERS)
def allocation_commit(ref: str):  # type: ignore[no-untyped-def]
    form = CommitForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        state = current_app.extensions["payouts"]
        run = allocation.commit_allocation(db(), actor(), ref, expected_digest=form.digest.data,
                                           dispatch=state.dispatch, batch_size=state.config.disbursement_batch_size)
    except (ConflictError, ValidationError) as exc:
        flash(str(exc), "error")
        return redirect(url_for("staff.allocation_page", ref=ref))
    flash(_("Allocation run #%(id)s committed.", id=run.id), "success")
    return redirect(url_for("staff.run_detail", ref=ref, run_id=run.id))


@bp.post("/incidents/<ref>/recoveries")
@roles_required(STAFF_WRITERS)
def recovery_record(ref: str):  # type: ignore[no-untyped-def]
    form = RecoveryForm()
    if form.validate_on_submit():
        try:
            state = current_app.extensions["payouts"]
            run = allocation.record_recovery(db(), actor(), incident_ref=ref, amount_jpy=form.amount_jpy.data,
                                             source=form.source.data, dispatch=state.dispatch,
                                             batch_size=state.config.disbursement_batch_size)
        except ConflictError as exc:
            flash(str(exc), "error")
        except ValidationError as exc:
            attach_error(form, exc)
            return _render_allocation(ref, recovery_form=form, status=422)
        else:
            flash(_("Recovery shared in run #%(id)s.", id=run.id), "success")
            return redirect(url_for("staff.run_detail", ref=ref, run_id=run.id))
        return redirect(url_for("staff.allocation_page", ref=ref))
    return _render_allocation(ref, recovery_form=form, status=422)


@bp.get("/incidents/<ref>/runs/<int:run_id>")
@roles_required(BACK_OFFICE_READERS)
def run_detail(ref: str, run_id: int):  # type: ignore[no-untyped-def]
    session, who = db(), actor()
    incident = incidents.get_incident(session, who, ref)
    run = allocation.get_run(session, who, incident, run_id)
    page = min(max(request.args.get("page", 1, type=int) or 1, 1), 10**6)
    query = request.args.get("q", "").strip()[:64]
    lines, has_more = allocation.run_lines(session, who, run, query, page, PAGE_SIZE)
    return render_template(
        "staff/run.html", incident=incident, run=run, lines=lines, has_more=has_more,
        page=page, query=query, ratio_rows=allocation.run_histogram(session, run),
    )


@bp.get("/incidents/<ref>/allocation/customers/<customer_ref>")
@roles_required(BACK_OFFICE_READERS)
def preview_line(ref: str, customer_ref: str):  # type: ignore[no-untyped-def]
    session, who = db(), actor()
    incident = incidents.get_incident(session, who, ref)
    explanation = allocation.explain_preview_line(session, who, ref, customer_ref)
    return render_template("staff/line.html", incident=incident, x=explanation)


@bp.get("/incidents/<ref>/runs/<int:run_id>/customers/<customer_ref>")
@roles_required(BACK_OFFICE_READERS)
def run_line(ref: str, run_id: int, customer_ref: str):  # type: ignore[no-untyped-def]
    session, who = db(), actor()
    incident = incidents.get_incident(session, who, ref)
    explanation = allocation.explain_line(session, who, incident, run_id, customer_ref)
    return render_template("staff/line.html", incident=incident, x=explanation)
