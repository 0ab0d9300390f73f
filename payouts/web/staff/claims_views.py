"""Back-office pages for claims: the review queue, one claim with its actions, evidence files,
bulk approval, opening an incident's claims, and payout destinations.

Staff and approvers act on claims and destinations; admins and regulators read. Every action
names the row version the reviewer saw, so when someone else acted first the page says so and
shows the claim as it is now, instead of applying a decision made on a stale picture.
"""

from __future__ import annotations

import json

from flask import abort, current_app, flash, redirect, render_template, request, send_file, url_for
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import HiddenField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional, Regexp

from payouts.domain.claims import ALLOWED_FROM, ClaimAction, ClaimStatus, FourEyesPolicy
from payouts.domain.errors import ConflictError, PermissionDenied, TransitionError, ValidationError
from payouts.domain.roles import BACK_OFFICE_READERS, STAFF_WRITERS, Role
from payouts.services import audit_trail, claim_queue, claims, destinations, evidence, incidents
from payouts.web.access import roles_required
from payouts.web.context import actor, db
from payouts.web.staff.views import attach_error, bp
from payouts.web.translate import gettext as _

#: Who acts on claims and payout destinations (the services enforce the same).
REVIEWERS = frozenset({Role.STAFF, Role.APPROVER})

CLAIM_STATUS_LABELS = {
    ClaimStatus.OPEN.value: _l("Open: waiting for the customer"),
    ClaimStatus.ACCEPTED.value: _l("Accepted by the customer"),
    ClaimStatus.DISPUTED.value: _l("Disputed"),
    ClaimStatus.NEEDS_INFORMATION.value: _l("Information requested"),
    ClaimStatus.UNDER_REVIEW.value: _l("Waiting for the second approval"),
    ClaimStatus.APPROVED.value: _l("Approved"),
    ClaimStatus.REJECTED.value: _l("Rejected"),
    ClaimStatus.WITHDRAWN.value: _l("Withdrawn"),
    ClaimStatus.PAID.value: _l("Paid"),
}
QUEUE_FILTER_LABELS = {
    claim_queue.QueueFilter.NEEDS_ACTION.value: _l("Needs action"),
    claim_queue.QueueFilter.DISPUTED.value: _l("Disputed"),
    claim_queue.QueueFilter.DESTINATION_CHANGED.value: _l("Payout account changed"),
    claim_queue.QueueFilter.ABOVE_THRESHOLD.value: _l("Above the four-eyes threshold"),
    claim_queue.QueueFilter.SECOND_APPROVAL.value: _l("Waiting for a second approval"),
    claim_queue.QueueFilter.ALL.value: _l("All claims"),
}
DESTINATION_STATUS_LABELS = {
    "pending": _l("Waiting for approval"),
    "approved": _l("Approved"),
    "rejected": _l("Rejected"),
    "superseded": _l("Replaced"),
}
ACCOUNT_TYPE_LABELS = {
    "ordinary": _l("Ordinary (普通)"),
    "current": _l("Current (当座)"),
    "savings": _l("Savings (貯蓄)"),
}
MAX_CURSOR = 2**62


def _policy() -> FourEyesPolicy:
    return FourEyesPolicy(current_app.extensions["payouts"].config.four_eyes_threshold_jpy)


def _is_reviewer() -> bool:
    return current_user.is_authenticated and Role(current_user.role) in REVIEWERS


