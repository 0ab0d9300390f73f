"""Claims: opening them from the imported ledger, what each side may see, and every move.

Customers accept, dispute or withdraw their own claim; staff approve, reject, ask for
information or adjust positions (a new version). The state machine and four-eyes rule live in
payouts.domain.claims; this module loads, checks the actor, writes the change and its audit
event in one transaction. Every write names the row version the actor saw, so two people acting
on one claim at once cannot both win: the second is told the claim changed.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import func, insert, literal, or_, select, update
from sqlalchemy.orm import Session, joinedload
from sqlalchemy.orm.exc import StaleDataError

from payouts.audit.chain import canonical_json
from payouts.audit.log import record_event, record_events
from payouts.db.bulk import bulk_insert, raw_timestamp
from payouts.db.models import (
    Asset,
    Claim,
    ClaimApproval,
    ClaimDispute,
    ClaimPosition,
    ClaimVersion,
    Customer,
    Incident,
    LossImport,
    LossPosition,
    Notice,
    ReferencePrice,
    User,
)
from payouts.db.session import transaction
from payouts.db.types import UTCDateTime, utcnow
from payouts.domain.claims import (
    ClaimAction,
    ClaimStatus,
    FourEyesPolicy,
    check_action,
    check_actor_may,
    check_approval,
    next_status,
)
from payouts.domain.errors import ConflictError, NotFoundError, PermissionDenied, ValidationError
from payouts.domain.incidents import IncidentStatus
from payouts.domain.money import format_amount, parse_amount
from payouts.domain.roles import BACK_OFFICE_READERS, STAFF_WRITERS, Actor, Role
from payouts.domain.valuation import ValuedLine, value_positions
from payouts.services import destinations
from payouts.services.access import require_role
from payouts.services.incidents import claim_move_under_way, ensure_not_allocated, find_incident
from payouts.services.notices import notify, notify_many

MAX_REASON = 1000
CLAIM_REVIEWERS = frozenset({Role.STAFF, Role.APPROVER})


# --- reading --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimLine:
    asset: str
    amount: str  # whole units, exact
    price_jpy: Decimal
    price_source: str
    value_exact: str


@dataclass(frozen=True)
class ClaimDetail:
    claim: Claim
    incident: Incident
    customer: Customer
    lines: list[ClaimLine]
    total_jpy: int
    approvals: list[ClaimApproval]
    approvals_required: int
    disputes: list[ClaimDispute]
    versions: list[ClaimVersion]
    #: Notices about this claim (its timeline); every one is written with a change of the claim.
    notices: list[Notice] = field(default_factory=list)


def claim_positions(session: Session, claim: Claim) -> list[tuple[str, int]]:
    """(asset, minor units) of the claim's current version: the ledger's, or the adjustment's."""
    if claim.version == 1:
        rows = session.execute(
            select(LossPosition.asset_code, LossPosition.amount_minor)
            .where(LossPosition.incident_id == claim.incident_id,
                   LossPosition.customer_id == claim.customer_id)
            .order_by(LossPosition.asset_code))
    else:
        rows = session.execute(
            select(ClaimPosition.asset_code, ClaimPosition.amount_minor)
            .where(ClaimPosition.claim_id == claim.id, ClaimPosition.version == claim.version)
            .order_by(ClaimPosition.asset_code))
    return [(asset, amount) for asset, amount in rows]


#: Prices of incidents whose claims are open: frozen from then on (ensure_claims_not_open), so
#: a process may keep them; the portal reads them on every claim page.
_FROZEN_PRICES: dict[tuple[str, int], dict[str, tuple[Decimal, str, int]]] = {}


def _prices(session: Session, incident_id: int, *, frozen: bool = False) -> dict[str, tuple[Decimal, str, int]]:
    """asset -> (price, source, decimals) for every priced asset of the incident; ``frozen``
    when the caller knows the incident's claims are open (its prices can no longer change)."""
    # Keyed by database too: one process may serve several (tests, tools).
    key = (session.get_bind().url.render_as_string(hide_password=True), incident_id)
    if frozen and key in _FROZEN_PRICES:
        return _FROZEN_PRICES[key]
    rows = session.execute(
        select(ReferencePrice.asset_code, ReferencePrice.price_jpy, ReferencePrice.source, Asset.decimals)
        .join(Asset, Asset.code == ReferencePrice.asset_code)
        .where(ReferencePrice.incident_id == incident_id))
    prices = {code: (price, source, decimals) for code, price, source, decimals in rows}
    if frozen:
        if len(_FROZEN_PRICES) > 1000:
            _FROZEN_PRICES.clear()
        _FROZEN_PRICES[key] = prices
    return prices


