"""One error shape for the whole API: {"error": {"code", "message", "field"}}.

Every refusal -- our services' domain errors, webargs/marshmallow validation, authentication,
rate limits, unknown routes -- is rendered here, never as an HTML page.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flask import Response
from werkzeug.exceptions import HTTPException

from payouts.domain.errors import (
    ConflictError,
    DomainError,
    NotFoundError,
    PermissionDenied,
    ValidationError,
)
from payouts.services.idempotency import IdempotencyInProgress, IdempotencyKeyReused

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
}


class ApiError(Exception):
    """An error raised by the API layer itself (authentication, cursors, ...)."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = dict(headers or {})


def error_response(status: int, code: str, message: str, field: str | None = None,
                   details: Any = None, headers: Mapping[str, str] | None = None) -> Response:
    body: dict[str, Any] = {"code": code, "message": message, "field": field}
    if details is not None:
        body["details"] = details
    response = Response(json.dumps({"error": body}, ensure_ascii=False), status=status,
                        mimetype="application/json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _first_field(messages: Any, path: tuple[str, ...] = ()) -> tuple[str, str]:
    """The first offending field of a marshmallow error dict, as a dotted path, and its message."""
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            return _first_field(value, (*path, str(key)))
    if isinstance(messages, list) and messages:
        if all(isinstance(m, str) for m in messages):
            return ".".join(path), " ".join(messages)
        return _first_field(messages[0], path)
    return ".".join(path), str(messages)


_LOCATIONS = {"json", "query", "files", "form", "headers", "path", "view_args"}


def _validation(messages: Any) -> tuple[str | None, str]:
    if isinstance(messages, Mapping) and len(messages) == 1 and next(iter(messages)) in _LOCATIONS:
        messages = next(iter(messages.values()))
    field, message = _first_field(messages)
    field = field or None
    return field, f"{field}: {message}" if field else message


def to_response(error: BaseException) -> Response:
    """The JSON error response for any error the API reports."""
    if isinstance(error, ApiError):
        return error_response(error.status, error.code, error.message, error.field, headers=error.headers)
    if isinstance(error, IdempotencyKeyReused):
        return error_response(422, "idempotency_key_reused", str(error), "Idempotency-Key")
    if isinstance(error, IdempotencyInProgress):
        return error_response(409, "idempotency_in_progress", str(error), "Idempotency-Key",
                              headers={"Retry-After": "1"})
    if isinstance(error, ValidationError):
        return error_response(422, "validation_error", str(error), error.field)
    if isinstance(error, NotFoundError):
        return error_response(404, "not_found", str(error))
    if isinstance(error, PermissionDenied):
        return error_response(403, "forbidden", str(error))
    if isinstance(error, ConflictError):
        return error_response(409, "conflict", str(error))
    if isinstance(error, DomainError):
        return error_response(422, "validation_error", str(error))
    if isinstance(error, HTTPException):
        status = error.code or 500
        data = getattr(error, "data", None) or {}
        headers = dict(data.get("headers") or {})
        if status == 429:
            retry = error.get_headers()  # Flask-Limiter's own (Retry-After etc.)
            headers.update({k: v for k, v in retry if k.lower() != "content-type"})
            return error_response(429, "rate_limited", "too many requests for this API key; slow down",
                                  headers=headers)
        if status == 405:
            headers.update({k: v for k, v in error.get_headers() if k.lower() == "allow"})
        messages = data.get("messages") or data.get("errors")
        if messages:
            field, message = _validation(messages)
            return error_response(400 if status == 400 else 422, "validation_error", message, field,
                                  details=messages, headers=headers)
        code = CODES.get(status, "error" if status < 500 else "internal_error")
        message = data.get("message") or error.description or error.name
        if status >= 500:
            message = "internal error; the request was not completed"
        return error_response(status, code, message, headers=headers)
    return error_response(500, "internal_error", "internal error; the request was not completed")
