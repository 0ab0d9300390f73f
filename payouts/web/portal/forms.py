"""Customer forms (Flask-WTF: every form carries a CSRF token)."""

from __future__ import annotations

from collections.abc import Sequence

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, MultipleFileField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional, Regexp

from payouts.services.claims import MAX_REASON

ACCOUNT_TYPE_LABELS = {
    "ordinary": _l("Ordinary (普通)"),
    "current": _l("Current (当座)"),
    "savings": _l("Savings (貯蓄)"),
}


class RowVersionForm(FlaskForm):
    """A claim action names the version of the claim the customer saw (optimistic locking)."""

    row_version = HiddenField(validators=[DataRequired(), Regexp(r"^\d{1,9}$")])


class AcceptForm(RowVersionForm):
    pass


class WithdrawForm(RowVersionForm):
    confirm = BooleanField(
        _l("I understand that a withdrawn claim is closed for good and will not be paid."),
        validators=[DataRequired(message=_l("Tick the box to confirm that you want to withdraw."))],
    )


class DisputeForm(RowVersionForm):
    reason = TextAreaField(
        _l("What is wrong with the claim?"),
        validators=[DataRequired(message=_l("Tell us what is wrong with the claim.")), Length(max=MAX_REASON)],
    )
    evidence = MultipleFileField(_l("Evidence files (optional)"))

    #: (asset, field) for each asset of the claim: the amount the customer says is right.
    corrected_fields: list[tuple[str, StringField]]


def dispute_form(assets: Sequence[str]) -> DisputeForm:
    """A dispute form with one optional "correct amount" field per asset of the claim."""

    class Form(DisputeForm):
        pass

    for index, asset in enumerate(assets):
        setattr(Form, f"corrected_{index}", StringField(
            _l("Correct amount of %(asset)s", asset=asset),
            validators=[Optional(), Length(max=100)]))
    form = Form()
    form.corrected_fields = [(asset, getattr(form, f"corrected_{i}")) for i, asset in enumerate(assets)]
    return form


class DestinationForm(FlaskForm):
    bank_code = StringField(_l("Bank code (金融機関コード)"), validators=[DataRequired(), Length(max=20)])
    branch_code = StringField(_l("Branch code (支店コード)"), validators=[DataRequired(), Length(max=20)])
    account_type = SelectField(_l("Account type (預金種目)"),
                               choices=[SelectChoice(k, v) for k, v in ACCOUNT_TYPE_LABELS.items()])
    account_number = StringField(_l("Account number (口座番号)"), validators=[DataRequired(), Length(max=20)])
    holder_kana = StringField(_l("Account holder in katakana (口座名義カナ)"),
                              validators=[DataRequired(), Length(max=100)])