def _value(positions: Iterable[tuple[str, int]], prices: Mapping[str, tuple[Decimal, str, int]]
           ) -> tuple[list[ValuedLine], int]:
    items = []
    for asset, amount in positions:
        if asset not in prices:
            raise ValidationError("prices", f"no reference price fixed for {asset}")
        price, _source, decimals = prices[asset]
        items.append((asset, amount, decimals, price))
    return value_positions(items)


def claim_lines(session: Session, claim: Claim) -> list[ClaimLine]:
    """The current version's positions valued line by line, exactly as allocation values them."""
    # A claim exists only once its incident's claims are open, when its prices are frozen.
    prices = _prices(session, claim.incident_id, frozen=True)
    valued, _total = _value(claim_positions(session, claim), prices)
    return [ClaimLine(v.asset, format_amount(v.amount_minor, v.decimals), v.price, prices[v.asset][1],
                      v.value_exact) for v in valued]


#: What a claim page shows besides the claim row, per (database, claim, row version). Every
#: change to a claim's positions, approvals, disputes, versions or notices moves its row
#: version, so an entry can never be stale; a launch-day surge of customers re-reading their
#: claims costs one small query each instead of seven.
_PARTS: OrderedDict[tuple[str, int, int], tuple] = OrderedDict()  # type: ignore[type-arg]
_PARTS_LOCK = threading.Lock()
_PARTS_MAX = 20_000


def _parts(session: Session, claim: Claim) -> tuple:  # type: ignore[type-arg]
    key = (session.get_bind().url.render_as_string(hide_password=True), claim.id, claim.row_version)
    with _PARTS_LOCK:
        if key in _PARTS:
            _PARTS.move_to_end(key)
            return _PARTS[key]
    lines = claim_lines(session, claim)
    approvals = list(session.scalars(
        select(ClaimApproval).where(ClaimApproval.claim_id == claim.id).order_by(ClaimApproval.id)))
    disputes = list(session.scalars(
        select(ClaimDispute).where(ClaimDispute.claim_id == claim.id).order_by(ClaimDispute.id)))
    # Most claims were never adjusted: no version rows to look for.
    versions = [] if claim.version == 1 else list(session.scalars(
        select(ClaimVersion).where(ClaimVersion.claim_id == claim.id).order_by(ClaimVersion.version)))
    notices = list(session.scalars(select(Notice).where(Notice.claim_id == claim.id)
                                   .order_by(Notice.created_at, Notice.id)))
    for row in (*approvals, *disputes, *versions, *notices):
        session.expunge(row)  # shared by later requests: detached, read-only
    parts = (lines, approvals, disputes, versions, notices)
    with _PARTS_LOCK:
        _PARTS[key] = parts
        while len(_PARTS) > _PARTS_MAX:
            _PARTS.popitem(last=False)
    return parts


def _detail(session: Session, claim: Claim, policy: FourEyesPolicy) -> ClaimDetail:
    lines, approvals, disputes, versions, notices = _parts(session, claim)
    return ClaimDetail(claim, claim.incident, claim.customer, lines, claim.total_jpy, approvals,
                       policy.approvals_required(claim.total_jpy), disputes, versions, notices)


def customer_id_of(session: Session, actor: Actor) -> int:
    """The customer behind a customer login; never one named by the caller."""
    if actor.role is not Role.CUSTOMER or actor.user_id is None:
        raise PermissionDenied("only customers have claims of their own")
    if actor.customer_id is not None:
        return actor.customer_id  # loaded with the login, from the server's own record
    customer_id = session.scalar(select(User.customer_id).where(User.id == actor.user_id))
    if customer_id is None:
        raise PermissionDenied("this login is not linked to a customer")
    return customer_id


def my_claims(session: Session, actor: Actor) -> list[Claim]:
    """The acting customer's claims, newest incident first."""
    customer_id = customer_id_of(session, actor)
    return list(session.scalars(
        select(Claim).join(Incident, Incident.id == Claim.incident_id)
        .where(Claim.customer_id == customer_id).order_by(Incident.occurred_at.desc())))