def _corrected(dispute) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """A dispute's corrected amounts ({asset: whole units}), stored as canonical JSON."""
    try:
        value = json.loads(dispute.corrected or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


@bp.app_context_processor
def _claim_helpers() -> dict[str, object]:
    return {
        "staff_claim_status_label": lambda v: CLAIM_STATUS_LABELS.get(v, v),
        "staff_destination_status_label": lambda v: DESTINATION_STATUS_LABELS.get(v, v),
        "staff_account_type_label": lambda v: ACCOUNT_TYPE_LABELS.get(v, v),
        "masked_account_number": lambda number: "****" + (number or "")[-3:],
        "claim_counts_of": lambda incident: claim_queue.claim_counts(db(), actor(), incident.id),
        "all_claim_statuses": [s.value for s in ClaimStatus],
    }


# --- forms (Flask-WTF: every one carries a CSRF token) --------------------------------------


class RowVersionForm(FlaskForm):
    """An action on a record as the reviewer saw it (its row version)."""

    row_version = HiddenField(validators=[DataRequired(), Regexp(r"^[0-9]{1,9}$")])

    def seen(self) -> int:
        return int(self.row_version.data)


class ApproveForm(RowVersionForm):
    pass


class RejectForm(RowVersionForm):
    reason = TextAreaField(_l("Reason for rejecting (the customer sees it)"),
                           validators=[DataRequired(), Length(max=claims.MAX_REASON)])


class InformationForm(RowVersionForm):
    question = TextAreaField(_l("What the customer should send or explain"),
                             validators=[DataRequired(), Length(max=claims.MAX_REASON)])


class AdjustForm(RowVersionForm):
    """One amount field per asset (added per claim by ``adjust_form``) and the reason."""

    adjust_reason = TextAreaField(_l("Reason for the adjustment (the customer sees it)"),
                                  validators=[DataRequired(), Length(max=claims.MAX_REASON)])


def amount_field(asset: str) -> str:
    return f"amount_{asset}"


def adjust_form(assets: list[str], current: dict[str, str]) -> AdjustForm:
    """The adjustment form for these assets, prefilled with the current amounts."""

    class Form(AdjustForm):
        pass

    for code in assets:
        setattr(Form, amount_field(code), StringField(
            _l("%(asset)s (whole units)", asset=code), default=current.get(code, ""),
            validators=[Optional(), Length(max=80)]))
    return Form()


class BareForm(FlaskForm):
    """A button that only needs the CSRF token (open claims, bulk approve)."""


class DestinationDecisionForm(RowVersionForm):
    pass


class DestinationRejectForm(RowVersionForm):
    reason = TextAreaField(_l("Reason for rejecting (the customer sees it)"),
                           validators=[DataRequired(), Length(max=1000)])


class DestinationForm(FlaskForm):
    bank_code = StringField(_l("Bank code (4 digits)"), validators=[DataRequired(), Length(max=10)])
    branch_code = StringField(_l("Branch code (3 digits)"), validators=[DataRequired(), Length(max=10)])
    account_type = SelectField(_l("Account type"),
                               choices=[SelectChoice(k, v) for k, v in ACCOUNT_TYPE_LABELS.items()])
    account_number = StringField(_l("Account number (up to 7 digits)"), validators=[DataRequired(), Length(max=12)])
    holder_name = StringField(_l("Account holder's name in katakana"), validators=[DataRequired(), Length(max=120)])


# --- the review queue -----------------------------------------------------------------------


QUEUE_ARGS = ("filter", "status", "incident")


@bp.get("/claims")
@roles_required(BACK_OFFICE_READERS)
def claims_queue():  # type: ignore[no-untyped-def]
    session, who, policy = db(), actor(), _policy()
    which = claim_queue.parse_filter(request.args.get("filter") or None)
    status = request.args.get("status", "").strip()[:30] or None
    incident_ref = request.args.get("incident", "").strip()[:40] or None
    after = request.args.get("after", type=int)
    if after is not None and not 0 <= after <= MAX_CURSOR:
        after = None
    page = claim_queue.review_queue(session, who, policy, which=which, incident_ref=incident_ref,
                                    status=status, after=after)
    rows = []
    for row in page.rows:
        required = policy.approvals_required(row.claim.total_jpy)
        rows.append((row, required, _approvals_given(row.claim.status, required)))
    bulk = []
    if _is_reviewer():
        bulk = [s.incident for s in incidents.list_incidents(session, who)
                if s.incident.status == "claims_open" and (incident_ref is None or s.incident.ref == incident_ref)
                and not claims.made_ledger_figures(session, current_user.id, s.incident.id)]
    # Only the known filters go back into links: other keys could steer url_for itself.
    args = {k: request.args[k] for k in QUEUE_ARGS if request.args.get(k)}
    return render_template(
        "staff/claims_queue.html", rows=rows, next_cursor=page.next_cursor, after=after, which=which.value,
        status=status or "", incident_ref=incident_ref or "", args=args, filters=QUEUE_FILTER_LABELS,
        threshold=policy.threshold_jpy, bulk_incidents=bulk,
        can_review=_is_reviewer(),
    )


def _approvals_given(status: str, required: int) -> int:
    """Valid approvals of the current version, as the state machine implies: approving
    moves an accepted claim on, and every move back voids them."""
    if status == ClaimStatus.UNDER_REVIEW.value:
        return 1
    if status in (ClaimStatus.APPROVED.value, ClaimStatus.PAID.value):
        return required
    return 0


@bp.post("/incidents/<ref>/claims/bulk-approve")
@roles_required(REVIEWERS)
def claims_bulk_approve(ref: str):  # type: ignore[no-untyped-def]
    if not BareForm().validate_on_submit():
        abort(400)
    try:
        count = claims.bulk_approve(db(), actor(), ref, _policy())
    except (ConflictError, ValidationError, PermissionDenied) as exc:
        flash(_("Nothing was approved: %(reason)s", reason=str(exc)), "error")
    else:
        flash(ngettext("%(num)s claim of %(ref)s approved.", "%(num)s claims of %(ref)s approved.", count,
                       ref=ref), "success")
    return redirect(url_for("staff.claims_queue", incident=ref, filter="all"))


@bp.post("/incidents/<ref>/claims/open")
@roles_required(STAFF_WRITERS)
def claims_open(ref: str):  # type: ignore[no-untyped-def]
    if not BareForm().validate_on_submit():
        abort(400)
    try:
        count = claims.open_claims(db(), actor(), ref)
    except (ConflictError, ValidationError) as exc:
        flash(_("The claims were not opened: %(reason)s", reason=str(exc)), "error")
        return redirect(url_for("staff.incident_detail", ref=ref) + "#claims")
    flash(ngettext("%(num)s claim opened to customers.", "%(num)s claims opened to customers.", count), "success")
    return redirect(url_for("staff.claims_queue", incident=ref, filter="all"))


# --- one claim ------------------------------------------------------------------------------


CHANGED_BY_SOMEONE_ELSE = _l("This claim was changed by someone else; here it is as it is now.")


@bp.get("/claims/<int:claim_id>")
@roles_required(BACK_OFFICE_READERS)
def claim_detail(claim_id: int):  # type: ignore[no-untyped-def]
    return _render_claim(claim_id)


def _approval_refusal(detail: claims.ClaimDetail) -> str | None:
    """Why the current user cannot approve this claim now (None: they can)."""
    claim = detail.claim
    status = ClaimStatus(claim.status)
    if status in (ClaimStatus.OPEN, ClaimStatus.NEEDS_INFORMATION):
        return _("The customer has not accepted this version yet; it can be approved once they do.")
    if status is ClaimStatus.DISPUTED:
        return _("The customer disputed this version: adjust it, ask for information or reject it.")
    if status not in ALLOWED_FROM[ClaimAction.APPROVE]:
        return _("This claim is %(status)s; there is nothing to approve.",
                 status=CLAIM_STATUS_LABELS.get(claim.status, claim.status))
    if claim.changed_by_id is not None and claim.changed_by_id == current_user.id:
        return _("You adjusted this version, so someone else must approve it.")
    if claim.version == 1 and claims.made_ledger_figures(db(), current_user.id, claim.incident_id):
        return _("You imported this incident's losses or set its reference prices, so someone else must"
                 " approve its claims as computed from them.")
    current = [a for a in detail.approvals if a.version == claim.version and a.voided_at is None]
    if any(a.user_id == current_user.id for a in current):
        return _("You already approved this version; a different person must give the second approval.")
    if detail.approvals_required == 2 and len(current) == 1 and current_user.role != Role.APPROVER.value:
        return _("The second approval of a claim above %(threshold)s must come from an approver.",
                 threshold=_yen(_policy().threshold_jpy))
    return None


def _yen(amount: int) -> str:
    return current_app.jinja_env.filters["yen"](amount)


def _render_claim(claim_id: int, *, forms: dict[str, FlaskForm] | None = None, problem: str | None = None,
                  status: int = 200):  # type: ignore[no-untyped-def]
    session, who = db(), actor()
    detail = claims.claim_for_staff(session, who, claim_id, _policy())
    claim = detail.claim
    forms = dict(forms or {})
    current_amounts = {line.asset: line.amount for line in detail.lines}
    assets = sorted({*current_amounts, *(p.asset_code for p in detail.incident.prices)})
    forms.setdefault("approve", ApproveForm(formdata=None))
    forms.setdefault("reject", RejectForm(formdata=None))
    forms.setdefault("information", InformationForm(formdata=None))
    if "adjust" not in forms:
        form = adjust_form(assets, current_amounts)
        form.process(formdata=None)
        forms["adjust"] = form
    for form in forms.values():
        # A refused form keeps what was typed; after a conflict every form names the fresh version.
        if problem is not None or not form.row_version.data:
            form.row_version.data = str(claim.row_version)
    history, older = audit_trail.search_events(
        session, who, audit_trail.EventFilter(subject_type="claim", subject_id=str(claim.id)))
    allowed = {a.value: ClaimStatus(claim.status) in ALLOWED_FROM[a] for a in ClaimAction}
    return render_template(
        "staff/claim_detail.html", d=detail, claim=claim, forms=forms, problem=problem,
        current_approvals=[a for a in detail.approvals if a.version == claim.version and a.voided_at is None],
        approval_refusal=_approval_refusal(detail) if _is_reviewer() else None,
        allowed=allowed, can_review=_is_reviewer(), assets=assets, amount_field=amount_field,
        evidence=evidence.evidence_for_claim(session, claim.id),
        corrected=_corrected, history=history, more_history=older is not None,
        destinations=destinations.destination_rows_of(session, who, claim.customer_id),
        threshold=_policy().threshold_jpy,
    ), status


def _claim_action(claim_id: int, name: str, form: RowVersionForm, action, done: str,
                  fields: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    """Run ``action(row_version)`` for the form ``name`` of the claim page; show what stops it."""
    if not form.validate_on_submit():
        if form.row_version.errors or not form.row_version.data:
            abort(400)  # not a form of ours: the page always carries the version it showed
        return _render_claim(claim_id, forms={name: form}, status=422)
    seen = form.seen()
    try:
        action(seen)
    except ValidationError as exc:
        target = (fields or {}).get(exc.field, exc.field)
        attach_error(form, ValidationError(target, exc.message))
        return _render_claim(claim_id, forms={name: form}, status=422)
    except TransitionError as exc:
        return _render_claim(claim_id, forms={name: form}, problem=str(exc), status=409)
    except ConflictError as exc:
        now = claims.claim_for_staff(db(), actor(), claim_id, _policy()).claim.row_version
        message = str(CHANGED_BY_SOMEONE_ELSE) if now != seen else str(exc)
        return _render_claim(claim_id, forms={name: form}, problem=message, status=409)
    except PermissionDenied as exc:
        return _render_claim(claim_id, forms={name: form}, problem=str(exc), status=403)
    flash(done, "success")
    return redirect(url_for("staff.claim_detail", claim_id=claim_id))


@bp.post("/claims/<int:claim_id>/approve")
@roles_required(REVIEWERS)
def claim_approve(claim_id: int):  # type: ignore[no-untyped-def]
    return _claim_action(
        claim_id, "approve", ApproveForm(),
        lambda seen: claims.approve_claim(db(), actor(), claim_id, seen, _policy()),
        _("Your approval of claim #%(id)s is recorded.", id=claim_id))


@bp.post("/claims/<int:claim_id>/reject")
@roles_required(REVIEWERS)
def claim_reject(claim_id: int):  # type: ignore[no-untyped-def]
    form = RejectForm()
    return _claim_action(
        claim_id, "reject", form,
        lambda seen: claims.reject_claim(db(), actor(), claim_id, seen, form.reason.data or ""),
        _("Claim #%(id)s rejected; the customer is told why.", id=claim_id))


@bp.post("/claims/<int:claim_id>/request-information")
@roles_required(REVIEWERS)
def claim_request_information(claim_id: int):  # type: ignore[no-untyped-def]
    form = InformationForm()
    return _claim_action(
        claim_id, "information", form,
        lambda seen: claims.request_information(db(), actor(), claim_id, seen, form.question.data or ""),
        _("Your question is sent to the customer."), {"question": "question"})


@bp.post("/claims/<int:claim_id>/adjust")
@roles_required(REVIEWERS)
def claim_adjust(claim_id: int):  # type: ignore[no-untyped-def]
    detail = claims.claim_for_staff(db(), actor(), claim_id, _policy())
    current = {line.asset: line.amount for line in detail.lines}
    assets = sorted({*current, *(p.asset_code for p in detail.incident.prices)})
    form = adjust_form(assets, current)

    def adjust(seen: int) -> None:
        amounts = {a: (getattr(form, amount_field(a)).data or "").strip() for a in assets}
        claims.adjust_claim(db(), actor(), claim_id, seen, amounts=amounts, reason=form.adjust_reason.data or "")

    fields = {"reason": "adjust_reason", **{f"corrected.{a}": amount_field(a) for a in assets}}
    return _claim_action(claim_id, "adjust", form, adjust,
                         _("Claim #%(id)s adjusted: the customer must accept the new version.", id=claim_id),
                         fields)


@bp.get("/evidence/<int:file_id>")
@roles_required(BACK_OFFICE_READERS)
def evidence_file(file_id: int):  # type: ignore[no-untyped-def]
    directory = current_app.extensions["payouts"].config.evidence_dir
    row, path = evidence.open_evidence(db(), actor(), directory, file_id)
    response = send_file(path, mimetype=row.content_type, as_attachment=True, download_name=row.original_name,
                         max_age=0, conditional=False, etag=False)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


# --- payout destinations --------------------------------------------------------------------


CHANGED_DESTINATION = _l("This payout account was changed by someone else; here it is as it is now.")


@bp.get("/destinations")
@roles_required(BACK_OFFICE_READERS)
def destinations_list():  # type: ignore[no-untyped-def]
    rows = destinations.pending_for_review(db(), actor())
    return render_template("staff/destinations.html", rows=rows, can_review=_is_reviewer())


@bp.get("/destinations/<int:destination_id>")
@roles_required(BACK_OFFICE_READERS)
def destination_detail(destination_id: int):  # type: ignore[no-untyped-def]
    return _render_destination(destination_id)


def _destination_refusal(row: destinations.DestinationRow, approvers: set[int]) -> str | None:
    d = row.destination
    if d.status != "pending":
        return _("This account is no longer waiting for approval.")
    if d.submitted_by_id is not None and d.submitted_by_id == current_user.id:
        return _("You entered this account, so other people must approve it.")
    if current_user.id in approvers:
        return _("You already approved this account; a different person must give the second approval.")
    if d.approvals_required == 2 and row.approvals == 1 and current_user.role != Role.APPROVER.value:
        return _("The second approval of a payout account must come from an approver.")
    return None


def _render_destination(destination_id: int, *, forms: dict[str, FlaskForm] | None = None,
                        problem: str | None = None, status: int = 200):  # type: ignore[no-untyped-def]
    session, who = db(), actor()
    view = destinations.destination_for_staff(session, who, destination_id)
    row = destinations.destination_row(session, who, destination_id)
    forms = dict(forms or {})
    forms.setdefault("approve", DestinationDecisionForm(formdata=None))
    forms.setdefault("reject", DestinationRejectForm(formdata=None))
    for form in forms.values():
        if problem is not None or not form.row_version.data:
            form.row_version.data = str(view.destination.row_version)
    approvers = {a.user_id for a in view.approvals}
    return render_template(
        "staff/destination_detail.html", row=row, d=view.destination, approvals=view.approvals, forms=forms,
        problem=problem, can_review=_is_reviewer(),
        refusal=_destination_refusal(row, approvers) if _is_reviewer() else None,
    ), status


def _destination_action(destination_id: int, name: str, form: RowVersionForm, action,  # type: ignore[no-untyped-def]
                        done: str):
    if not form.validate_on_submit():
        if form.row_version.errors or not form.row_version.data:
            abort(400)
        return _render_destination(destination_id, forms={name: form}, status=422)
    seen = form.seen()
    try:
        action(seen)
    except ValidationError as exc:
        attach_error(form, exc)
        return _render_destination(destination_id, forms={name: form}, status=422)
    except TransitionError as exc:
        return _render_destination(destination_id, forms={name: form}, problem=str(exc), status=409)
    except ConflictError as exc:
        now = destinations.destination_for_staff(db(), actor(), destination_id).destination.row_version
        message = str(CHANGED_DESTINATION) if now != seen else str(exc)
        return _render_destination(destination_id, forms={name: form}, problem=message, status=409)
    except PermissionDenied as exc:
        return _render_destination(destination_id, forms={name: form}, problem=str(exc), status=403)
    flash(done, "success")
    return redirect(url_for("staff.destination_detail", destination_id=destination_id))


@bp.post("/destinations/<int:destination_id>/approve")
@roles_required(REVIEWERS)
def destination_approve(destination_id: int):  # type: ignore[no-untyped-def]
    return _destination_action(
        destination_id, "approve", DestinationDecisionForm(),
        lambda seen: destinations.approve_destination(db(), actor(), destination_id, seen),
        _("Your approval of payout account #%(id)s is recorded.", id=destination_id))


@bp.post("/destinations/<int:destination_id>/reject")
@roles_required(REVIEWERS)
def destination_reject(destination_id: int):  # type: ignore[no-untyped-def]
    form = DestinationRejectForm()
    return _destination_action(
        destination_id, "reject", form,
        lambda seen: destinations.reject_destination(db(), actor(), destination_id, seen, form.reason.data or ""),
        _("Payout account #%(id)s rejected; the customer is told why.", id=destination_id))


@bp.route("/customers/<customer_ref>/destination", methods=["GET", "POST"])
@roles_required(REVIEWERS)
def destination_enter(customer_ref: str):  # type: ignore[no-untyped-def]
    """Staff enter an account for a customer (after a failed payment); two others approve it."""
    session, who = db(), actor()
    customer = destinations.customer_by_ref(session, who, customer_ref)
    form = DestinationForm()
    if form.validate_on_submit():
        try:
            destination = destinations.submit_destination(
                session, who, customer.id, bank_code=form.bank_code.data or "",
                branch_code=form.branch_code.data or "", account_type=form.account_type.data or "",
                account_number=form.account_number.data or "", holder_name=form.holder_name.data or "")
        except ValidationError as exc:
            field = {"holder_kana": "holder_name"}.get(exc.field, exc.field)
            attach_error(form, ValidationError(field, exc.message))
        else:
            flash(_("Account entered for %(ref)s. Two other people must approve it before any payment goes there.",
                    ref=customer.external_ref), "success")
            return redirect(url_for("staff.destination_detail", destination_id=destination.id))
    return render_template(
        "staff/destination_detail.html", entry_form=form, customer=customer,
        existing=destinations.destination_rows_of(session, who, customer.id),
    ), 422 if form.is_submitted() else 200
