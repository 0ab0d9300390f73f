"""Back-office pages for paying customers: disbursement progress, reconciliation, Zengin files.

Staff writers retry failed payments, sweep, record insurers' payments, set paying accounts,
create transfer files and import the bank's results; regulators see the same pages read-only.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass

from flask import Response, abort, current_app, flash, redirect, render_template, url_for
from flask_babel import lazy_gettext as _l
from flask_babel import pgettext
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from sqlalchemy import func, select
from werkzeug.utils import secure_filename
from wtforms import DateField, IntegerField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange

from payouts.db.models import (
    AllocationRun,
    Disbursement,
    InsuranceLayer,
    InsuranceReceivable,
    PayingAccount,
)
from payouts.domain.bank_accounts import ACCOUNT_TYPES
from payouts.domain.disbursements import PERMANENT_REASONS, DisbursementStatus
from payouts.domain.errors import ConflictError, ValidationError
from payouts.domain.money import MAX_YEN, format_yen
from payouts.domain.roles import BACK_OFFICE_READERS, STAFF_WRITERS
from payouts.services import disbursements, incidents, zengin_files
from payouts.web.access import roles_required
from payouts.web.context import actor, db
from payouts.web.staff.views import JST, attach_error, bp
from payouts.web.translate import gettext as _, locale

#: The RQ queue disbursement jobs go to (payouts.jobs.runtime.make_dispatch's default).
QUEUE_NAME = "payouts-default"
#: A bank's result file is a few hundred bytes a payment; anything near the request limit is not one.
MAX_RESULT_BYTES = 2 * 1024 * 1024

S = DisbursementStatus


def status_label(status: str) -> str:
    """A payment's status in words ("Paid" alone means a share paid elsewhere: hence the context)."""
    labels = {
        S.HELD.value: pgettext("payment status", "Held (no approved payout account)"),
        S.PENDING.value: pgettext("payment status", "Pending"),
        S.SUBMITTING.value: pgettext("payment status", "Being sent to the bank"),
        S.SUBMITTED.value: pgettext("payment status", "Sent, awaiting the bank's result"),
        S.RETRYING.value: pgettext("payment status", "Retrying"),
        S.PAID.value: pgettext("payment status", "Paid"),
        S.NEEDS_ATTENTION.value: pgettext("payment status", "Needs attention"),
        S.CANCELLED.value: pgettext("payment status", "Cancelled"),
    }
    return labels.get(status, status)


def batch_status_label(status: str) -> str:
    labels = {"queued": pgettext("batch status", "Queued"), "running": pgettext("batch status", "Running"),
              "done": pgettext("batch status", "Done")}
    return labels.get(status, status)


STATUS_ORDER = [s.value for s in S]
REASON_LABELS = {
    "no_account": _l("No such account at the receiving bank"),
    "closed_account": _l("The receiving account is closed"),
    "name_mismatch": _l("The holder's name does not match the account"),
    "invalid_account": _l("The account details are not valid"),
    "key_reused": _l("The idempotency key was already used with different details"),
    "other": _l("The bank refused the payment for another reason"),
}
#: failure_reason holds the English sentence of PERMANENT_REASONS (or a code): back to the code.
_REASON_CODES = {**{text: code for code, text in PERMANENT_REASONS.items()}, **{c: c for c in PERMANENT_REASONS}}
PURPOSE_LABELS = {"reserve": _l("Reserve payments"), "insurance": _l("Insurers' and recovered money")}
ACCOUNT_TYPE_LABELS = {"ordinary": _l("Ordinary (普通)"), "current": _l("Current (当座)"),
                       "savings": _l("Savings (貯蓄)")}


@bp.app_context_processor
def _disbursement_helpers() -> dict[str, object]:
    return {
        "status_label": status_label,
        "reason_label": reason_label,
        "purpose_label": lambda p: PURPOSE_LABELS.get(p, p),
        "account_type_label": lambda t: ACCOUNT_TYPE_LABELS.get(t, t),
        "batch_status_label": batch_status_label,
    }


def reason_label(reason: str) -> str:
    code = _REASON_CODES.get(reason)
    return str(REASON_LABELS[code]) if code else reason