def _load(session: Session, claim_id: int, *, lock: bool = False) -> Claim:
    # populate_existing: a long-lived session (the CLI, a test) may hold an older copy of the
    # row, e.g. after bulk_approve's set-based UPDATE; decide on what the database holds.
    query = select(Claim).where(Claim.id == claim_id).execution_options(populate_existing=True)
    if lock:
        query = query.with_for_update()
    claim = session.scalar(query)
    if claim is None:
        raise NotFoundError(f"no claim #{claim_id}")
    return claim


def own_claim(session: Session, actor: Actor, claim_id: int) -> Claim:
    """A customer's own claim; another customer's is reported as missing, not as forbidden,
    so ids cannot be probed."""
    customer_id = customer_id_of(session, actor)
    claim = session.scalar(select(Claim).where(Claim.id == claim_id, Claim.customer_id == customer_id)
                           .options(joinedload(Claim.incident), joinedload(Claim.customer))
                           .execution_options(populate_existing=True))
    if claim is None:
        raise NotFoundError(f"no claim #{claim_id}")
    return claim


def my_claim(session: Session, actor: Actor, claim_id: int, policy: FourEyesPolicy) -> ClaimDetail:
    return _detail(session, own_claim(session, actor, claim_id), policy)


def my_claim_page(session: Session, actor: Actor, claim_id: int,
                  policy: FourEyesPolicy) -> tuple[ClaimDetail, str, int]:
    """my_claim with the portal's badges (the account's state, unread notices) read in the same
    round trip: the claim page is the portal's busiest."""
    customer_id = customer_id_of(session, actor)
    row = session.execute(
        select(Claim, *destinations.badge_columns(customer_id))
        .where(Claim.id == claim_id, Claim.customer_id == customer_id)
        .options(joinedload(Claim.incident), joinedload(Claim.customer))
        .execution_options(populate_existing=True)).first()
    if row is None:
        raise NotFoundError(f"no claim #{claim_id}")
    claim, *shown = row
    return (_detail(session, claim, policy), *destinations.badges(*shown))


def claim_for_staff(session: Session, actor: Actor, claim_id: int, policy: FourEyesPolicy) -> ClaimDetail:
    require_role(actor, BACK_OFFICE_READERS, "read claims")
    return _detail(session, _load(session, claim_id), policy)


# --- opening --------------------------------------------------------------------------------


def open_claims(session: Session, actor: Actor, incident_ref: str) -> int:
    """Open the incident to its customers: one claim per affected customer, valued at the fixed
    reference prices, and a customer login without a password for each who has none (they
    activate it with a one-time code). Prices and imports are frozen from here on. Returns the
    number of claims opened."""
    require_role(actor, STAFF_WRITERS, "open claims")
    with transaction(session):
        incident = find_incident(session, incident_ref, lock=True)
        if incident.status != IncidentStatus.RECORDED.value:
            raise ConflictError(f"incident {incident.ref} already has its claims open ({incident.status})")
        ensure_not_allocated(session, incident, "claims")
        prices = _prices(session, incident.id)
        now = utcnow()
        stamp = raw_timestamp(session, now)
        opened = 0
        # A batch of customers at a time, read in full before it is written: on PostgreSQL the
        # write is a COPY on this same connection, and reading a server-side cursor while a
        # COPY is in progress would wait for it forever.
        for batch in _customer_batches(session, incident.id):
            rows = [_claim_row(incident.id, customer_id, positions, prices, stamp)
                    for customer_id, positions in batch]
            bulk_insert(session, "claims", CLAIM_COLUMNS, rows)
            opened += len(rows)
        if opened == 0:
            raise ValidationError("customers", f"incident {incident.ref} has no imported losses")
        logins = _create_customer_logins(session, incident.id, now)
        incident.status = IncidentStatus.CLAIMS_OPEN.value
        record_event(session, actor, "incident.claims_opened", "incident", incident.ref,
                     f"Opened {opened} claims for incident {incident.ref}",
                     {"status": [IncidentStatus.RECORDED.value, IncidentStatus.CLAIMS_OPEN.value],
                      "claims": opened, "customer_logins_created": logins})
    return opened


_OPEN_BATCH = 10_000  # customers per read-then-write round in open_claims


