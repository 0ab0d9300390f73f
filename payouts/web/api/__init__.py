"""/api/v1: the back office as a JSON API (flask-smorest + marshmallow), keyed by API keys.

``init_api(app)`` installs it on an app built by payouts.web.app.create_app; call it at the end
of create_app (after the HTML error pages are registered, whose 404/405 it wraps for /api/).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, g, render_template_string, request
from flask_smorest import Api
from werkzeug.exceptions import HTTPException

from payouts.domain.roles import STAFF_WRITERS, Role
from payouts.services import audit_trail
from payouts.web import context
from payouts.web.access import public
from payouts.web.api import auth
from payouts.web.api.auth import presented_key
from payouts.web.api.errors import CODES, ApiError, to_response
from payouts.web.api.schemas import ErrorSchema
from payouts.web.extensions import csrf, limiter

PREFIX = "/api/v1"
UPLOAD_ENDPOINT = "api_v1.upload_losses"
#: Requests per key; PAYOUTS_API_RATE_LIMIT in the app config overrides it.
DEFAULT_RATE_LIMIT = "600 per minute"


class PayoutsApi(Api):
    """flask-smorest's Api without its app-wide handlers and doc blueprint: the HTML pages keep
    their error pages, and the document and its page are our own routes (no CDN scripts)."""

    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self) -> None:
        pass

    def _register_doc_blueprint(self) -> None:
        pass


def _rate_limit() -> str:
    return str(current_app.config.get("PAYOUTS_API_RATE_LIMIT", DEFAULT_RATE_LIMIT))


def _handle(error: BaseException):  # type: ignore[no-untyped-def]
    if not isinstance(error, (ApiError, HTTPException)) and not _known(error):
        current_app.logger.exception("API request failed", exc_info=error)
    return to_response(error)


def _known(error: BaseException) -> bool:
    from payouts.domain.errors import DomainError

    return isinstance(error, DomainError)


def _wrap_app_handler(app: Flask, code: int) -> None:
    """Routing errors (404, 405) under /api/ are answered in JSON; elsewhere as before."""
    handlers = app.error_handler_spec.setdefault(None, {}).setdefault(code, {})
    for exc_class, original in list(handlers.items()):
        def handler(error, _original=original):  # type: ignore[no-untyped-def]
            if request.path.startswith(PREFIX + "/") or request.path == PREFIX:
                return to_response(error)
            return _original(error)

        handlers[exc_class] = handler


def init_api(app: Flask) -> PayoutsApi:
    if "payouts_api" in app.extensions:
        return app.extensions["payouts_api"]  # type: ignore[no-any-return]
    from payouts.web.api.views import bp

    app.config.setdefault("API_TITLE", "payouts")
    app.config.setdefault("API_VERSION", "v1")
    app.config.setdefault("OPENAPI_VERSION", "3.0.3")
    api = PayoutsApi(app, spec_kwargs={
        "info": {"description": "Back-office API of payouts. Authenticate with `Authorization: Bearer <API key>`;"
                                " amounts are integers of yen, quantities and prices decimal strings."},
        "servers": [{"url": "/"}],
    })
    api.spec.components.security_scheme("apiKey", {"type": "http", "scheme": "bearer"})
    api.spec.options["security"] = [{"apiKey": []}]

    _set_up_once(bp)
    api.register_blueprint(bp, url_prefix=PREFIX)

    # Large loss files go to the API's upload endpoint as they do to the staff page's. This runs
    # before the app's own body limits, which would otherwise parse the body with the small cap.
    app.before_request_funcs.setdefault(None, []).insert(0, _upload_limit)
    _register_document(app, api)
    for code in (404, 405):
        _wrap_app_handler(app, code)
    app.extensions["payouts_api"] = api
    return api


def _refuse_nul() -> None:
    """PostgreSQL refuses NUL in text and no field of ours has a use for one: a JSON body that
    carries one (escaped as \\u0000) is refused naming the field, before any service sees it.
    (The app refuses them in query strings and forms already.)"""
    if not request.is_json:
        return
    body = request.get_json(silent=True)
    field = _nul_path(body, "")
    if field is not None:
        raise ApiError(400, "validation_error", f"{field or 'body'}: must not contain NUL characters",
                       field or None)


def _nul_path(value: object, path: str) -> str | None:
    """The dotted path of the first string (or key) holding a NUL character, if any."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return inner
            found = _nul_path(item, inner)
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _nul_path(item, f"{path}.{index}" if path else str(index))
            if found is not None:
                return found
    return None


