"""Back-office pages. Staff, approvers and admins write; regulators see the same pages read-only."""

from __future__ import annotations

import json
from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from wtforms.fields.choices import SelectChoice
from flask_login import current_user
from werkzeug.utils import secure_filename

from payouts.domain.errors import ValidationError
from payouts.domain.money import canonical_decimal, format_amount
from payouts.domain.roles import BACK_OFFICE_READERS, STAFF_WRITERS, Role
from payouts.services import import_jobs, incidents, loss_import
from payouts.web.access import roles_required
from payouts.web.context import actor, db
from payouts.web.staff.forms import ENTRY_KIND_LABELS, INCIDENT_TYPE_LABELS, IncidentForm, PriceForm, UploadForm
from payouts.web.translate import gettext as _

bp = Blueprint("staff", __name__)
JST = ZoneInfo("Asia/Tokyo")


@bp.app_context_processor
def _helpers() -> dict[str, object]:
    can_write = current_user.is_authenticated and Role(current_user.role) in STAFF_WRITERS
    return {
        "can_write": can_write,
        "incident_type_label": lambda v: INCIDENT_TYPE_LABELS.get(v, v),
        "entry_kind_label": lambda v: ENTRY_KIND_LABELS.get(v, v),
        "jst": lambda t: t.astimezone(JST).strftime("%Y-%m-%d %H:%M JST") if t else "",
        "format_amount": format_amount,
        "canonical_decimal": canonical_decimal,
    }


@bp.get("/incidents", endpoint="incidents")
@roles_required(BACK_OFFICE_READERS)
def incidents_list():  # type: ignore[no-untyped-def]
    return render_template(
        "staff/incidents.html", summaries=incidents.list_incidents(db(), actor())
    )


@bp.route("/incidents/new", methods=["GET", "POST"])
@roles_required(STAFF_WRITERS)
def incident_new():  # type: ignore[no-untyped-def]
    form = IncidentForm()
    return submit(
        form,
        lambda: incidents.record_incident(
            db(), actor(), ref=form.ref.data.strip(), title=form.title.data,
            incident_type=form.incident_type.data, occurred_at=form.occurred_at.data.replace(tzinfo=JST),
            discovered_at=form.discovered_at.data.replace(tzinfo=JST), description=form.description.data or ""),
        lambda incident: _("Incident %(ref)s recorded.", ref=incident.ref),
        lambda incident: url_for("staff.incident_detail", ref=incident.ref),
        lambda f: (render_template("staff/incident_new.html", form=f), 422 if f.is_submitted() else 200))



@bp.get("/incidents/<ref>")
@roles_required(BACK_OFFICE_READERS)
def incident_detail(ref: str):  # type: ignore[no-untyped-def]
    return _render_detail(ref)


def _render_detail(
    ref: str, price_form: PriceForm | None = None, upload_form: UploadForm | None = None, status: int = 200
):  # type: ignore[no-untyped-def]
    session, who = db(), actor()
    incident = incidents.get_incident(session, who, ref)
    assets = incidents.list_assets(session)
    price_form = price_form or PriceForm()
    price_form.asset.choices = [SelectChoice(a.code, f"{a.code} — {a.name}") for a in assets]
    return (
        render_template(
            "staff/incident_detail.html",
            summary=incidents.summarize_incident(session, who, incident),
            incident=incident,
            decimals={a.code: a.decimals for a in assets},
            totals=incidents.asset_totals(session, who, incident),
            imports=incidents.list_imports(session, who, incident),
            price_form=price_form,
            upload_form=upload_form or UploadForm(),
        ),
        status,
    )


@bp.post("/incidents/<ref>/prices")
@roles_required(STAFF_WRITERS)
def price_set(ref: str):  # type: ignore[no-untyped-def]
    form = PriceForm()
    form.asset.choices = [SelectChoice(a.code, a.code) for a in incidents.list_assets(db())]
    return submit(
        form,
        lambda: incidents.set_reference_price(db(), actor(), incident_ref=ref, asset_code=form.asset.data,
                                              price=form.price.data.strip(), source=form.source.data),
        _("Reference price of %(asset)s saved.", asset=form.asset.data),
        url_for("staff.incident_detail", ref=ref) + "#prices",
        lambda f: _render_detail(ref, price_form=f, status=422))


