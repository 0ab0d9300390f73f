"""The application factory: configuration, database, extensions, blueprints, error pages."""

from __future__ import annotations

from collections.abc import Callable

from dataclasses import dataclass
from urllib.parse import urlsplit
from pathlib import Path

from werkzeug.middleware.proxy_fix import ProxyFix
from flask import Flask, abort, current_app, redirect, render_template, request, session, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from payouts.jobs.runtime import make_dispatch
from payouts.config import Config, resource_dir
from payouts.db.session import make_engine, make_session_factory
from payouts.domain.errors import ConflictError, NotFoundError, PermissionDenied, ValidationError
from payouts.domain.money import format_decimal_yen, format_yen
from payouts.domain.roles import STAFF_WRITERS, Role
from payouts.services import audit_trail
from payouts.services.evidence import MAX_FILE_BYTES, MAX_FILES
from payouts.web import context, translate
from payouts.web.access import public
from payouts.web.extensions import babel, csrf, limiter, login_manager
from payouts.web.uploads import SpoolingRequest

LANGUAGES = ("ja", "en")
ROLE_LABELS = {
    "customer": _l("customer"),
    "staff": _l("staff"),
    "approver": _l("approver"),
    "admin": _l("admin"),
    "regulator": _l("regulator"),
}


@dataclass
class AppState:
    config: Config
    engine: Engine
    session_factory: sessionmaker[Session]
    #: Enqueues jobs after a commit: RQ with Redis, inline (same process) without.
    dispatch: Callable[..., None] | None = None


def create_app(config: Config | None = None) -> Flask:
    config = config or Config.from_env()
    app = Flask(
        "payouts",
        template_folder=str(resource_dir("templates")),
        static_folder=str(Path(__file__).parent / "static"),
    )
    app.config.update(
        SECRET_KEY=config.secret_key,
        # Small by default: only the upload endpoints (UPLOAD_ENDPOINTS) accept large bodies,
        # so nobody can make the server spool half a gigabyte to a login form.
        MAX_CONTENT_LENGTH=SMALL_BODY_BYTES,
        MAX_FORM_PARTS=100,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.secure_cookies,
        SESSION_COOKIE_NAME="__Host-payouts" if config.secure_cookies else "payouts",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SECURE=config.secure_cookies,
        PERMANENT_SESSION_LIFETIME=60 * 60 * 8,
        WTF_CSRF_TIME_LIMIT=60 * 60 * 8,
        BABEL_DEFAULT_LOCALE="ja",
        BABEL_TRANSLATION_DIRECTORIES=str(Path(__file__).resolve().parent.parent / "translations"),
        RATELIMIT_STORAGE_URI=config.redis_url or "memory://",
        RATELIMIT_HEADERS_ENABLED=True,
    )
    if config.proxy_hops:
        # Behind a reverse proxy the client's address is in X-Forwarded-For; without this every
        # user would share the proxy's login rate-limit bucket.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=config.proxy_hops, x_proto=config.proxy_hops)  # type: ignore[method-assign]
    app.request_class = SpoolingRequest
    engine = make_engine(config.database_url)
    session_factory = make_session_factory(engine)
    app.extensions["payouts"] = AppState(config, engine, session_factory, make_dispatch(
        config, engine=engine, session_factory=session_factory))

    # Registered before CSRFProtect's own check, which parses the body.
    app.before_request(_body_limits)
    csrf.init_app(app)
    limiter.init_app(app)
    babel.init_app(app, locale_selector=_select_locale)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = None
    login_manager.session_protection = "strong"

    from payouts.web.auth.views import bp as auth_bp
    from payouts.web.portal.views import bp as portal_bp
    from payouts.web.staff.views import bp as staff_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(staff_bp, url_prefix="/staff")
    app.register_blueprint(portal_bp, url_prefix="/portal")

    app.teardown_appcontext(context.close_db)
    translate.install(app.jinja_env)
    app.jinja_env.filters["yen"] = lambda amount: format_yen(int(amount), translate.locale())
    app.jinja_env.filters["decimal_yen"] = lambda value: format_decimal_yen(value, translate.locale())
    app.jinja_env.globals["languages"] = LANGUAGES
    app.jinja_env.globals["get_locale"] = translate.locale
    app.jinja_env.globals["role_label"] = lambda role: ROLE_LABELS.get(role, role)
    _register_core_routes(app)
    _register_error_pages(app)
    from payouts.web.api import init_api  # after the error pages: the API answers /api/ in JSON

    init_api(app)
    _register_security_headers(app)
    _register_regulator_view_log(app)
    return app


