"""What a customer may see of their own losses: positions valued at the reference prices."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from payouts.db.models import Incident, User
from payouts.domain.errors import PermissionDenied
from payouts.domain.money import format_amount
from payouts.domain.roles import Actor, Role
from payouts.domain.valuation import value_positions
from payouts.services.access import require_role
from payouts.services.positions import priced_positions


@dataclass(frozen=True)
class PositionLine:
    asset: str
    amount: str
    price_jpy: Decimal | None
    price_source: str | None
    #: The line's exact yen value; None until a reference price is fixed.
    value_exact: str | None


@dataclass(frozen=True)
class IncidentLosses:
    incident: Incident
    lines: list[PositionLine]
    #: Rounded down once per customer, as the allocation does; None while a price is missing.
    total_jpy: int | None


def my_losses(session: Session, actor: Actor) -> list[IncidentLosses]:
    """The acting customer's positions per incident, with the calculation the allocation uses.

    The customer is the one linked to the actor's login, never one named by the caller.
    """
    require_role(actor, {Role.CUSTOMER}, "view a customer's losses")
    customer_id = session.scalar(select(User.customer_id).where(User.id == actor.user_id))
    if customer_id is None:
        raise PermissionDenied("this login is not linked to a customer")
    rows = priced_positions(session, customer_id)
    grouped: dict[int, tuple[Incident, list[tuple]]] = {}
    for incident, code, amount, decimals, price, source in rows:
        grouped.setdefault(incident.id, (incident, []))[1].append((code, amount, decimals, price, source))
    result = []
    for incident, items in grouped.values():
        if all(price is not None for _c, _a, _d, price, _s in items):
            valued, total = value_positions((c, a, d, p) for c, a, d, p, _s in items)
            exact = [v.value_exact for v in valued]
        else:
            exact, total = [None] * len(items), None
        lines = [
            PositionLine(code, format_amount(amount, decimals), price, source, value)
            for (code, amount, decimals, price, source), value in zip(items, exact)
        ]
        result.append(IncidentLosses(incident, lines, total))
    return result