def _set_up_once(bp) -> None:  # type: ignore[no-untyped-def]
    """The blueprint is one object shared by every app built in this process: set it up once."""
    if getattr(bp, "_payouts_set_up", False):
        return
    bp.before_request(auth.authenticate)
    bp.before_request(_refuse_nul)
    bp.after_request(_record_regulator_view)
    # By status code too: Flask looks handlers up by code across the app before by class,
    # so the app's HTML pages for 400/404/413/429/500 would otherwise answer API requests.
    for error in (ApiError, HTTPException, Exception, *sorted(CODES)):
        bp.register_error_handler(error, _handle)
    csrf.exempt(bp)
    limiter.limit(_rate_limit, key_func=auth.rate_limit_key)(bp)
    bp._payouts_set_up = True


def _upload_limit() -> None:
    """The large cap only for a valid key that may import: the body is spooled to disk while
    it is parsed, which would otherwise happen for anyone, before the key is checked."""
    if request.endpoint == UPLOAD_ENDPOINT:
        key = presented_key()
        if key is not None and Role(key.role) in STAFF_WRITERS:
            request.max_content_length = current_app.extensions["payouts"].config.max_upload_bytes


def _record_regulator_view(response):  # type: ignore[no-untyped-def]
    """A regulator's key reading something is recorded, as a regulator's page view is."""
    who = g.get("api_actor")
    if who is not None and who.role is Role.REGULATOR and request.method == "GET" and response.status_code == 200:
        audit_trail.record_view(context.db(), who, request.full_path.rstrip("?"))
    return response


DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ spec.info.title }} API {{ spec.info.version }}</title>
<link rel="stylesheet" href="{{ url_for('static', filename='app.css') }}"></head>
<body><main class="container">
<h1>{{ spec.info.title }} API {{ spec.info.version }}</h1>
<p>{{ spec.info.description }}</p>
<p>The machine-readable document: <a href="{{ url_for('api_openapi_json') }}">openapi.json</a> (OpenAPI {{ spec.openapi }}).
Every POST accepts an <code>Idempotency-Key</code> header. Errors are
<code>{"error": {"code", "message", "field"}}</code>. Lists take <code>?after=&lt;cursor&gt;&amp;limit=</code>
and answer <code>{"items": [...], "next": cursor-or-null}</code>.</p>
<table><thead><tr><th>Method</th><th>Path</th><th>What</th><th>Parameters</th><th>Responses</th></tr></thead><tbody>
{% for path, item in spec.paths.items() %}{% for method, op in item.items() if method in methods %}
<tr><td><code>{{ method|upper }}</code></td><td><code>{{ path }}</code></td>
<td>{{ op.summary or '' }}{% if op.description %}<br><small>{{ op.description }}</small>{% endif %}</td>
<td>{% for p in op.get('parameters', []) %}<code>{{ p.name }}</code> ({{ p['in'] }}){% if not loop.last %}, {% endif %}{% endfor %}
{% if op.requestBody %}{% for ctype in op.requestBody.content %}<br>body: {{ ctype }}{% endfor %}{% endif %}</td>
<td>{% for code in op.responses %}{{ code }}{% if not loop.last %}, {% endif %}{% endfor %}</td></tr>
{% endfor %}{% endfor %}
</tbody></table></main></body></html>"""


def _register_document(app: Flask, api: PayoutsApi) -> None:
    @app.get(PREFIX + "/openapi.json", endpoint="api_openapi_json")
    @public
    def openapi_json():  # type: ignore[no-untyped-def]
        return api.spec.to_dict()

    @app.get(PREFIX + "/docs", endpoint="api_docs")
    @public
    def docs():  # type: ignore[no-untyped-def]
        spec: dict[str, Any] = api.spec.to_dict()
        return render_template_string(DOCS_PAGE, spec=spec,
                                      methods=("get", "post", "put", "patch", "delete"))