# --- forms -----------------------------------------------------------------------------------


class ActionForm(FlaskForm):
    """A button that changes something: only the CSRF token."""


class InsurerPaymentForm(FlaskForm):
    layer_code = SelectField(_l("Layer"), choices=[])
    amount_jpy = IntegerField(_l("Amount received (yen)"), validators=[DataRequired(), NumberRange(min=1, max=MAX_YEN)])


class PayingAccountForm(FlaskForm):
    purpose = SelectField(_l("Used for"), choices=[SelectChoice(k, v) for k, v in PURPOSE_LABELS.items()])
    company_code = StringField(_l("Company code (依頼人コード, 10 digits)"), validators=[DataRequired(), Length(max=10)])
    company_name = StringField(_l("Company name (katakana)"), validators=[DataRequired(), Length(max=80)])
    bank_code = StringField(_l("Bank code (4 digits)"), validators=[DataRequired(), Length(max=4)])
    bank_name = StringField(_l("Bank name (katakana)"), validators=[DataRequired(), Length(max=40)])
    branch_code = StringField(_l("Branch code (3 digits)"), validators=[DataRequired(), Length(max=3)])
    branch_name = StringField(_l("Branch name (katakana)"), validators=[DataRequired(), Length(max=40)])
    account_type = SelectField(_l("Account type"), choices=[SelectChoice(k, ACCOUNT_TYPE_LABELS[k]) for k in ACCOUNT_TYPES])
    account_number = StringField(_l("Account number (up to 7 digits)"), validators=[DataRequired(), Length(max=7)])


class TransferFilesForm(FlaskForm):
    transfer_date = DateField(_l("Transfer date"), validators=[DataRequired()])


class ResultUploadForm(FlaskForm):
    file = FileField(_l("Bank's result file"), validators=[FileRequired()])


# --- disbursement progress -------------------------------------------------------------------


@dataclass(frozen=True)
class QueueDepth:
    #: "inline" (no Redis: jobs run in the request), "queue" (count is valid) or "unavailable".
    mode: str
    count: int = 0


def queue_depth() -> QueueDepth:
    url = current_app.extensions["payouts"].config.redis_url
    if not url:
        return QueueDepth("inline")
    try:
        connection = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        return QueueDepth("queue", int(Queue(QUEUE_NAME, connection=connection).count))
    except (RedisError, OSError):
        # The page is for watching payments: a Redis outage is shown, not turned into a 500.
        return QueueDepth("unavailable")


def _receivables(incident_id: int) -> list[tuple[str, int, int]]:
    """(layer code, owed, received) for every layer that owes the incident's runs something."""
    rows = db().execute(
        select(InsuranceLayer.code, func.sum(InsuranceReceivable.amount_jpy), func.sum(InsuranceReceivable.received_jpy))
        .join(InsuranceReceivable, InsuranceReceivable.layer_id == InsuranceLayer.id)
        .join(AllocationRun, AllocationRun.id == InsuranceReceivable.run_id)
        .where(AllocationRun.incident_id == incident_id)
        .group_by(InsuranceLayer.code).order_by(InsuranceLayer.code)).all()
    return [(code, int(owed or 0), int(received or 0)) for code, owed, received in rows]


def _yen(amount: int) -> str:
    return format_yen(int(amount), locale())


def _insurer_form(receivables: list[tuple[str, int, int]], form: InsurerPaymentForm | None = None) -> InsurerPaymentForm:
    form = form or InsurerPaymentForm()
    form.layer_code.choices = [
        SelectChoice(code, _("%(code)s: %(left)s still owed", code=code, left=_yen(owed - received)))
        for code, owed, received in receivables if received < owed]
    return form


def _render_disbursements(ref: str, insurer_form: InsurerPaymentForm | None = None, status: int = 200):  # type: ignore[no-untyped-def]
    session, who = db(), actor()
    incident = incidents.get_incident(session, who, ref)
    progress = disbursements.progress(session, who, ref)
    receivables = _receivables(incident.id)
    by_status = sorted(progress.by_status, key=lambda t: STATUS_ORDER.index(t.status)
                       if t.status in STATUS_ORDER else len(STATUS_ORDER))
    return render_template(
        "staff/disbursements.html", incident=incident, progress=progress, by_status=by_status,
        total_count=sum(t.count for t in by_status), total_jpy=sum(t.amount_jpy for t in by_status),
        queue=queue_depth(), rail=current_app.extensions["payouts"].config.rail, receivables=receivables,
        insurer_form=_insurer_form(receivables, insurer_form), action_form=ActionForm(),
    ), status


