"""A customer's loss positions with what valuing them needs: the asset's decimals and the
incident's reference price and its source (None while no price is fixed)."""

from __future__ import annotations

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from payouts.db.models import Asset, Incident, LossPosition, ReferencePrice


def priced_positions(session: Session, customer_id: int, incident_id: int | None = None) -> list[Row]:
    """Rows (incident, asset, amount_minor, decimals, price_jpy, price_source), newest incident
    first and by asset; one incident's only when ``incident_id`` is given."""
    query = (
        select(Incident, LossPosition.asset_code, LossPosition.amount_minor, Asset.decimals,
               ReferencePrice.price_jpy, ReferencePrice.source)
        .join(LossPosition, LossPosition.incident_id == Incident.id)
        .join(Asset, Asset.code == LossPosition.asset_code)
        .outerjoin(ReferencePrice, (ReferencePrice.incident_id == Incident.id)
                   & (ReferencePrice.asset_code == LossPosition.asset_code))
        .where(LossPosition.customer_id == customer_id)
        .order_by(Incident.occurred_at.desc(), LossPosition.asset_code)
    )
    if incident_id is not None:
        query = query.where(LossPosition.incident_id == incident_id)
    return list(session.execute(query).all())