def _customer_batches(session: Session, incident_id: int, size: int | None = None
                      ) -> Iterator[list[tuple[int, list[tuple[str, int]]]]]:
    """The incident's loss positions grouped by customer, ``size`` customers at a time (keyed by
    customer id, so memory stays bounded however many customers there are)."""
    size = size or _OPEN_BATCH
    after = 0
    while True:
        ids = list(session.scalars(
            select(LossPosition.customer_id).where(LossPosition.incident_id == incident_id,
                                                   LossPosition.customer_id > after)
            .group_by(LossPosition.customer_id).order_by(LossPosition.customer_id).limit(size)))
        if not ids:
            return
        grouped: dict[int, list[tuple[str, int]]] = {}
        for customer_id, asset, amount in session.execute(
                select(LossPosition.customer_id, LossPosition.asset_code, LossPosition.amount_minor)
                .where(LossPosition.incident_id == incident_id,
                       LossPosition.customer_id.between(ids[0], ids[-1]))
                .order_by(LossPosition.customer_id, LossPosition.asset_code)):
            grouped.setdefault(customer_id, []).append((asset, amount))
        yield sorted(grouped.items())
        after = ids[-1]


CLAIM_COLUMNS = ("incident_id", "customer_id", "status", "version", "total_jpy", "status_reason",
                 "row_version", "created_at", "updated_at")


def _claim_row(incident_id: int, customer_id: int, positions: list[tuple[str, int]],
               prices: Mapping[str, tuple[Decimal, str, int]], stamp: object) -> tuple[object, ...]:
    _lines, total = _value(positions, prices)
    return (incident_id, customer_id, ClaimStatus.OPEN.value, 1, total, "", 1, stamp, stamp)


def _create_customer_logins(session: Session, incident_id: int, now: dt.datetime) -> int:
    """Customer logins (no password) for the incident's customers who have none, set-based."""
    affected = select(Claim.customer_id).where(Claim.incident_id == incident_id)
    missing = (
        select(func.lower(Customer.external_ref), Customer.name, literal(Role.CUSTOMER.value),
               Customer.id, literal(True), literal(1), literal(now, UTCDateTime))
        .where(Customer.id.in_(affected))
        .where(~select(User.id).where(User.customer_id == Customer.id).exists())
    )
    taken = session.scalar(
        select(func.count()).select_from(User).join(Customer, func.lower(Customer.external_ref) == User.username)
        .where(Customer.id.in_(affected), User.customer_id.is_distinct_from(Customer.id)))
    if taken:
        raise ConflictError(f"{taken} customer reference(s) clash with existing usernames; rename those logins first")
    twins = session.scalar(select(func.count()).select_from(
        select(func.lower(Customer.external_ref)).where(Customer.id.in_(affected))
        .group_by(func.lower(Customer.external_ref)).having(func.count() > 1).subquery()))
    if twins:
        raise ConflictError(f"{twins} customer reference(s) differ only in upper and lower case, so their"
                            " logins would share a username; merge or rename those customers first")
    # Counted from RETURNING: the driver's rowcount for INSERT ... SELECT is -1 on psycopg.
    created = session.scalars(insert(User).from_select(
        ["username", "display_name", "role", "customer_id", "active", "session_version", "created_at"], missing)
        .returning(User.id))
    return sum(1 for _ in created)


# --- moves ----------------------------------------------------------------------------------


def _hold_off_allocation(session: Session, claim_id: int) -> None:
    """Declare a move of the claim under way for the rest of the transaction (PostgreSQL).

    Committing an allocation waits for the moves under way and pays what they left, and a
    move that waited for a commit then finds the run and is refused
    (incidents.hold_claims_still). Without it, a move checked before the commit and saved
    after it was lost to the run (an approval left out, or an adjusted claim paid its old
    amount). Taken before the claim's own row lock; a commit takes it after the incident's
    row and locks no claim, so the two never deadlock. The incident is found by the same
    statement (a missing claim finds none, takes nothing, and is reported by the move).
    """
    claim_move_under_way(session, select(Claim.incident_id).where(Claim.id == claim_id).scalar_subquery())


def _customer_move(session: Session, actor: Actor, claim_id: int, row_version: int) -> Claim:
    """The customer's own claim, ready to move: under way for any commit, and unchanged since
    they looked at it."""
    _hold_off_allocation(session, claim_id)
    claim = own_claim(session, actor, claim_id)
    _checked(session, claim, row_version)
    return claim


