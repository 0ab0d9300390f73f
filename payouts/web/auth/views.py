"""Login (argon2, rate-limited, session rotated) and logout (session ended)."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from payouts.services import users
from payouts.web.access import public
from payouts.web.context import db
from payouts.web.extensions import limiter, login_manager

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
        lang = session.get("lang")
        session.clear()  # a fresh session on login: nothing from before carries over
        if lang:
            session["lang"] = lang
        login_user(_load(f"{user.id}:{user.session_version}"))  # type: ignore[arg-type]
        return redirect(url_for("index"))
    return render_template("auth/login.html", form=form)


@bp.post("/logout")
@public
def logout():  # type: ignore[no-untyped-def]
    logout_user()
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
    flash(_("You have been logged out."), "info")
    return redirect(url_for("auth.login"))