def _register_regulator_view_log(app: Flask) -> None:
    """Everything a regulator looks at or exports is itself recorded in the audit trail."""

    @app.after_request
    def log_view(response):  # type: ignore[no-untyped-def]
        if (request.method == "GET" and response.status_code == 200 and current_user.is_authenticated
                and current_user.role == Role.REGULATOR.value and request.endpoint not in (None, "static")):
            audit_trail.record_view(context.db(), context.actor(), request.full_path.rstrip("?"))
        return response


SMALL_BODY_BYTES = 2 * 1024 * 1024
#: Where files are uploaded, and the roles whose users may send a large body there.
UPLOAD_ENDPOINTS = {"staff.import_upload": STAFF_WRITERS, "staff.adequacy_upload": STAFF_WRITERS,
                    "portal.claim_dispute": frozenset({Role.CUSTOMER})}
#: A dispute carries at most its evidence files and a short form.
DISPUTE_BODY_BYTES = MAX_FILES * MAX_FILE_BYTES + SMALL_BODY_BYTES


def _body_limits() -> None:
    """Large bodies only where files are uploaded, and only from a signed-in user who may
    upload there: the body is spooled to disk as it is parsed, before the view checks anyone,
    so a larger cap for everybody would let anyone fill the disk. NUL characters nowhere
    (PostgreSQL refuses them in text, and no field of ours has a use for them)."""
    roles = UPLOAD_ENDPOINTS.get(request.endpoint or "")
    if roles is not None and current_user.is_authenticated and Role(current_user.role) in roles:
        request.max_content_length = (DISPUTE_BODY_BYTES if request.endpoint == "portal.claim_dispute"
                                      else current_app.extensions["payouts"].config.max_upload_bytes)
    if "\x00" in request.path or any("\x00" in value for value in request.args.values()):
        abort(400)
    if request.method == "POST" and any("\x00" in value for value in request.form.values()):
        abort(400)


def _select_locale() -> str:
    chosen = session.get("lang")
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(LANGUAGES) or "ja"


def _register_core_routes(app: Flask) -> None:
    @app.get("/")
    @public
    def index():  # type: ignore[no-untyped-def]
        if not current_user.is_authenticated:
            return redirect(url_for("auth.login"))
        if current_user.role == Role.CUSTOMER.value:
            return redirect(url_for("portal.home"))
        return redirect(url_for("staff.incidents"))

    @app.get("/healthz")
    @public
    def healthz():  # type: ignore[no-untyped-def]
        context.db().execute(text("SELECT 1"))
        return {"status": "ok"}

    @app.get("/lang/<code>")
    @public
    def set_language(code: str):  # type: ignore[no-untyped-def]
        if code in LANGUAGES:
            session["lang"] = code
        return redirect(safe_next(request.args.get("next", "")) or url_for("index"))


def safe_next(target: str) -> str | None:
    """A same-site path to go back to, or None: never an open redirect to a phishing page.

    Browsers drop tabs and newlines from URLs and read "\\" as "/", so "/\t/evil" would become
    "//evil": any control character, space or backslash disqualifies the target.
    """
    if not target or any(ord(ch) <= 0x20 or ord(ch) == 0x7F or ch == "\\" for ch in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def _register_error_pages(app: Flask) -> None:
    def page(code: int):  # type: ignore[no-untyped-def]
        def handler(_error: Exception):  # type: ignore[no-untyped-def]
            return render_template("errors/error.html", code=code), code

        return handler

    for code in (400, 403, 404, 405, 413, 429, 500):
        app.register_error_handler(code, page(code))
    app.register_error_handler(PermissionDenied, page(403))
    app.register_error_handler(NotFoundError, page(404))

    def refused(code: int):  # type: ignore[no-untyped-def]
        # A refusal a service explains (stale page, frozen incident, missing price): show it.
        def handler(error: Exception):  # type: ignore[no-untyped-def]
            return render_template("errors/error.html", code=code, message=str(error)), code

        return handler

    app.register_error_handler(ConflictError, refused(409))
    app.register_error_handler(ValidationError, refused(422))


def _register_security_headers(app: Flask) -> None:
    @app.after_request
    def headers(response):  # type: ignore[no-untyped-def]
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self';"
            " frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if response.mimetype == "text/html":
            response.headers.setdefault("Cache-Control", "no-store")
        return response