def _checked(session: Session, claim: Claim, row_version: int | None) -> None:
    """Refuse to act on a claim that changed since the actor looked at it."""
    if row_version is not None and claim.row_version != row_version:
        raise ConflictError(
            f"claim #{claim.id} was changed by someone else since you opened it; reload and try again")
    ensure_not_allocated(session, claim.incident, "claims")


def _save(session: Session, claim: Claim) -> None:
    """Flush the claim's UPDATE now: it takes the row lock and, if another transaction moved
    the row version meanwhile, fails here instead of at commit."""
    claim_id = claim.id  # read now: after a failed flush the object cannot be read any more
    claim.updated_at = utcnow()
    try:
        session.flush()
    except StaleDataError:
        raise ConflictError(
            f"claim #{claim_id} was changed by someone else at the same time; reload and try again") from None


@contextmanager
def _stale_is_conflict(claim_id: int) -> Iterator[None]:
    """A claim row changed under us (the row version moved) at any flush of the action, not
    only in _save: an UPDATE statement autoflushes the claim earlier. Tell the actor the same."""
    try:
        yield
    except StaleDataError:
        raise ConflictError(
            f"claim #{claim_id} was changed by someone else at the same time; reload and try again") from None


def _move(session: Session, actor: Actor, claim: Claim, action: ClaimAction, new_status: ClaimStatus,
          summary: str, details: dict | None = None) -> None:
    before = claim.status
    claim.status = new_status.value
    _save(session, claim)
    record_event(session, actor, f"claim.{_PAST[action]}", "claim", claim.id, summary,
                 {"status": [before, new_status.value], **(details or {})})


_PAST = {
    ClaimAction.ACCEPT: "accepted",
    ClaimAction.DISPUTE: "disputed",
    ClaimAction.WITHDRAW: "withdrawn",
    ClaimAction.APPROVE: "approved",
    ClaimAction.REJECT: "rejected",
    ClaimAction.REQUEST_INFORMATION: "information_requested",
    ClaimAction.ADJUST: "adjusted",
    ClaimAction.MARK_PAID: "paid",
}


def accept_claim(session: Session, actor: Actor, claim_id: int, row_version: int) -> Claim:
    check_actor_may(actor.role, ClaimAction.ACCEPT)
    with _stale_is_conflict(claim_id), transaction(session):
        claim = _customer_move(session, actor, claim_id, row_version)
        status = next_status(claim.status, ClaimAction.ACCEPT)
        claim.accepted_at = utcnow()
        claim.status_reason = ""
        _move(session, actor, claim, ClaimAction.ACCEPT, status,
              f"Customer accepted claim #{claim.id} version {claim.version} for {claim.total_jpy} yen",
              {"version": claim.version, "total_jpy": claim.total_jpy})
    return claim


def withdraw_claim(session: Session, actor: Actor, claim_id: int, row_version: int) -> Claim:
    check_actor_may(actor.role, ClaimAction.WITHDRAW)
    with _stale_is_conflict(claim_id), transaction(session):
        claim = _customer_move(session, actor, claim_id, row_version)
        status = next_status(claim.status, ClaimAction.WITHDRAW)
        _move(session, actor, claim, ClaimAction.WITHDRAW, status, f"Customer withdrew claim #{claim.id}")
    return claim


def _reason(text: str, field: str = "reason") -> str:
    text = (text or "").strip()
    if not text:
        raise ValidationError(field, "is required")
    if len(text) > MAX_REASON:
        raise ValidationError(field, f"must be at most {MAX_REASON} characters")
    return text


def parse_corrections(session: Session, claim: Claim, corrected: Mapping[str, str]) -> dict[str, int]:
    """Amounts in whole units per asset, checked against the assets' decimals: {asset: minor}."""
    decimals = dict(session.execute(select(Asset.code, Asset.decimals)).all())
    result: dict[str, int] = {}
    for asset, text in corrected.items():
        text = (text or "").strip()
        if not text:
            continue
        if asset not in decimals:
            raise ValidationError(f"corrected.{asset}", f"unknown asset {asset!r}")
        result[asset] = parse_amount(text, decimals[asset], field=f"corrected.{asset}")
    return result