@bp.post("/incidents/<ref>/imports")
@roles_required(STAFF_WRITERS)
def import_upload(ref: str):  # type: ignore[no-untyped-def]
    form = UploadForm()
    if not form.validate_on_submit():
        return _render_detail(ref, upload_form=form, status=422)
    incident = incidents.get_incident(db(), actor(), ref)
    upload = form.file.data
    name = secure_filename(upload.filename or "") or "upload.csv"
    state = current_app.extensions["payouts"]
    upload.stream.seek(0, 2)
    size = upload.stream.tell()
    upload.stream.seek(0)
    if size > state.config.import_job_bytes:
        # A large file goes to a worker; the page to follow it refreshes itself.
        job = import_jobs.queue_import(db(), actor(), incident.ref, upload.stream, name, state.config.upload_dir)
        if state.dispatch is not None:
            state.dispatch(import_jobs.RUN_IMPORT_JOB, job.id)
        return redirect(url_for("staff.import_job", ref=ref, job_id=job.id))
    # The upload is already spooled in the private upload directory (payouts.web.uploads);
    # the import reads it there, and it is gone when the request ends.
    report = loss_import.import_losses(db(), actor(), incident.ref, upload.stream, name)
    if report.status == "imported":
        flash(_("%(name)s imported: %(rows)s rows.", name=name, rows=report.rows), "success")
        return redirect(url_for("staff.import_detail", ref=ref, import_id=report.loss_import.id))
    if report.status == "already_imported":
        flash(_("This file was already imported; nothing was changed."), "info")
        return redirect(url_for("staff.import_detail", ref=ref, import_id=report.loss_import.id))
    return render_template("staff/import_rejected.html", incident=incident, report=report), 422


@bp.get("/incidents/<ref>/import-jobs/<int:job_id>")
@roles_required(BACK_OFFICE_READERS)
def import_job(ref: str, job_id: int):  # type: ignore[no-untyped-def]
    session, who = db(), actor()
    incident = incidents.get_incident(session, who, ref)
    job = import_jobs.get_job(session, who, ref, job_id)
    return render_template("staff/import_job.html", incident=incident, job=job,
                           problems=json.loads(job.problems or "[]"))


@bp.get("/incidents/<ref>/imports/<int:import_id>")
@roles_required(BACK_OFFICE_READERS)
def import_detail(ref: str, import_id: int):  # type: ignore[no-untyped-def]
    session, who = db(), actor()
    incident = incidents.get_incident(session, who, ref)
    record = incidents.get_import(session, who, incident, import_id)
    return render_template("staff/import_detail.html", incident=incident, record=record)


def submit(form, action, done, target, rerender):  # type: ignore[no-untyped-def]
    """The shape of every back-office form post: validate, run the service ``action``; on
    success flash ``done`` and go to ``target`` (either may be a function of what the action
    returned); otherwise show the form again with the service's complaint next to the field it
    names (``rerender(form)``)."""
    if form.validate_on_submit():
        try:
            result = action()
        except ValidationError as exc:
            attach_error(form, exc)
        else:
            flash(done(result) if callable(done) else done, "success")
            return redirect(target(result) if callable(target) else target)
    return rerender(form)


def attach_error(form, exc: ValidationError) -> None:  # type: ignore[no-untyped-def]
    field = getattr(form, exc.field, None)
    if field is not None and hasattr(field, "errors"):
        field.errors = [*field.errors, exc.message]
    else:
        flash(f"{exc.field}: {exc.message}", "error")


# The other back-office pages register their routes on this blueprint.
from payouts.web.staff import adequacy_views, allocation_views, audit_views, claims_views, disbursement_views, funding_views, report_views  # noqa: E402,F401,E501
