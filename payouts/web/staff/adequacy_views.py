"""Back-office pages for reserve adequacy: the requirement, its rule, its inputs, stress tests."""

from __future__ import annotations

import datetime as dt
import json

from flask import Response, flash, redirect, render_template, request, url_for
from wtforms.fields.choices import SelectChoice

from payouts.domain import adequacy as rules
from payouts.domain.errors import ValidationError
from payouts.domain.roles import BACK_OFFICE_READERS, STAFF_WRITERS
from payouts.services import adequacy
from payouts.web.access import roles_required
from payouts.web.context import actor, db
from payouts.web.staff.forms import (
    ExternalIncidentForm,
    InputsUploadForm,
    RuleForm,
    SnapshotForm,
    StressForm,
    VolumeForm,
)
from payouts.web.staff.audit_views import bounded_date
from payouts.web.staff.views import bp, submit
from payouts.web.translate import gettext as _


def _as_of() -> dt.date | None:
    return bounded_date(request.args.get("as_of"))


@bp.get("/adequacy")
@roles_required(BACK_OFFICE_READERS)
def adequacy_page():  # type: ignore[no-untyped-def]
    session, who = db(), actor()
    current = adequacy.adequacy(session, who, _as_of())
    points = adequacy.history(session, who, months=12)
    return render_template("staff/adequacy.html", current=current, points=points,
                           stress=adequacy.stress_tests(session, who)[:5])


@bp.get("/adequacy/report.csv")
@roles_required(BACK_OFFICE_READERS)
def adequacy_csv():  # type: ignore[no-untyped-def]
    current = adequacy.adequacy(db(), actor(), _as_of())
    if current is None:
        flash(_("No reserve rule is in force yet."), "error")
        return redirect(url_for("staff.adequacy_page"))
    return Response(adequacy.report_csv(current), mimetype="text/csv", headers={
        "Content-Disposition": f"attachment; filename=reserve-adequacy-{current.as_of.isoformat()}.csv"})


# --- rule ------------------------------------------------------------------------------------


def _rule_form() -> RuleForm:
    form = RuleForm()
    form.qualifying_policies.choices = [SelectChoice(n, n) for n in adequacy.policies_numbers(db())]
    return form


@bp.get("/adequacy/rules")
@roles_required(BACK_OFFICE_READERS)
def adequacy_rules():  # type: ignore[no-untyped-def]
    return _render_rules(_rule_form())


def _render_rules(form: RuleForm, status: int = 200):  # type: ignore[no-untyped-def]
    versions = [(v, json.loads(v.parameters)) for v in adequacy.rule_versions(db(), actor())]
    return render_template("staff/adequacy_rules.html", form=form, versions=versions), status


@bp.post("/adequacy/rules")
@roles_required(STAFF_WRITERS)
def adequacy_rule_create():  # type: ignore[no-untyped-def]
    form = _rule_form()
    return submit(
        form,
        lambda: adequacy.set_rule(db(), actor(), effective_from=form.effective_from.data, params=_rule_params(form),
                                  rationale=form.rationale.data, illustrative=form.illustrative.data),
        _("New version of the reserve rule recorded."), url_for("staff.adequacy_rules"),
        lambda f: _render_rules(f, 422))


def _rule_params(form: RuleForm) -> dict[str, object]:
    rates = []
    for number, line in enumerate((form.volume_rates.data or "").splitlines(), start=1):
        if not line.strip():
            continue
        market, sep, rate = line.partition("=")
        if not sep or not market.strip():
            raise ValidationError("volume_rates", f"line {number}: write market=rate, e.g. spot=0.0002")
        rates.append({"market": market.strip(), "rate": rate.strip()})
    params = {
        "volume_rates": rates,
        "cold_wallet_rate": form.cold_wallet_rate.data.strip(),
        "hot_wallet_rate": form.hot_wallet_rate.data.strip(),
        "incident_multiple": form.incident_multiple.data.strip(),
        "incident_lookback_years": form.incident_lookback_years.data,
        "floor_jpy": form.floor_jpy.data,
        "cap_jpy": form.cap_jpy.data,
        "insurance_credit_ratio": form.insurance_credit_ratio.data.strip(),
        "insurance_max_share": form.insurance_max_share.data.strip(),
        "qualifying_policies": form.qualifying_policies.data or None,
    }
    adequacy.parse_rule(params)
    return params


# --- inputs ----------------------------------------------------------------------------------


def _render_inputs(volume=None, snapshot=None, incident=None, upload=None, status=200):  # type: ignore[no-untyped-def]
    session, who = db(), actor()
    return render_template(
        "staff/adequacy_inputs.html", volumes=adequacy.volumes(session, who), snapshots=adequacy.snapshots(session, who),
        incidents=adequacy.external_incidents(session, who), volume_form=volume or VolumeForm(),
        snapshot_form=snapshot or SnapshotForm(), incident_form=incident or ExternalIncidentForm(),
        upload_form=upload or InputsUploadForm()), status