def dispute_claim(session: Session, actor: Actor, claim_id: int, row_version: int, *, reason: str,
                  corrected: Mapping[str, str], evidence: Iterable = ()) -> ClaimDispute:
    """Dispute the current version with a reason, the amounts the customer says are right, and
    evidence files (``evidence``: StoredEvidence from payouts.services.evidence, saved first)."""
    from payouts.services.evidence import attach  # evidence imports claims for ownership checks

    check_actor_may(actor.role, ClaimAction.DISPUTE)
    reason = _reason(reason)
    with _stale_is_conflict(claim_id), transaction(session):
        claim = _customer_move(session, actor, claim_id, row_version)
        status = next_status(claim.status, ClaimAction.DISPUTE)
        amounts = parse_corrections(session, claim, corrected)
        decimals = dict(session.execute(select(Asset.code, Asset.decimals)).all())
        shown = {a: format_amount(m, decimals[a]) for a, m in sorted(amounts.items())}
        dispute = ClaimDispute(claim_id=claim.id, version=claim.version, reason=reason,
                               corrected=canonical_json(shown), created_by_id=actor.user_id)
        session.add(dispute)
        session.flush()
        files = attach(session, actor, claim, dispute, evidence)
        claim.status_reason = ""
        _move(session, actor, claim, ClaimAction.DISPUTE, status,
              f"Customer disputed claim #{claim.id} version {claim.version}",
              {"version": claim.version, "reason": reason, "corrected": shown,
               "evidence": [f.sha256 for f in files]})
    return dispute


def _staff_move(session: Session, actor: Actor, claim_id: int, row_version: int, action: ClaimAction) -> Claim:
    require_role(actor, CLAIM_REVIEWERS, f"{action.value.replace('_', ' ')} claims")
    check_actor_may(actor.role, action)
    _hold_off_allocation(session, claim_id)
    claim = _load(session, claim_id, lock=True)
    _checked(session, claim, row_version)
    check_action(claim.status, action)
    return claim


def _earlier_approvers(session: Session, claim: Claim) -> set[int]:
    return set(session.scalars(select(ClaimApproval.user_id).where(
        ClaimApproval.claim_id == claim.id, ClaimApproval.version == claim.version,
        ClaimApproval.voided_at.is_(None))))


def _require_login(actor: Actor, what: str) -> int:
    """Approvals name a person: an actor without a login (the CLI operator) cannot give one."""
    if actor.user_id is None:
        raise PermissionDenied(f"{what} is recorded against a named login; act as a staff or approver user")
    return actor.user_id


def _record_approval(session: Session, actor: Actor, claim_ids: list[int], version: int,
                     now: dt.datetime) -> None:
    """This person's approval of these claims at ``version``. A claim keeps one row per person
    and version (UNIQUE): an earlier approval of theirs that was voided (information was asked
    for, then the customer accepted the same version again) is renewed instead of duplicated."""
    user_id = _require_login(actor, "an approval")
    for start in range(0, len(claim_ids), 10_000):
        chunk = claim_ids[start:start + 10_000]
        renewed = set(session.scalars(
            update(ClaimApproval)
            .where(ClaimApproval.claim_id.in_(chunk), ClaimApproval.version == version,
                   ClaimApproval.user_id == user_id, ClaimApproval.voided_at.is_not(None))
            .values(voided_at=None, created_at=now, user_label=actor.label, role=actor.role.value)
            .returning(ClaimApproval.claim_id).execution_options(synchronize_session=False)))
        fresh = [i for i in chunk if i not in renewed]
        if fresh:
            session.execute(insert(ClaimApproval), [
                {"claim_id": i, "version": version, "user_id": user_id, "user_label": actor.label,
                 "role": actor.role.value, "created_at": now} for i in fresh])


def made_ledger_figures(session: Session, user_id: int | None, incident_id: int) -> bool:
    """Whether this login imported the incident's losses or set its reference prices: the
    figures a claim's first version is computed from (imports by API key or the command line
    belong to no login, and neither can approve)."""
    if user_id is None:
        return False
    imported = select(LossImport.id).where(LossImport.incident_id == incident_id,
                                           LossImport.imported_by_id == user_id).exists()
    priced = select(ReferencePrice.id).where(ReferencePrice.incident_id == incident_id,
                                             ReferencePrice.set_by_id == user_id).exists()
    return bool(session.scalar(select(or_(imported, priced))))


