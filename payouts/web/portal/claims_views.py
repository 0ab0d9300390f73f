"""A customer's claim: its lines and timeline, accept, dispute (with evidence), withdraw, the
receipt of what was accepted, and downloads of the customer's own evidence files."""

from __future__ import annotations

import json

from flask import g, abort, current_app, flash, make_response, redirect, render_template, request, send_file, url_for
from werkzeug.utils import secure_filename

from payouts.domain.claims import ALLOWED_FROM, ClaimAction, ClaimStatus
from payouts.domain.errors import ConflictError, ValidationError
from payouts.domain.roles import Role
from payouts.services import claims, evidence, statements
from payouts.services.evidence import MAX_FILE_BYTES, MAX_FILES, StoredEvidence
from payouts.web.access import roles_required
from payouts.web.context import actor, db
from payouts.web.portal.forms import AcceptForm, DisputeForm, WithdrawForm, dispute_form
from payouts.web.portal.steps import RECEIPT_STATUSES, next_step, timeline
from payouts.web.portal.views import bp, policy
from payouts.web.translate import gettext as _, locale

CUSTOMERS = {Role.CUSTOMER}


def _evidence_dir() -> str:
    return current_app.extensions["payouts"].config.evidence_dir


def _may(status: str, action: ClaimAction) -> bool:
    return ClaimStatus(status) in ALLOWED_FROM[action]


DISPUTE_PAGE = "portal/dispute.html"
WITHDRAW_PAGE = "portal/withdraw.html"


def _render_claim(claim_id: int, *, dispute: DisputeForm | None = None, withdraw: WithdrawForm | None = None,
                  conflict: str | None = None, status: int = 200, template: str = "portal/claim.html"):  # type: ignore[no-untyped-def]
    session, who = db(), actor()
    detail, account, g.portal_unread_count = claims.my_claim_page(session, who, claim_id, policy())
    claim = detail.claim
    assets = [line.asset for line in detail.lines]
    # A form sent back with errors keeps the row version it was sent with, so a claim that
    # changed meanwhile is still caught; fresh forms (and forms after a conflict) carry the
    # version shown now.
    if template != DISPUTE_PAGE:
        dispute = None  # only the dispute page has the form (the claim page links to it)
    elif dispute is None or conflict:
        fresh = dispute_form(assets)
        if dispute is not None:  # keep what the customer typed (files must be chosen again)
            fresh.reason.data = dispute.reason.data
            typed = {asset: field.data for asset, field in dispute.corrected_fields}
            for asset, field in fresh.corrected_fields:
                field.data = typed.get(asset)
        fresh.row_version.data = str(claim.row_version)
        dispute = fresh
    if template != WITHDRAW_PAGE:
        withdraw = None
    elif withdraw is None or conflict:
        withdraw = WithdrawForm(formdata=None)
        withdraw.row_version.data = str(claim.row_version)
    # Payments exist only once an approved claim's allocation is committed.
    payments = (statements.claim_payments(session, who, claim)
                if ClaimStatus(claim.status) in (ClaimStatus.APPROVED, ClaimStatus.PAID) else [])
    return render_template(
        template,
        detail=detail,
        claim=claim,
        payments=payments,
        step=next_step(claim, detail.disputes, has_destination=account == "approved"),
        events=timeline(claim, disputes=detail.disputes, versions=detail.versions, approvals=detail.approvals,
                        approvals_required=detail.approvals_required, notices=detail.notices,
                        locale=locale()),
        current_version=next((v for v in detail.versions if v.version == claim.version), None),
        disputes=_disputes(detail.disputes,
                           evidence.evidence_for_claim(session, claim.id) if detail.disputes else []),
        dispute_form=dispute,
        withdraw_form=withdraw,
        can_accept=_may(claim.status, ClaimAction.ACCEPT),
        can_dispute=_may(claim.status, ClaimAction.DISPUTE),
        can_withdraw=_may(claim.status, ClaimAction.WITHDRAW),
        has_receipt=ClaimStatus(claim.status) in RECEIPT_STATUSES,
        conflict=conflict,
        max_files=MAX_FILES,
        max_mb=MAX_FILE_BYTES // (1024 * 1024),
    ), status


def _disputes(disputes, files):  # type: ignore[no-untyped-def]
    """Each dispute with the corrected amounts it named and the evidence sent with it."""
    shown = []
    for dispute in disputes:
        try:
            corrected = json.loads(dispute.corrected or "{}")
        except ValueError:
            corrected = {}
        shown.append((dispute, corrected if isinstance(corrected, dict) else {},
                      [f for f in files if f.dispute_id == dispute.id]))
    return shown


def _conflict_message(exc: ConflictError) -> str:
    return _("Nothing was changed: this claim changed since you opened the page (%(detail)s). This is the claim"
             " as it is now; check it and try again.", detail=str(exc))


@bp.get("/claims/<int:claim_id>")
@roles_required(CUSTOMERS)
def claim(claim_id: int):  # type: ignore[no-untyped-def]
    return _render_claim(claim_id)


def _row_version(form: AcceptForm | DisputeForm | WithdrawForm) -> int:
    return int(form.row_version.data)


@bp.post("/claims/<int:claim_id>/accept")
@roles_required(CUSTOMERS)
def claim_accept(claim_id: int):  # type: ignore[no-untyped-def]
    claims.own_claim(db(), actor(), claim_id)  # someone else's claim: 404 before anything else
    form = AcceptForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        accepted = claims.accept_claim(db(), actor(), claim_id, _row_version(form))
    except ConflictError as exc:
        return _render_claim(claim_id, conflict=_conflict_message(exc), status=409)
    flash(_("You accepted version %(version)s of the claim. Staff review it next; your receipt is ready.",
            version=accepted.version), "success")
    return redirect(url_for("portal.claim", claim_id=claim_id))


