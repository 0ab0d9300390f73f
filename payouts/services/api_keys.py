"""API keys: created by admins and shown once, stored as a SHA-256, one role each, revocable.

A key is ``<prefix><rest>``: 32 random bytes, URL-safe base64. Its first 8 characters are
kept in clear so people can tell keys apart in lists; the whole secret is stored only as its
hash, so a database leak gives nobody a working key. The secret has 256 bits of entropy, so a
plain hash (no slow KDF) is right, and authentication is one indexed lookup.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from payouts.audit.log import record_event
from payouts.db.models import ApiKey
from payouts.db.session import transaction
from payouts.db.types import utcnow
from payouts.domain.errors import ConflictError, NotFoundError, ValidationError
from payouts.domain.roles import Actor, Role
from payouts.services.access import require_role

#: The roles a key may act as: every back-office role; never a customer.
KEY_ROLES = (Role.STAFF, Role.APPROVER, Role.ADMIN, Role.REGULATOR)
MAX_NAME = 100
PREFIX_LENGTH = 8
#: last_used_at is written at most this often per key, so reads do not become writes.
LAST_USED_GRANULARITY = dt.timedelta(seconds=60)


@dataclass(frozen=True)
class CreatedKey:
    key: ApiKey
    #: The secret: shown to its creator once, never stored.
    secret: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _role(value: str | Role) -> Role:
    try:
        role = Role(value)
    except ValueError:
        raise ValidationError("role", f"unknown role {value!r}") from None
    if role not in KEY_ROLES:
        raise ValidationError("role", f"must be one of {', '.join(r.value for r in KEY_ROLES)}")
    return role


def create_key(session: Session, actor: Actor, *, name: str, role: str | Role) -> CreatedKey:
    require_role(actor, {Role.ADMIN}, "create API keys")
    name = (name or "").strip()
    if not name or len(name) > MAX_NAME or any(ord(ch) < 0x20 for ch in name):
        raise ValidationError("name", f"is required (at most {MAX_NAME} printable characters)")
    chosen = _role(role)
    secret = secrets.token_urlsafe(32)
    with transaction(session):
        if session.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None:
            raise ValidationError("name", f"an API key named {name!r} already exists")
        key = ApiKey(name=name, prefix=secret[:PREFIX_LENGTH], key_hash=hash_secret(secret), role=chosen.value,
                     created_by_label=actor.label, created_at=utcnow())
        session.add(key)
        session.flush()
        record_event(session, actor, "api_key.created", "api_key", key.id,
                     f"API key {name!r} ({key.prefix}…) created with role {chosen.value}",
                     {"name": name, "prefix": key.prefix, "role": chosen.value})
    return CreatedKey(key, secret)


def list_keys(session: Session, actor: Actor) -> list[ApiKey]:
    require_role(actor, {Role.ADMIN}, "list API keys")
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def revoke_key(session: Session, actor: Actor, key_id: int) -> ApiKey:
    require_role(actor, {Role.ADMIN}, "revoke API keys")
    with transaction(session):
        key = session.scalar(select(ApiKey).where(ApiKey.id == key_id).with_for_update())
        if key is None:
            raise NotFoundError(f"no API key #{key_id}")
        if key.revoked_at is not None:
            raise ConflictError(f"API key #{key_id} is already revoked")
        key.revoked_at = utcnow()
        record_event(session, actor, "api_key.revoked", "api_key", key.id,
                     f"API key {key.name!r} ({key.prefix}…) revoked", {"name": key.name, "prefix": key.prefix})
    return key


def authenticate(session: Session, secret: str) -> ApiKey | None:
    """The live key with this secret, or None; records when it was last used."""
    if not secret or len(secret) > 200:
        return None
    digest = hash_secret(secret)
    key = session.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
    # The lookup is by hash; the constant-time compare is belt and braces.
    if key is None or not hmac.compare_digest(key.key_hash, digest) or key.revoked_at is not None:
        session.rollback()
        return None
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_GRANULARITY:
        with transaction(session):
            key.last_used_at = now
    else:
        session.rollback()
    return key


def actor_for(key: ApiKey, request_id: str | None = None) -> Actor:
    """The actor a key acts as: its role, named after the key in the audit trail."""
    return Actor(label=f"api-key:{key.name}", role=Role(key.role), user_id=None, request_id=request_id)
