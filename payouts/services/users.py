"""Logins: argon2 password hashes, authentication, and user administration."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from payouts.audit.log import record_event
from payouts.db.models import Customer, User
from payouts.db.session import transaction
from payouts.db.types import utcnow
from payouts.domain.errors import NotFoundError, ValidationError
from payouts.domain.roles import Actor, Role
from payouts.services.access import require_role

MIN_PASSWORD_LENGTH = 12
_hasher = PasswordHasher()
# Verified against when the username is unknown, so both paths cost one argon2 verification
# and response time does not reveal which usernames exist.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError("password", f"must be at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The active user with this username and password, or None. Rehashes outdated hashes."""
    user = session.scalar(select(User).where(User.username == username.strip().lower()))
    stored = user.password_hash if user is not None and user.active else None
    try:
        _hasher.verify(stored or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if stored is None or user is None:
        return None
    with transaction(session):
        if _hasher.check_needs_rehash(stored):
            user.password_hash = _hasher.hash(password)
        user.last_login_at = utcnow()
    return user


def load_user(session: Session, user_id: int) -> User | None:
    user = session.get(User, user_id)
    return user if user is not None and user.active else None


def actor_of(user: User) -> Actor:
    """The user acting in their own name, as the audit trail records them."""
    return Actor(user.username, Role(user.role), user.id)


def create_user(
    session: Session,
    actor: Actor,
    *,
    username: str,
    display_name: str,
    role: Role,
    password: str | None,
    customer_ref: str | None = None,
) -> User:
    """Create a login. Customers are linked to their customer record by reference."""
    require_role(actor, {Role.ADMIN}, "create users")
    username = username.strip().lower()
    if not username or len(username) > 120:
        raise ValidationError("username", "is required (at most 120 characters)")
    with transaction(session):
        if session.scalar(select(User.id).where(User.username == username)) is not None:
            raise ValidationError("username", f"{username!r} is taken")
        customer_id = None
        if role is Role.CUSTOMER:
            customer = session.scalar(select(Customer).where(Customer.external_ref == customer_ref))
            if customer is None:
                raise NotFoundError(f"no customer {customer_ref!r}")
            customer_id = customer.id
        user = User(
            username=username,
            display_name=display_name.strip() or username,
            role=role.value,
            password_hash=hash_password(password) if password else None,
            customer_id=customer_id,
            active=True,
            session_version=1,
        )
        session.add(user)
        session.flush()
        record_event(
            session,
            actor,
            "user.created",
            "user",
            user.id,
            f"User {username} created with role {role.value}",
            {"username": [None, username], "role": [None, role.value]},
        )
    return user


def end_sessions(session: Session, user_id: int) -> None:
    """Log a user out everywhere: sessions live in signed cookies that carry the user's session
    version, so moving it on is what makes a copied cookie worthless after logout."""
    with transaction(session):
        session.execute(update(User).where(User.id == user_id).values(session_version=User.session_version + 1))


def set_password(session: Session, actor: Actor, username: str, password: str) -> User:
    """Set a password and end the user's other sessions (their session version moves on)."""
    require_role(actor, {Role.ADMIN}, "set passwords")
    with transaction(session):
        user = session.scalar(select(User).where(User.username == username.strip().lower()))
        if user is None:
            raise NotFoundError(f"no user {username!r}")
        user.password_hash = hash_password(password)
        user.session_version += 1
        record_event(
            session, actor, "user.password_set", "user", user.id, f"Password of {user.username} set"
        )
    return user