@bp.get("/adequacy/inputs")
@roles_required(BACK_OFFICE_READERS)
def adequacy_inputs():  # type: ignore[no-untyped-def]
    return _render_inputs()


@bp.post("/adequacy/inputs/volumes")
@roles_required(STAFF_WRITERS)
def adequacy_volume():  # type: ignore[no-untyped-def]
    form = VolumeForm()

    def save() -> None:
        try:
            month = dt.date.fromisoformat((form.month.data or "").strip() + "-01")
        except ValueError:
            raise ValidationError("month", "must be a month such as 2026-10") from None
        adequacy.record_volume(db(), actor(), month=month, market=form.market.data, volume_jpy=form.volume_jpy.data)

    return submit(form, save, _("Trading volume recorded."), url_for("staff.adequacy_inputs"),
                  lambda f: _render_inputs(volume=f, status=422))


@bp.post("/adequacy/inputs/snapshots")
@roles_required(STAFF_WRITERS)
def adequacy_snapshot():  # type: ignore[no-untyped-def]
    form = SnapshotForm()
    return submit(form, lambda: adequacy.record_snapshot(db(), actor(), as_of=form.as_of.data, wallet=form.wallet.data,
                                                         value_jpy=form.value_jpy.data),
                  _("Wallet holdings recorded."), url_for("staff.adequacy_inputs"),
                  lambda f: _render_inputs(snapshot=f, status=422))


@bp.post("/adequacy/inputs/incidents")
@roles_required(STAFF_WRITERS)
def adequacy_external_incident():  # type: ignore[no-untyped-def]
    form = ExternalIncidentForm()
    return submit(form, lambda: adequacy.record_external_incident(
        db(), actor(), occurred_on=form.occurred_on.data, loss_jpy=form.loss_jpy.data,
        description=form.description.data), _("Past incident recorded."), url_for("staff.adequacy_inputs"),
        lambda f: _render_inputs(incident=f, status=422))


@bp.post("/adequacy/inputs/upload")
@roles_required(STAFF_WRITERS)
def adequacy_upload():  # type: ignore[no-untyped-def]
    form = InputsUploadForm()
    return submit(form, lambda: adequacy.import_inputs(db(), actor(), form.kind.data, form.file.data.stream),
                  _("File imported."), url_for("staff.adequacy_inputs"), lambda f: _render_inputs(upload=f, status=422))


# --- stress tests ----------------------------------------------------------------------------


def _stress_form() -> StressForm:
    form = StressForm()
    form.preset.choices = [SelectChoice("", _("Custom: the wallet and share below"))] + [
        SelectChoice(p.key, _(p.label)) for p in rules.STRESS_PRESETS]
    return form


@bp.get("/adequacy/stress")
@roles_required(BACK_OFFICE_READERS)
def adequacy_stress():  # type: ignore[no-untyped-def]
    return _render_stress(_stress_form())


def _render_stress(form: StressForm, status: int = 200):  # type: ignore[no-untyped-def]
    return render_template("staff/adequacy_stress.html", form=form, tests=adequacy.stress_tests(db(), actor()),
                           presets=rules.STRESS_PRESETS), status


@bp.post("/adequacy/stress")
@roles_required(STAFF_WRITERS)
def adequacy_stress_run():  # type: ignore[no-untyped-def]
    form = _stress_form()
    return submit(
        form,
        lambda: adequacy.run_stress_test(
            db(), actor(), preset=form.preset.data or None, wallet=form.wallet.data,
            share_lost=form.share_lost.data, customers=form.customers.data,
            tranches_jpy=form.tranches_jpy.data or "", label=form.label.data or ""),
        lambda row: _("Stress test #%(id)s stored.", id=row.id),
        lambda row: url_for("staff.adequacy_stress_detail", test_id=row.id),
        lambda f: _render_stress(f, 422))


@bp.get("/adequacy/stress/<int:test_id>")
@roles_required(BACK_OFFICE_READERS)
def adequacy_stress_detail(test_id: int):  # type: ignore[no-untyped-def]
    row = adequacy.get_stress_test(db(), actor(), test_id)
    return render_template("staff/adequacy_stress_detail.html", test=row, details=json.loads(row.details))


@bp.get("/adequacy/stress.csv")
@roles_required(BACK_OFFICE_READERS)
def adequacy_stress_csv():  # type: ignore[no-untyped-def]
    return Response(adequacy.stress_csv(adequacy.stress_tests(db(), actor())), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=stress-tests.csv"})