@bp.get("/incidents/<ref>/disbursements")
@roles_required(BACK_OFFICE_READERS)
def disbursements_page(ref: str):  # type: ignore[no-untyped-def]
    return _render_disbursements(ref)


def _state():  # type: ignore[no-untyped-def]
    return current_app.extensions["payouts"]


@bp.post("/incidents/<ref>/disbursements/<int:disbursement_id>/retry")
@roles_required(STAFF_WRITERS)
def disbursement_retry(ref: str, disbursement_id: int):  # type: ignore[no-untyped-def]
    if not ActionForm().validate_on_submit():
        abort(400)
    session, who = db(), actor()
    incident = incidents.get_incident(session, who, ref)
    if session.scalar(select(Disbursement.incident_id).where(Disbursement.id == disbursement_id)) != incident.id:
        abort(404)
    state = _state()
    try:
        retried = disbursements.retry_payment(session, who, disbursement_id, dispatch=state.dispatch,
                                              batch_size=state.config.disbursement_batch_size)
    except ConflictError as exc:
        flash(_("Payment #%(id)s was not sent again: %(reason)s", id=disbursement_id, reason=str(exc)), "error")
    else:
        flash(_("Payment #%(id)s sent again to the customer's approved account (now: %(status)s).",
                id=disbursement_id, status=status_label(retried.status)), "success")
    return redirect(url_for("staff.disbursements_page", ref=ref) + "#attention")


@bp.post("/incidents/<ref>/disbursements/sweep")
@roles_required(STAFF_WRITERS)
def disbursements_sweep(ref: str):  # type: ignore[no-untyped-def]
    if not ActionForm().validate_on_submit():
        abort(400)
    incidents.get_incident(db(), actor(), ref)
    state = _state()
    report = disbursements.sweep(db(), actor(), state.dispatch, batch_size=state.config.disbursement_batch_size)
    flash(_("Sweep done: %(planned)s new batches planned, %(dispatched)s batches enqueued.",
            planned=len(report.planned), dispatched=report.dispatched), "success")
    return redirect(url_for("staff.disbursements_page", ref=ref))


@bp.post("/incidents/<ref>/insurer-payments")
@roles_required(STAFF_WRITERS)
def insurer_payment_record(ref: str):  # type: ignore[no-untyped-def]
    incident = incidents.get_incident(db(), actor(), ref)
    form = _insurer_form(_receivables(incident.id))
    if not form.validate_on_submit():
        return _render_disbursements(ref, insurer_form=form, status=422)
    state = _state()
    try:
        receivable = disbursements.record_insurer_payment(
            db(), actor(), incident_ref=ref, layer_code=form.layer_code.data, amount_jpy=form.amount_jpy.data,
            dispatch=state.dispatch, batch_size=state.config.disbursement_batch_size)
    except ValidationError as exc:
        attach_error(form, exc)
        return _render_disbursements(ref, insurer_form=form, status=422)
    except ConflictError as exc:
        flash(str(exc), "error")
        return redirect(url_for("staff.disbursements_page", ref=ref) + "#insurers")
    left = receivable.amount_jpy - receivable.received_jpy
    if left:
        flash(_("%(amount)s received from layer %(code)s; %(left)s still owed. Its part of the payouts is"
                " instructed once the whole amount has arrived.", amount=_yen(form.amount_jpy.data),
                code=form.layer_code.data, left=_yen(left)), "success")
    else:
        flash(_("%(amount)s received from layer %(code)s: paid in full, its part of every payout is"
                " now instructed.", amount=_yen(form.amount_jpy.data), code=form.layer_code.data), "success")
    return redirect(url_for("staff.disbursements_page", ref=ref) + "#insurers")


# --- reconciliation --------------------------------------------------------------------------


