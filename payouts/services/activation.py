"""Customer activation and the optional second factor (TOTP).

Opening claims creates customer logins without passwords. The exchange delivers each customer
a one-time activation code out of band (its own app, or a letter); with it and their customer
number the customer sets a password. No e-mail ever carries a link: a code typed into the
portal the customer opened themselves cannot be phished the way a link can.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

import pyotp
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from payouts.audit.log import record_event
from payouts.db.models import ActivationCode, Customer, User
from payouts.db.session import transaction
from payouts.db.types import utcnow
from payouts.domain.errors import PermissionDenied, ValidationError
from payouts.domain.roles import STAFF_WRITERS, Actor, Role
from payouts.services.access import require_role
from payouts.services.users import actor_of, hash_password

CODE_LIFETIME = dt.timedelta(days=30)
#: Crockford's base32 without look-alikes (no I, L, O, U): easy to type from a letter.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CODE_GROUPS = 4  # 4 groups of 4 characters: 80 bits
TOTP_ISSUER = "payouts"
_INVALID = "the customer number or activation code is not valid (or the code has expired)"


def _normalise_code(code: str) -> str:
    return "".join(ch for ch in (code or "").upper() if ch.isalnum()).replace("O", "0").replace("I", "1").replace("L", "1")


def _hash(code: str) -> str:
    return hashlib.sha256(_normalise_code(code).encode("ascii", "ignore")).hexdigest()


def issue_activation_code(session: Session, actor: Actor, customer_ref: str) -> str:
    """A fresh code for the customer's login (earlier unused codes stop working). Returned
    once, to be delivered out of band; only its hash is stored."""
    require_role(actor, STAFF_WRITERS, "issue activation codes")
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(4 * _CODE_GROUPS))
    code = "-".join(raw[i:i + 4] for i in range(0, len(raw), 4))
    with transaction(session):
        user = session.scalar(select(User).join(Customer, Customer.id == User.customer_id)
                              .where(Customer.external_ref == customer_ref).with_for_update())
        if user is None:
            raise ValidationError("customer", f"customer {customer_ref!r} has no login yet (claims not open?)")
        now = utcnow()
        session.execute(update(ActivationCode).where(ActivationCode.user_id == user.id,
                                                     ActivationCode.used_at.is_(None),
                                                     ActivationCode.expires_at > now)
                        .values(expires_at=now))
        session.add(ActivationCode(user_id=user.id, code_hash=_hash(code), issued_by_label=actor.label,
                                   created_at=now, expires_at=now + CODE_LIFETIME))
        record_event(session, actor, "customer.activation_code_issued", "user", user.id,
                     f"Activation code issued for customer {customer_ref}",
                     {"expires_at": (now + CODE_LIFETIME).isoformat()})
    return code


def activate_account(session: Session, *, username: str, code: str, password: str) -> User:
    """Set a customer's password with their activation code; the code then stops working and
    any earlier session ends. One error for every wrong input, so nothing can be probed."""
    with transaction(session):
        user = session.scalar(select(User).where(User.username == (username or "").strip().lower(),
                                                 User.role == Role.CUSTOMER.value)
                              .with_for_update().execution_options(populate_existing=True))
        now = utcnow()
        row = None
        if user is not None:
            row = session.scalar(select(ActivationCode).where(
                ActivationCode.user_id == user.id, ActivationCode.code_hash == _hash(code),
                ActivationCode.used_at.is_(None), ActivationCode.expires_at > now))
        if user is None or row is None or not user.active:
            raise ValidationError("code", _INVALID)
        user.password_hash = hash_password(password)
        user.session_version += 1
        row.used_at = now
        record_event(session, actor_of(user), "customer.activated", "user",
                     user.id, f"Customer login {user.username} activated", {"activation_code_id": row.id})
    return user


# --- TOTP -----------------------------------------------------------------------------------


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, username: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=TOTP_ISSUER)


def _accepted_step(secret: str, code: str, last_step: int | None, now: dt.datetime) -> int | None:
    """The time step a code belongs to (this one or a neighbour, for clock drift), unless used."""
    code = "".join(ch for ch in (code or "") if ch.isdigit())
    if len(code) != 6:
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in (current, current - 1, current + 1):
        if last_step is not None and step <= last_step:
            continue
        if secrets.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def enable_totp(session: Session, actor: Actor, secret: str, code: str) -> None:
    """Turn on the second factor once the user shows a code from their authenticator."""
    if actor.user_id is None:
        raise PermissionDenied("only a login can add a second factor")
    with transaction(session):
        user = session.get(User, actor.user_id, with_for_update=True, populate_existing=True)
        assert user is not None
        if user.totp_secret:
            raise ValidationError("code", "a second factor is already on")
        step = _accepted_step(secret, code, None, utcnow())
        if step is None:
            raise ValidationError("code", "that code does not match; check the authenticator's clock and try again")
        user.totp_secret = secret
        user.totp_last_step = step
        record_event(session, actor, "user.totp_enabled", "user", user.id, f"{user.username} turned on a second factor")


def disable_totp(session: Session, actor: Actor, code: str) -> None:
    if actor.user_id is None:
        raise PermissionDenied("only a login has a second factor")
    with transaction(session):
        user = session.get(User, actor.user_id, with_for_update=True, populate_existing=True)
        assert user is not None
        if not user.totp_secret:
            raise ValidationError("code", "no second factor is on")
        if _accepted_step(user.totp_secret, code, user.totp_last_step, utcnow()) is None:
            raise ValidationError("code", "that code does not match")
        user.totp_secret = None
        user.totp_last_step = None
        user.session_version += 1
        record_event(session, actor, "user.totp_disabled", "user", user.id, f"{user.username} turned off the second factor")


#: Wrong codes in a row before every pending second step of the user ends.
MAX_TOTP_FAILURES = 5


def verify_totp(session: Session, user_id: int, code: str) -> bool:
    """Check a login's second factor; a code is accepted once (no replay within its window).

    Wrong codes are counted on the user's record. The MAX_TOTP_FAILURES-th in a row moves the
    user's session version on, which ends every login waiting for its second step (and every
    session): the password must be entered again, whatever cookie the guesser replays.
    """
    with transaction(session):
        # populate_existing: FOR UPDATE alone does not refresh a copy this session already holds
        # (the login's own request loaded it), and a stale last step would let a code be replayed.
        user = session.get(User, user_id, with_for_update=True, populate_existing=True)
        if user is None or not user.totp_secret:
            return False
        step = _accepted_step(user.totp_secret, code, user.totp_last_step, utcnow())
        if step is None:
            user.totp_failures += 1
            if user.totp_failures >= MAX_TOTP_FAILURES:
                user.totp_failures = 0
                user.session_version += 1
                record_event(session, actor_of(user), "user.totp_locked", "user",
                             user.id, f"{MAX_TOTP_FAILURES} wrong second-factor codes in a row for {user.username}:"
                             " the password must be entered again", {"failures": MAX_TOTP_FAILURES})
            return False
        user.totp_last_step = step
        user.totp_failures = 0
    return True