@bp.route("/claims/<int:claim_id>/dispute", methods=["GET", "POST"])
@roles_required(CUSTOMERS)
def claim_dispute(claim_id: int):  # type: ignore[no-untyped-def]
    if request.method == "GET":
        return _render_claim(claim_id, template=DISPUTE_PAGE)
    session, who = db(), actor()
    detail = claims.my_claim(session, who, claim_id, policy())  # someone else's claim: 404
    form = dispute_form([line.asset for line in detail.lines])
    if not form.validate_on_submit():
        if form.row_version.errors:
            abort(400)
        return _render_claim(claim_id, dispute=form, template=DISPUTE_PAGE, status=422)
    uploads = [f for f in (form.evidence.data or []) if f and f.filename]
    if len(uploads) > MAX_FILES:
        form.evidence.errors = [_("Send at most %(count)s files.", count=MAX_FILES)]
        return _render_claim(claim_id, dispute=form, template=DISPUTE_PAGE, status=422)
    stored: list[StoredEvidence] = []
    try:
        for index, upload in enumerate(uploads):
            stored.append(evidence.store(_evidence_dir(), upload.filename or "", upload.stream, index=index))
        corrected = {asset: field.data or "" for asset, field in form.corrected_fields}
        claims.dispute_claim(session, who, claim_id, _row_version(form), reason=form.reason.data or "",
                             corrected=corrected, evidence=stored)
    except ValidationError as exc:
        evidence.discard(_evidence_dir(), stored)
        _attach(form, exc)
        return _render_claim(claim_id, dispute=form, template=DISPUTE_PAGE, status=422)
    except ConflictError as exc:
        evidence.discard(_evidence_dir(), stored)
        return _render_claim(claim_id, dispute=form, template=DISPUTE_PAGE, conflict=_conflict_message(exc),
                                 status=409)
    except BaseException:
        evidence.discard(_evidence_dir(), stored)
        raise
    flash(_("Your dispute was sent with %(count)s file(s). Staff review it next.", count=len(stored)), "success")
    return redirect(url_for("portal.claim", claim_id=claim_id))


def _attach(form: DisputeForm, exc: ValidationError) -> None:
    """The service's complaint next to the field it names (reason, corrected.<asset>, evidence.<n>)."""
    target = None
    if exc.field == "reason":
        target = form.reason
    elif exc.field.startswith("corrected."):
        asset = exc.field.partition(".")[2]
        target = next((f for a, f in form.corrected_fields if a == asset), None)
    elif exc.field.startswith("evidence"):
        target = form.evidence
    if target is None:
        flash(exc.message if exc.field.startswith(("corrected", "evidence")) else str(exc), "error")
        return
    target.errors = [*target.errors, exc.message]


@bp.route("/claims/<int:claim_id>/withdraw", methods=["GET", "POST"])
@roles_required(CUSTOMERS)
def claim_withdraw(claim_id: int):  # type: ignore[no-untyped-def]
    claims.own_claim(db(), actor(), claim_id)
    if request.method == "GET":
        return _render_claim(claim_id, template=WITHDRAW_PAGE)
    form = WithdrawForm()
    if not form.validate_on_submit():
        if form.row_version.errors:
            abort(400)
        return _render_claim(claim_id, withdraw=form, template=WITHDRAW_PAGE, status=422)
    try:
        claims.withdraw_claim(db(), actor(), claim_id, _row_version(form))
    except ConflictError as exc:
        return _render_claim(claim_id, conflict=_conflict_message(exc), status=409)
    flash(_("You withdrew the claim. It is closed and will not be paid."), "success")
    return redirect(url_for("portal.claim", claim_id=claim_id))


@bp.get("/claims/<int:claim_id>/receipt")
@roles_required(CUSTOMERS)
def receipt(claim_id: int):  # type: ignore[no-untyped-def]
    detail = claims.my_claim(db(), actor(), claim_id, policy())
    if ClaimStatus(detail.claim.status) not in RECEIPT_STATUSES:
        return render_template("errors/error.html", code=404, message=_(
            "There is no receipt for this claim: a receipt exists once you have accepted the claim.")), 404
    download = request.args.get("download") == "1"
    template = "portal/receipt_document.html" if download else "portal/receipt.html"
    page = render_template(template, detail=detail, claim=detail.claim)
    response = make_response(page)
    if download:
        name = secure_filename(f"receipt-{detail.incident.ref}-{detail.claim.id}.html") or "receipt.html"
        response.headers.set("Content-Disposition", "attachment", filename=name)
    return response


@bp.get("/payments/<int:payment_id>/statement")
@roles_required(CUSTOMERS)
def payment_statement(payment_id: int):  # type: ignore[no-untyped-def]
    # Another customer's payment, or one not paid yet, is reported as missing (404).
    found = statements.statement(db(), actor(), payment_id)
    download = request.args.get("download") == "1"
    page = render_template("portal/statement.html", s=found, download=download)
    response = make_response(page)
    response.headers["Cache-Control"] = "private, no-store"
    if download:
        name = secure_filename(f"payout-statement-{found.incident.ref}-{found.payment.id}.html") or "statement.html"
        response.headers.set("Content-Disposition", "attachment", filename=name)
    return response


@bp.get("/evidence/<int:file_id>")
@roles_required(CUSTOMERS)
def evidence_file(file_id: int):  # type: ignore[no-untyped-def]
    # Another customer's file is reported as missing (NotFoundError -> 404), never as forbidden.
    row, path = evidence.open_evidence(db(), actor(), _evidence_dir(), file_id)
    response = send_file(path, mimetype=row.content_type, as_attachment=True, download_name=row.original_name,
                         conditional=False, etag=False, max_age=0)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response
