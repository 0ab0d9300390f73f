"""Login (argon2, rate-limited, session rotated) and logout (session ended)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from payouts.services import activation, users
from payouts.web.access import public
from payouts.web.context import db
from payouts.web.extensions import limiter, login_manager
from payouts.web.translate import gettext as _

if TYPE_CHECKING:
    from payouts.db.models import User

bp = Blueprint("auth", __name__)


@dataclass
class SessionUser:
    """What Flask-Login keeps of a user; the id carries the session version."""

    id: int
    username: str
    display_name: str
    role: str
    session_version: int
    customer_id: int | None

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"


@login_manager.user_loader
def _load(user_key: str) -> SessionUser | None:
    try:
        user_id, version = (int(part) for part in user_key.split(":"))
    except ValueError:
        return None
    user = users.load_user(db(), user_id)
    if user is None or user.session_version != version:
        return None  # password changed or sessions revoked since this cookie was issued
    return SessionUser(
        user.id, user.username, user.display_name, user.role, user.session_version, user.customer_id
    )


class LoginForm(FlaskForm):
    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=120)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=1024)])


def _login_limit() -> str:
    return current_app.extensions["payouts"].config.login_rate_limit


def _username_key() -> str:
    # A second bucket per account: many addresses guessing one password share it.
    return "login-user:" + (request.form.get("username") or "").strip().lower()[:120]


@bp.route("/login", methods=["GET", "POST"])
@public
@limiter.limit(_login_limit, methods=["POST"])
@limiter.limit(_login_limit, methods=["POST"], key_func=_username_key)
def login():  # type: ignore[no-untyped-def]
    if current_user.is_authenticated:
        return redirect(url_for("index"))
    form = LoginForm()
    if form.validate_on_submit():
        user = users.authenticate(db(), form.username.data or "", form.password.data or "")
        if user is None:
            flash(_("Username or password is wrong."), "error")
            return render_template("auth/login.html", form=form), 401
        _fresh_session()  # nothing from before carries over
        if user.totp_secret:
            # The password is right, but the login waits for the second factor.
            session[PENDING_KEY] = {"user_id": user.id, "session_version": user.session_version,
                                    "since": int(time.time())}
            return redirect(url_for("auth.login_totp"))
        login_user(_load(f"{user.id}:{user.session_version}"))  # type: ignore[arg-type]
        return redirect(url_for("index"))
    return render_template("auth/login.html", form=form)


def _fresh_session() -> None:
    """A new session (Flask rotates the signed cookie): only the language choice survives."""
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang


PENDING_KEY = "totp_pending"
#: How long a correct password waits for its second factor.
PENDING_SECONDS = 5 * 60


class TotpForm(FlaskForm):
    code = StringField(_l("6-digit code from your authenticator app"),
                       validators=[DataRequired(), Length(min=6, max=12)])


def _pending() -> dict | None:
    pending = session.get(PENDING_KEY)
    if not isinstance(pending, dict):
        return None
    since = pending.get("since")
    if not isinstance(since, int) or not 0 <= time.time() - since <= PENDING_SECONDS:
        session.pop(PENDING_KEY, None)
        return None
    return pending


def _pending_user_key() -> str:
    # A bucket per account waiting for its code, whatever address the guesses come from.
    pending = session.get(PENDING_KEY)
    user_id = pending.get("user_id") if isinstance(pending, dict) else None
    return f"totp-user:{user_id}"


def _pending_user(pending: dict) -> User | None:
    """The user whose second step this is, while their session version has not moved on: a
    lockout, a logout or a new password ends the step."""
    user = users.load_user(db(), int(pending["user_id"]))
    return user if user is not None and user.session_version == pending.get("session_version") else None


def _start_over(message: str):  # type: ignore[no-untyped-def]
    _fresh_session()
    flash(message, "error")
    return redirect(url_for("auth.login"))


@bp.route("/login/totp", methods=["GET", "POST"])
@public
@limiter.limit(_login_limit, methods=["POST"])
@limiter.limit(_login_limit, methods=["POST"], key_func=_pending_user_key)
def login_totp():  # type: ignore[no-untyped-def]
    if current_user.is_authenticated:
        return redirect(url_for("index"))
    pending = _pending()
    if pending is None:
        flash(_("Sign in again: the second step takes at most 5 minutes."), "error")
        return redirect(url_for("auth.login"))
    form = TotpForm()
    if form.validate_on_submit():
        # A step that is over has not even its code checked, so a saved cookie can neither
        # guess further nor use up the real user's current code.
        if _pending_user(pending) is None:
            return _start_over(_("Sign in again."))
        if activation.verify_totp(db(), int(pending["user_id"]), form.code.data or ""):
            user = _pending_user(pending)  # unless it ended meanwhile
            if user is None:
                return _start_over(_("Sign in again."))
            _fresh_session()
            login_user(_load(f"{user.id}:{user.session_version}"))  # type: ignore[arg-type]
            return redirect(url_for("index"))
        # Wrong codes are counted on the server (activation.verify_totp); enough of them end
        # the step.
        if _pending_user(pending) is None:
            return _start_over(_("Too many wrong codes. Sign in again."))
        form.code.errors = [*form.code.errors, _("That code is not right. Codes change every 30 seconds;"
                                                 " type the one shown now.")]
        return render_template("auth/login_totp.html", form=form), 401
    return render_template("auth/login_totp.html", form=form), 422 if form.is_submitted() else 200


@bp.post("/logout")
@public
def logout():  # type: ignore[no-untyped-def]
    if current_user.is_authenticated:
        users.end_sessions(db(), int(current_user.id))
    logout_user()
    _fresh_session()
    flash(_("You have been logged out on every device."), "info")
    return redirect(url_for("auth.login"))


# Activation and sign-in security register their routes on this blueprint.
from payouts.web.auth import account_views  # noqa: E402,F401