@bp.get("/incidents/<ref>/reconciliation")
@roles_required(BACK_OFFICE_READERS)
def reconciliation_page(ref: str):  # type: ignore[no-untyped-def]
    result = disbursements.reconcile(db(), actor(), ref)
    by_status = sorted(result.by_status, key=lambda t: STATUS_ORDER.index(t.status)
                       if t.status in STATUS_ORDER else len(STATUS_ORDER))
    return render_template("staff/reconciliation.html", incident=result.incident, r=result, by_status=by_status)


def _cell(value: object) -> object:
    """Text a spreadsheet would run as a formula (a layer code is typed by staff) is quoted."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


@bp.get("/incidents/<ref>/reconciliation.csv")
@roles_required(BACK_OFFICE_READERS)
def reconciliation_csv(ref: str):  # type: ignore[no-untyped-def]
    r = disbursements.reconcile(db(), actor(), ref)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["incident", _cell(r.incident.ref)])
    writer.writerow(["section", "item", "count", "allocated_jpy", "awaiting_funds_jpy", "instructed_jpy",
                     "amount_jpy", "difference_jpy"])
    for s in r.sources:
        writer.writerow(["source", _cell(s.source_id), "", s.allocated_jpy, s.awaiting_funds_jpy, s.instructed_jpy,
                         "", s.difference_jpy])
    for t in r.by_status:
        writer.writerow(["status", t.status, t.count, "", "", "", t.amount_jpy, ""])
    for key in ("instructed_jpy", "paid_jpy", "pending_jpy", "failed_jpy", "cancelled_jpy"):
        writer.writerow(["total", key, "", "", "", "", getattr(r, key), ""])
    writer.writerow(["total", "status_difference_jpy", "", "", "", "", "", r.status_difference_jpy])
    for key in ("reserve_paid_jpy", "reserve_ledger_paid_jpy"):
        writer.writerow(["reserve_ledger", key, "", "", "", "", getattr(r, key), ""])
    writer.writerow(["reserve_ledger", "ledger_difference_jpy", "", "", "", "", "", r.ledger_difference_jpy])
    writer.writerow(["result", "balanced" if r.balanced else "difference_found", "", "", "", "", "", ""])
    return Response(out.getvalue(), mimetype="text/csv", headers={
        "Content-Disposition": f"attachment; filename=reconciliation-{secure_filename(r.incident.ref) or r.incident.id}.csv",
        "Cache-Control": "no-store"})


# --- Zengin transfer files -------------------------------------------------------------------


def _render_zengin(account_form: PayingAccountForm | None = None, files_form: TransferFilesForm | None = None,
                   upload_forms: dict[int, ResultUploadForm] | None = None, status: int = 200):  # type: ignore[no-untyped-def]
    session, who = db(), actor()
    files = zengin_files.list_files(session, who)
    accounts = {a.id: a for a in session.scalars(select(PayingAccount).order_by(PayingAccount.purpose))}
    waiting_count, waiting_jpy = session.execute(
        select(func.count(), func.coalesce(func.sum(Disbursement.amount_jpy), 0)).where(
            Disbursement.status == S.SUBMITTED.value, Disbursement.rail == "zengin",
            Disbursement.zengin_file_id.is_(None))).one()
    files_form = files_form or TransferFilesForm()
    if files_form.transfer_date.data is None and not files_form.is_submitted():
        files_form.transfer_date.data = dt.datetime.now(JST).date()
    forms = dict(upload_forms or {})
    for zfile in files:
        if zfile.result_imported_at is None and zfile.id not in forms:
            forms[zfile.id] = ResultUploadForm(prefix=f"result-{zfile.id}", formdata=None)
    return render_template(
        "staff/zengin_files.html", files=files, accounts=accounts, waiting_count=int(waiting_count),
        waiting_jpy=int(waiting_jpy), account_form=account_form or PayingAccountForm(), files_form=files_form,
        upload_forms=forms, rail=current_app.extensions["payouts"].config.rail,
    ), status


@bp.get("/zengin")
@roles_required(BACK_OFFICE_READERS)
def zengin_page():  # type: ignore[no-untyped-def]
    return _render_zengin()


@bp.post("/zengin/paying-accounts")
@roles_required(STAFF_WRITERS)
def paying_account_set():  # type: ignore[no-untyped-def]
    form = PayingAccountForm()
    if form.validate_on_submit():
        try:
            account = zengin_files.set_paying_account(
                db(), actor(), purpose=form.purpose.data, company_code=form.company_code.data.strip(),
                company_name=form.company_name.data, bank_code=form.bank_code.data.strip(),
                bank_name=form.bank_name.data, branch_code=form.branch_code.data.strip(),
                branch_name=form.branch_name.data, account_type=form.account_type.data,
                account_number=form.account_number.data.strip())
        except ValidationError as exc:
            attach_error(form, exc)
        else:
            flash(_("Paying account for %(purpose)s saved.", purpose=PURPOSE_LABELS[account.purpose]), "success")
            return redirect(url_for("staff.zengin_page") + "#accounts")
    return _render_zengin(account_form=form, status=422)


@bp.post("/zengin/files")
@roles_required(STAFF_WRITERS)
def zengin_files_create():  # type: ignore[no-untyped-def]
    form = TransferFilesForm()
    if form.validate_on_submit():
        try:
            created = zengin_files.create_transfer_files(db(), actor(), form.transfer_date.data)
        except ValidationError as exc:
            if exc.field == "payments":  # nothing to put in a file, or too much for one
                form.transfer_date.errors = [*form.transfer_date.errors, exc.message]
            else:
                attach_error(form, exc)
        except ConflictError as exc:
            flash(str(exc), "error")
            return redirect(url_for("staff.zengin_page") + "#files")
        else:
            described = [_("#%(id)s (%(n)s payments, %(total)s)", id=f.id, n=f.record_count, total=_yen(f.total_jpy))
                         for f in created]
            flash(_("Transfer files created for %(date)s: %(files)s.", date=form.transfer_date.data.isoformat(),
                    files=", ".join(described)), "success")
            return redirect(url_for("staff.zengin_page") + "#files")
    return _render_zengin(files_form=form, status=422)


@bp.get("/zengin/<int:file_id>/download")
# The file carries customers' full account numbers, which nothing shown to regulators does
# (the audit trail masks them): only the people who hand it to the bank download it.
@roles_required(STAFF_WRITERS)
def zengin_download(file_id: int):  # type: ignore[no-untyped-def]
    zfile = zengin_files.get_file(db(), actor(), file_id)
    name = f"zengin-{zfile.transfer_date.isoformat()}-{zfile.id}.txt"
    return Response(bytes(zfile.content), mimetype="application/octet-stream", headers={
        "Content-Disposition": f'attachment; filename="{name}"',
        # Customers' account numbers: never kept by a browser or proxy cache.
        "Cache-Control": "no-store",
        "X-Content-SHA256": zfile.sha256,
    })


@bp.post("/zengin/<int:file_id>/result")
@roles_required(STAFF_WRITERS)
def zengin_result_upload(file_id: int):  # type: ignore[no-untyped-def]
    zfile = zengin_files.get_file(db(), actor(), file_id)
    form = ResultUploadForm(prefix=f"result-{zfile.id}")
    if form.validate_on_submit():
        data = form.file.data.stream.read(MAX_RESULT_BYTES + 1)
        try:
            if len(data) > MAX_RESULT_BYTES:
                limit = "{:,}".format(MAX_RESULT_BYTES)
                raise ValidationError("file", _("is larger than any result file (%(n)s bytes at most)", n=limit))
            counts = zengin_files.import_result(db(), actor(), zfile.id, data)
        except ValidationError as exc:
            attach_error(form, exc)
            flash(_("The result file for transfer file #%(id)s was refused; nothing was changed.", id=file_id), "error")
        except ConflictError as exc:
            flash(str(exc), "error")
            return redirect(url_for("staff.zengin_page") + "#files")
        else:
            flash(_("Result of transfer file #%(id)s imported: %(paid)s paid, %(failed)s failed.",
                    id=file_id, paid=counts["paid"], failed=counts["failed"]), "success")
            return redirect(url_for("staff.zengin_page") + "#files")
    return _render_zengin(upload_forms={zfile.id: form}, status=422)
