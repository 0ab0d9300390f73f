"""Back-office pages for the reserve ledger and the insurance tower."""

from __future__ import annotations

from flask import render_template, url_for
from wtforms.fields.choices import SelectChoice

from payouts.domain.roles import BACK_OFFICE_READERS, STAFF_WRITERS
from payouts.services import funding
from payouts.web.access import roles_required
from payouts.web.context import actor, db
from payouts.web.staff.forms import LayerForm, PolicyForm, ReserveMovementForm
from payouts.web.staff.views import bp, submit
from payouts.web.translate import gettext as _


def _render(movement=None, policy=None, layer=None, status=200):  # type: ignore[no-untyped-def]
    session, who = db(), actor()
    policies = funding.policies(session, who)
    layer = layer or LayerForm()
    layer.policy_number.choices = [SelectChoice(p.policy_number, f"{p.policy_number} — {p.insurer}") for p in policies]
    return render_template(
        "staff/funding.html",
        balance=funding.reserve_balance(session),
        entries=funding.reserve_entries(session, who),
        tower=funding.tower(session, who),
        policies=policies,
        movement_form=movement or ReserveMovementForm(),
        policy_form=policy or PolicyForm(),
        layer_form=layer,
    ), status


@bp.get("/funding")
@roles_required(BACK_OFFICE_READERS)
def funding_page():  # type: ignore[no-untyped-def]
    return _render()


@bp.post("/funding/reserve")
@roles_required(STAFF_WRITERS)
def reserve_move():  # type: ignore[no-untyped-def]
    form = ReserveMovementForm()
    return submit(
        form,
        lambda: funding.record_reserve_movement(
            db(), actor(), kind=form.kind.data, amount_jpy=form.amount_jpy.data, memo=form.memo.data),
        _("Reserve movement recorded."), url_for("staff.funding_page") + "#reserve", lambda f: _render(movement=f, status=422))


@bp.post("/funding/policies")
@roles_required(STAFF_WRITERS)
def policy_create():  # type: ignore[no-untyped-def]
    form = PolicyForm()
    return submit(
        form,
        lambda: funding.create_policy(
            db(), actor(), policy_number=form.policy_number.data, insurer=form.insurer.data,
            period_start=form.period_start.data, period_end=form.period_end.data),
        _("Policy recorded."), url_for("staff.funding_page") + "#tower", lambda f: _render(policy=f, status=422))


@bp.post("/funding/layers")
@roles_required(STAFF_WRITERS)
def layer_create():  # type: ignore[no-untyped-def]
    form = LayerForm()
    form.policy_number.choices = [SelectChoice(p.policy_number, p.policy_number)
                                  for p in funding.policies(db(), actor())]
    return submit(
        form,
        lambda: funding.add_layer(
            db(), actor(), policy_number=form.policy_number.data, code=form.code.data,
            attachment_jpy=form.attachment_jpy.data, limit_jpy=form.limit_jpy.data,
            share=form.share.data.strip(), aggregate_limit_jpy=form.aggregate_limit_jpy.data,
            excluded_incident_types=form.excluded_incident_types.data or []),
        _("Layer recorded."), url_for("staff.funding_page") + "#tower", lambda f: _render(layer=f, status=422))
