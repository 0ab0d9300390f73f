"""Back-office forms (Flask-WTF: every form carries a CSRF token)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField, FileRequired
from wtforms import (
    BooleanField,
    DateField,
    DateTimeLocalField,
    HiddenField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from payouts.domain.incidents import IncidentType
from payouts.domain.money import MAX_YEN

INCIDENT_TYPE_LABELS = {
    IncidentType.HACK.value: _l("Hack"),
    IncidentType.OPERATIONAL_FAILURE.value: _l("Operational failure"),
    IncidentType.INSIDER_FRAUD.value: _l("Insider fraud"),
    IncidentType.OTHER.value: _l("Other"),
}
ENTRY_KIND_LABELS = {
    "deposit": _l("Deposit"),
    "withdrawal": _l("Withdrawal"),
    "earmark": _l("Earmarked for an allocation"),
    "release": _l("Earmark released"),
    "payment": _l("Paid to customers"),
}


class IncidentForm(FlaskForm):
    ref = StringField(_l("Reference"), validators=[DataRequired(), Length(max=40)])
    title = StringField(_l("Title"), validators=[DataRequired(), Length(max=200)])
    incident_type = SelectField(_l("Type"), choices=[SelectChoice(k, v) for k, v in INCIDENT_TYPE_LABELS.items()])
    occurred_at = DateTimeLocalField(
        _l("Occurred at (JST)"), format="%Y-%m-%dT%H:%M", validators=[DataRequired()]
    )
    discovered_at = DateTimeLocalField(
        _l("Discovered at (JST)"), format="%Y-%m-%dT%H:%M", validators=[DataRequired()]
    )
    description = TextAreaField(_l("Description"), validators=[Length(max=5000)])


class PriceForm(FlaskForm):
    asset = SelectField(_l("Asset"), choices=[])
    price = StringField(_l("Price in yen per whole unit"), validators=[DataRequired(), Length(max=60)])
    source = StringField(_l("Source"), validators=[DataRequired(), Length(max=500)])


class UploadForm(FlaskForm):
    file = FileField(
        _l("Loss file (CSV)"),
        validators=[FileRequired(), FileAllowed(["csv", "txt"], _l("Upload a .csv file"))],
    )


class ReserveMovementForm(FlaskForm):
    kind = SelectField(_l("Movement"), choices=[SelectChoice("deposit", ENTRY_KIND_LABELS["deposit"]),
                                                SelectChoice("withdrawal", ENTRY_KIND_LABELS["withdrawal"])])
    amount_jpy = IntegerField(_l("Amount (yen)"), validators=[DataRequired(), NumberRange(min=1, max=MAX_YEN)])
    memo = StringField(_l("Memo"), validators=[DataRequired(), Length(max=500)])


class PolicyForm(FlaskForm):
    policy_number = StringField(_l("Policy number"), validators=[DataRequired(), Length(max=60)])
    insurer = StringField(_l("Insurer"), validators=[DataRequired(), Length(max=200)])
    period_start = DateField(_l("Period start"), validators=[DataRequired()])
    period_end = DateField(_l("Period end"), validators=[DataRequired()])


class LayerForm(FlaskForm):
    policy_number = SelectField(_l("Policy"), choices=[])
    code = StringField(_l("Layer id"), validators=[DataRequired(), Length(max=40)])
    attachment_jpy = IntegerField(_l("Attachment (yen)"), validators=[InputRequired(), NumberRange(min=0, max=MAX_YEN)])
    limit_jpy = IntegerField(_l("Limit (yen)"), validators=[InputRequired(), NumberRange(min=0, max=MAX_YEN)])
    share = StringField(_l("Share"), default="1", validators=[DataRequired(), Length(max=20)])
    aggregate_limit_jpy = IntegerField(_l("Aggregate limit (yen)"), validators=[Optional(), NumberRange(min=0, max=MAX_YEN)])
    excluded_incident_types = SelectMultipleField(
        _l("Excluded incident types"), choices=[SelectChoice(k, v) for k, v in INCIDENT_TYPE_LABELS.items()],
        validators=[Optional()])


class TermsForm(FlaskForm):
    deductible_jpy = IntegerField(_l("Deductible (yen)"), default=0, validators=[InputRequired(), NumberRange(min=0, max=MAX_YEN)])
    cap_jpy = IntegerField(_l("Cap per customer (yen)"), validators=[Optional(), NumberRange(min=0, max=MAX_YEN)])
    tranches_jpy = StringField(_l("Priority tranches (yen, comma-separated)"), validators=[Length(max=500)])


class CommitForm(FlaskForm):
    digest = HiddenField(validators=[DataRequired(), Length(min=64, max=64)])


class RecoveryForm(FlaskForm):
    amount_jpy = IntegerField(_l("Amount (yen)"), validators=[DataRequired(), NumberRange(min=1, max=MAX_YEN)])
    source = StringField(_l("Where the money came from"), validators=[DataRequired(), Length(max=300)])


class RuleForm(FlaskForm):
    effective_from = DateField(_l("Effective from"), validators=[DataRequired()])
    volume_rates = TextAreaField(
        _l("Rates on trailing 12-month trading volume"), default="spot=0.0002\nmargin=0.0004\n*=0.0002",
        validators=[DataRequired(), Length(max=2000)])
    cold_wallet_rate = StringField(_l("Rate on cold-wallet holdings"), default="0.005", validators=[DataRequired()])
    hot_wallet_rate = StringField(_l("Rate on hot-wallet holdings"), default="0.05", validators=[DataRequired()])
    incident_multiple = StringField(_l("Multiple of past incident losses"), default="0.5", validators=[DataRequired()])
    incident_lookback_years = IntegerField(_l("Incident lookback (years)"), default=3,
                                           validators=[InputRequired(), NumberRange(min=1, max=20)])
    floor_jpy = IntegerField(_l("Floor (yen)"), default=2_000_000_000,
                             validators=[InputRequired(), NumberRange(min=0, max=MAX_YEN)])
    cap_jpy = IntegerField(_l("Cap (yen)"), default=40_000_000_000, validators=[Optional(), NumberRange(min=0, max=MAX_YEN)])
    insurance_credit_ratio = StringField(_l("Share of a qualifying layer's cover that counts"), default="0.8",
                                         validators=[DataRequired()])
    insurance_max_share = StringField(_l("Most of the requirement insurance may replace"), default="0.5",
                                      validators=[DataRequired()])
    qualifying_policies = SelectMultipleField(_l("Qualifying policies (none selected: all)"), choices=[],
                                              validators=[Optional()])
    illustrative = BooleanField(_l("Illustrative (the regulator has not published the formula)"), default=True)
    rationale = TextAreaField(_l("Rationale"), validators=[DataRequired(), Length(max=5000)])


class VolumeForm(FlaskForm):
    month = StringField(_l("Month (YYYY-MM)"), validators=[DataRequired(), Length(min=7, max=7)])
    market = StringField(_l("Market"), validators=[DataRequired(), Length(max=40)])
    volume_jpy = IntegerField(_l("Volume (yen)"), validators=[InputRequired(), NumberRange(min=0, max=MAX_YEN)])


class SnapshotForm(FlaskForm):
    as_of = DateField(_l("As of"), validators=[DataRequired()])
    wallet = SelectField(_l("Wallet"), choices=[SelectChoice("cold", _l("Cold wallet")),
                                                SelectChoice("hot", _l("Hot wallet"))])
    value_jpy = IntegerField(_l("Value of customer assets (yen)"),
                             validators=[InputRequired(), NumberRange(min=0, max=MAX_YEN)])


class ExternalIncidentForm(FlaskForm):
    occurred_on = DateField(_l("Occurred on"), validators=[DataRequired()])
    loss_jpy = IntegerField(_l("Customer losses (yen)"), validators=[InputRequired(), NumberRange(min=0, max=MAX_YEN)])
    description = StringField(_l("Description"), validators=[DataRequired(), Length(max=500)])


class InputsUploadForm(FlaskForm):
    kind = SelectField(_l("File contents"), choices=[
        SelectChoice("volumes", _l("Monthly trading volumes: month,market,volume_jpy")),
        SelectChoice("snapshots", _l("Wallet holdings: as_of,wallet,value_jpy"))])
    file = FileField(_l("CSV file"), validators=[FileRequired(), FileAllowed(["csv", "txt"], _l("Upload a .csv file"))])


class StressForm(FlaskForm):
    preset = SelectField(_l("Scenario"), choices=[])
    wallet = SelectField(_l("Wallet (custom scenario)"), choices=[SelectChoice("hot", _l("Hot wallet")),
                                                                  SelectChoice("cold", _l("Cold wallet"))])
    share_lost = StringField(_l("Share of that wallet lost (custom scenario)"), default="0.25",
                             validators=[Optional(), Length(max=20)])
    customers = IntegerField(_l("Affected customers"), default=50_000,
                             validators=[InputRequired(), NumberRange(min=1, max=2_000_000)])
    tranches_jpy = StringField(_l("Priority tranches (yen, comma-separated)"), default="200000,1000000",
                               validators=[Length(max=500)])
    label = StringField(_l("Label"), validators=[Length(max=200)])