def _ensure_not_a_maker_of_the_ledger_figures(session: Session, user_id: int, incident_id: int) -> None:
    """Four eyes for a claim's first version, which nobody adjusted: its figures were made by
    whoever imported the incident's losses or set its reference prices, so they may not approve
    claims as computed from them (an inflated ledger row plus its importer's approval would
    otherwise pay out on one person's word)."""
    if made_ledger_figures(session, user_id, incident_id):
        raise PermissionDenied("you imported this incident's losses or set its reference prices, so someone"
                               " else must approve its claims as computed from them")


def approve_claim(session: Session, actor: Actor, claim_id: int, row_version: int,
                  policy: FourEyesPolicy) -> Claim:
    """One approval of the current version; the claim is approved once enough people have."""
    user_id = _require_login(actor, "an approval")
    with _stale_is_conflict(claim_id), transaction(session):
        claim = _staff_move(session, actor, claim_id, row_version, ClaimAction.APPROVE)
        if claim.version == 1:
            _ensure_not_a_maker_of_the_ledger_figures(session, user_id, claim.incident_id)
        required = policy.approvals_required(claim.total_jpy)
        complete = check_approval(approver_id=actor.user_id, approver_role=actor.role,
                                  maker_id=claim.changed_by_id,
                                  earlier_approver_ids=_earlier_approvers(session, claim), required=required)
        status = next_status(claim.status, ClaimAction.APPROVE, approvals_complete=complete)
        if complete:
            claim.decided_at = utcnow()
        _move(session, actor, claim, ClaimAction.APPROVE, status,
              f"{actor.label} approved claim #{claim.id} version {claim.version}"
              + ("" if complete else " (first of two approvals)"),
              {"version": claim.version, "total_jpy": claim.total_jpy, "approvals_required": required})
        _record_approval(session, actor, [claim.id], claim.version, utcnow())
        if complete:
            notify(session, claim.customer_id, claim.id, "claim.approved", {"total_jpy": claim.total_jpy})
    return claim


def reject_claim(session: Session, actor: Actor, claim_id: int, row_version: int, reason: str) -> Claim:
    reason = _reason(reason)
    with _stale_is_conflict(claim_id), transaction(session):
        claim = _staff_move(session, actor, claim_id, row_version, ClaimAction.REJECT)
        _void_approvals(session, claim)  # first: its UPDATE would autoflush a half-changed claim
        claim.status_reason = reason
        claim.decided_at = utcnow()
        _move(session, actor, claim, ClaimAction.REJECT, ClaimStatus.REJECTED,
              f"{actor.label} rejected claim #{claim.id}", {"reason": reason})
        notify(session, claim.customer_id, claim.id, "claim.rejected", {"reason": reason})
    return claim


def request_information(session: Session, actor: Actor, claim_id: int, row_version: int, question: str) -> Claim:
    question = _reason(question, "question")
    with _stale_is_conflict(claim_id), transaction(session):
        claim = _staff_move(session, actor, claim_id, row_version, ClaimAction.REQUEST_INFORMATION)
        _void_approvals(session, claim)  # first: its UPDATE would autoflush a half-changed claim
        claim.status_reason = question
        _move(session, actor, claim, ClaimAction.REQUEST_INFORMATION, ClaimStatus.NEEDS_INFORMATION,
              f"{actor.label} asked for information on claim #{claim.id}", {"question": question})
        notify(session, claim.customer_id, claim.id, "claim.information_requested", {"question": question})
    return claim


def _void_approvals(session: Session, claim: Claim) -> int:
    result = session.execute(
        update(ClaimApproval).where(ClaimApproval.claim_id == claim.id, ClaimApproval.voided_at.is_(None))
        .values(voided_at=utcnow()))
    return int(result.rowcount or 0)


