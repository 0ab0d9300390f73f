"""Activating a customer login with its one-time code, and the optional second factor (TOTP)."""

from __future__ import annotations

import time

import segno
from flask import flash, redirect, render_template, request, session, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_user
from flask_wtf import FlaskForm
from markupsafe import Markup
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from payouts.domain.errors import ValidationError
from payouts.domain.roles import Role
from payouts.services import activation, users
from payouts.services.users import MIN_PASSWORD_LENGTH
from payouts.web.access import public, roles_required
from payouts.web.auth.views import _load, _login_limit, bp
from payouts.web.context import actor, db
from payouts.web.extensions import limiter
from payouts.web.translate import gettext as _

#: Every role may look at its sign-in security; regulators change nothing (no POST admits them).
ALL_ROLES = frozenset(Role)
SETUP_KEY = "totp_setup"
#: How long a secret shown for setup stays valid before a new one is drawn.
SETUP_SECONDS = 15 * 60


class ActivationForm(FlaskForm):
    username = StringField(_l("Customer number"), validators=[DataRequired(), Length(max=120)])
    code = StringField(_l("Activation code"), validators=[DataRequired(), Length(max=64)])
    password = PasswordField(
        _l("New password"),
        validators=[DataRequired(), Length(min=MIN_PASSWORD_LENGTH, max=1024,
                                           message=_l("Use at least %(count)s characters.", count=MIN_PASSWORD_LENGTH))])
    confirm = PasswordField(
        _l("New password again"),
        validators=[DataRequired(), EqualTo("password", message=_l("The two passwords are not the same."))])


class CodeForm(FlaskForm):
    code = StringField(_l("6-digit code from your authenticator app"),
                       validators=[DataRequired(), Length(min=6, max=12)])


def _activation_user_key() -> str:
    return "activate-user:" + (request.form.get("username") or "").strip().lower()[:120]


def _attach(form: FlaskForm, exc: ValidationError) -> None:
    field = getattr(form, exc.field, None)
    if field is not None and hasattr(field, "errors"):
        field.errors = [*field.errors, exc.message]
    else:
        flash(str(exc), "error")


@bp.route("/activate", methods=["GET", "POST"])
@public
@limiter.limit(_login_limit, methods=["POST"])
@limiter.limit(_login_limit, methods=["POST"], key_func=_activation_user_key)
def activate():  # type: ignore[no-untyped-def]
    if current_user.is_authenticated:
        return redirect(url_for("index"))
    form = ActivationForm()
    if form.validate_on_submit():
        try:
            activation.activate_account(db(), username=form.username.data or "", code=form.code.data or "",
                                        password=form.password.data or "")
        except ValidationError as exc:
            if exc.field == "code":
                # One message for every wrong input (customer number, code, expiry): nothing to probe.
                form.code.errors = [*form.code.errors, _(
                    "The customer number or activation code is not valid, or the code has expired.")]
            else:
                _attach(form, exc)
        else:
            flash(_("Your account is active. Sign in with your customer number and your new password."), "success")
            return redirect(url_for("auth.login"))
    return (render_template("auth/activate.html", form=form, min_length=MIN_PASSWORD_LENGTH),
            422 if form.is_submitted() else 200)


def _setup_secret() -> str:
    """The secret offered for setup, kept in the signed session until a code confirms it."""
    setup = session.get(SETUP_KEY)
    if (isinstance(setup, dict) and isinstance(setup.get("secret"), str) and isinstance(setup.get("since"), int)
            and 0 <= time.time() - setup["since"] <= SETUP_SECONDS):
        return setup["secret"]
    secret = activation.new_totp_secret()
    session[SETUP_KEY] = {"secret": secret, "since": int(time.time())}
    return secret


def _totp_on() -> bool:
    user = users.load_user(db(), current_user.id)
    return bool(user is not None and user.totp_secret)


def _render_security(enable_form: CodeForm | None = None, disable_form: CodeForm | None = None,
                     status: int = 200):  # type: ignore[no-untyped-def]
    enabled = _totp_on()
    secret = qr = None
    if not enabled:
        secret = _setup_secret()
        uri = activation.totp_uri(secret, current_user.username)
        # segno writes the SVG itself (no user text in it): safe to embed as markup.
        qr = Markup(segno.make(uri, error="m").svg_inline(scale=4, title=_("QR code for your authenticator app")))
    return render_template(
        "auth/security.html", enabled=enabled, secret=secret, qr=qr,
        grouped_secret=" ".join(secret[i:i + 4] for i in range(0, len(secret), 4)) if secret else None,
        enable_form=enable_form or CodeForm(formdata=None), disable_form=disable_form or CodeForm(formdata=None),
    ), status


@bp.get("/account/security")
@roles_required(ALL_ROLES)
def security():  # type: ignore[no-untyped-def]
    return _render_security()


# Every login may protect itself, regulators included: their reads reach every customer's data.
@bp.post("/account/security/totp/enable")
@roles_required(ALL_ROLES, own_login=True)
def totp_enable():  # type: ignore[no-untyped-def]
    form = CodeForm()
    setup = session.get(SETUP_KEY)
    if not isinstance(setup, dict) or not isinstance(setup.get("secret"), str):
        flash(_("The setup expired. Scan the new code and try again."), "error")
        return redirect(url_for("auth.security"))
    if form.validate_on_submit():
        try:
            activation.enable_totp(db(), actor(), setup["secret"], form.code.data or "")
        except ValidationError as exc:
            if exc.field == "code":
                form.code.errors = [*form.code.errors, _("A second factor is already on.") if _totp_on() else _(
                    "That code does not match. Check that your phone's clock is right and type the code shown now.")]
            else:
                _attach(form, exc)
        else:
            session.pop(SETUP_KEY, None)
            flash(_("The second factor is on. From now on, signing in asks for a code from your app."), "success")
            return redirect(url_for("auth.security"))
    return _render_security(enable_form=form, status=422)


@bp.post("/account/security/totp/disable")
@roles_required(ALL_ROLES, own_login=True)
def totp_disable():  # type: ignore[no-untyped-def]
    form = CodeForm()
    if form.validate_on_submit():
        try:
            activation.disable_totp(db(), actor(), form.code.data or "")
        except ValidationError as exc:
            if exc.field == "code":
                form.code.errors = [*form.code.errors, _("That code does not match.") if _totp_on() else _(
                    "No second factor is on.")]
            else:
                _attach(form, exc)
        else:
            # Turning it off ends every session of this login; this one carries on, on the new version.
            user = users.load_user(db(), current_user.id)
            if user is not None:
                login_user(_load(f"{user.id}:{user.session_version}"))  # type: ignore[arg-type]
            flash(_("The second factor is off. Other sessions of your login were ended."), "success")
            return redirect(url_for("auth.security"))
    return _render_security(disable_form=form, status=422)
