"""The Idempotency-Key header on every API POST (payouts.services.idempotency holds the rules)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Response, current_app, make_response, request
from werkzeug.exceptions import HTTPException

from payouts.domain.errors import DomainError
from payouts.services import idempotency
from payouts.web import context
from payouts.web.api import auth
from payouts.web.api.errors import ApiError, to_response

F = TypeVar("F", bound=Callable[..., Any])
HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
HEADER_DOC = {
    "in": "header",
    "name": HEADER,
    "required": False,
    "description": "Makes the POST safe to retry: the same key with the same request returns the first"
                   " response (header Idempotent-Replayed: true) without doing anything again; the same key"
                   " with a different request is refused (422 idempotency_key_reused).",
    "schema": {"type": "string", "minLength": 1, "maxLength": idempotency.MAX_KEY},
}


def _request_fingerprint() -> str:
    """Method, path and body; a multipart body is taken as its fields and each file's hash, so
    a large upload is hashed from its spooled file, never read into memory."""
    path = request.full_path.rstrip("?")
    if request.mimetype == "multipart/form-data":
        digest = hashlib.sha256()
        for name, value in sorted(request.form.items(multi=True)):
            digest.update(f"f:{len(name)}:{name}:{len(value)}:{value}".encode())
        for name, upload in sorted(request.files.items(multi=True), key=lambda item: item[0]):
            file_hash = hashlib.sha256()
            upload.stream.seek(0)
            for chunk in iter(lambda: upload.stream.read(1 << 20), b""):
                file_hash.update(chunk)
            upload.stream.seek(0)
            digest.update(f"u:{name}:{upload.filename}:{file_hash.hexdigest()}".encode())
        return idempotency.fingerprint(request.method, path, digest.hexdigest().encode())
    return idempotency.fingerprint(request.method, path, request.get_data(cache=True))


def idempotent(view: F) -> F:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = request.headers.get(HEADER)
        if key is None:
            return view(*args, **kwargs)
        session = context.db()
        try:
            idempotency.check_key(key)
        except DomainError as exc:
            raise ApiError(400, "validation_error", str(exc), HEADER) from None
        outcome = idempotency.begin(session, auth.current_key().id, key, _request_fingerprint())
        if isinstance(outcome, idempotency.Replay):
            replay = Response(outcome.body, status=outcome.status, mimetype="application/json")
            replay.headers[REPLAYED] = "true"
            return replay
        try:
            response = make_response(view(*args, **kwargs))
        except (DomainError, ApiError) as exc:
            response = to_response(exc)
        except HTTPException as exc:
            if (exc.code or 500) >= 500:
                session.rollback()
                idempotency.release(session, outcome.record_id)
                raise
            response = to_response(exc)
        except BaseException:
            session.rollback()
            idempotency.release(session, outcome.record_id)
            raise
        session.rollback()  # whatever the view left open; its work is committed by services
        if response.status_code >= 500:
            idempotency.release(session, outcome.record_id)
        else:
            idempotency.finish(session, outcome.record_id, response.status_code, response.get_data(as_text=True))
        current_app.logger.debug("idempotency key %s stored with %s", key, response.status_code)
        return response

    wrapper._payouts_idempotent = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]