def adjust_claim(session: Session, actor: Actor, claim_id: int, row_version: int, *,
                 amounts: Mapping[str, str], reason: str) -> Claim:
    """A new version with these positions (whole units per asset; omitted or empty: none). It
    voids every approval, goes back to the customer to accept, and its maker cannot approve it."""
    reason = _reason(reason)
    with _stale_is_conflict(claim_id), transaction(session):
        claim = _staff_move(session, actor, claim_id, row_version, ClaimAction.ADJUST)
        # A zero amount is no position: "0" must neither count as a change nor be stored.
        positions = {a: m for a, m in parse_corrections(session, claim, amounts).items() if m}
        prices = _prices(session, claim.incident_id)
        _lines, total = _value(sorted(positions.items()), prices)
        before_positions = dict(claim_positions(session, claim))
        if positions == {a: m for a, m in before_positions.items() if m}:
            raise ValidationError("amounts", "the adjustment changes nothing")
        before_version, before_total = claim.version, claim.total_jpy
        # Approvals first: the UPDATE would autoflush a half-changed claim. The claim itself is
        # written once, by _move, so its row version moves by one as for every other move.
        voided = _void_approvals(session, claim)
        version = before_version + 1
        session.add(ClaimVersion(claim_id=claim.id, version=version, total_jpy=total, reason=reason,
                                 created_by_id=actor.user_id, created_by_label=actor.label))
        session.add_all(ClaimPosition(claim_id=claim.id, version=version, asset_code=a, amount_minor=m)
                        for a, m in sorted(positions.items()))
        claim.version = version
        claim.total_jpy = total
        claim.changed_by_id = actor.user_id
        claim.accepted_at = None
        claim.decided_at = None
        claim.status_reason = reason
        _move(session, actor, claim, ClaimAction.ADJUST, ClaimStatus.OPEN,
              f"{actor.label} adjusted claim #{claim.id} to version {claim.version}",
              {"version": [before_version, claim.version], "total_jpy": [before_total, total],
               "positions": [{a: str(m) for a, m in sorted(before_positions.items())},
                             {a: str(m) for a, m in sorted(positions.items())}],
               "reason": reason, "approvals_voided": voided})
        notify(session, claim.customer_id, claim.id, "claim.adjusted",
               {"total_jpy": total, "version": claim.version, "reason": reason})
    return claim


def bulk_approve(session: Session, actor: Actor, incident_ref: str, policy: FourEyesPolicy, *,
                 limit: int = 50_000) -> int:
    """Approve accepted claims that match the ledger (never adjusted, never disputed) and need
    only one approval; claims above the four-eyes threshold stay for two people. At most
    ``limit`` per call, so one action stays a bounded transaction. Returns how many."""
    require_role(actor, CLAIM_REVIEWERS, "approve claims")
    user_id = _require_login(actor, "an approval")
    with transaction(session):
        incident = find_incident(session, incident_ref, lock=True)
        ensure_not_allocated(session, incident, "claims")
        # Every claim approved here is a first version.
        _ensure_not_a_maker_of_the_ledger_figures(session, user_id, incident.id)
        disputed = select(ClaimDispute.claim_id)
        ids = list(session.scalars(
            select(Claim.id).where(
                Claim.incident_id == incident.id, Claim.status == ClaimStatus.ACCEPTED.value,
                Claim.version == 1, Claim.total_jpy <= policy.threshold_jpy, Claim.id.not_in(disputed))
            .order_by(Claim.id).limit(limit).with_for_update()))
        if not ids:
            return 0
        now = utcnow()
        for start in range(0, len(ids), 10_000):
            chunk = ids[start:start + 10_000]
            session.execute(
                update(Claim).where(Claim.id.in_(chunk), Claim.status == ClaimStatus.ACCEPTED.value)
                .values(status=ClaimStatus.APPROVED.value, decided_at=now, updated_at=now,
                        row_version=Claim.row_version + 1)
                .execution_options(synchronize_session=False))
            _record_approval(session, actor, chunk, 1, now)
        record_events(session, actor, (
            ("claim.approved", "claim", i, f"{actor.label} approved claim #{i} (bulk: matches the ledger)",
             {"status": [ClaimStatus.ACCEPTED.value, ClaimStatus.APPROVED.value], "version": 1, "bulk": True})
            for i in ids))
        notify_many(session, incident.id, ids, "claim.approved")
    return len(ids)


def mark_claims_paid(session: Session, actor: Actor, claim_ids: Iterable[int]) -> int:
    """Approved claims whose every payment has been made (called by disbursements, inside the
    caller's transaction)."""
    ids = list(claim_ids)
    if not ids:
        return 0
    now = utcnow()
    paid = list(session.scalars(
        update(Claim).where(Claim.id.in_(ids), Claim.status == ClaimStatus.APPROVED.value)
        .values(status=ClaimStatus.PAID.value, paid_at=now, updated_at=now, row_version=Claim.row_version + 1)
        .returning(Claim.id).execution_options(synchronize_session=False)))
    record_events(session, actor, (
        ("claim.paid", "claim", i, f"Claim #{i} paid in full",
         {"status": [ClaimStatus.APPROVED.value, ClaimStatus.PAID.value]}) for i in paid))
    return len(paid)
