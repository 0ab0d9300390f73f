"""Back-office forms (Flask-WTF: every form carries a CSRF token)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField, FileRequired
from wtforms import DateTimeLocalField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from payouts.domain.incidents import IncidentType

INCIDENT_TYPE_LABELS = {
    IncidentType.HACK.value: _l("Hack"),
    IncidentType.OPERATIONAL_FAILURE.value: _l("Operational failure"),
    IncidentType.INSIDER_FRAUD.value: _l("Insider fraud"),
    IncidentType.OTHER.value: _l("Other"),
}


class IncidentForm(FlaskForm):
    ref = StringField(_l("Reference"), validators=[DataRequired(), Length(max=40)])
    title = StringField(_l("Title"), validators=[DataRequired(), Length(max=200)])
    incident_type = SelectField(_l("Type"), choices=list(INCIDENT_TYPE_LABELS.items()))
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
