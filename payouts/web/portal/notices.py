"""The wording of each notice kind (payouts.services.notices.KINDS), in the reader's language.

A notice stores its kind and JSON params; the words are chosen here when it is shown, so a
customer who switches language reads every notice in the new one.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any


if TYPE_CHECKING:
    from payouts.db.models import Notice
from payouts.domain.money import format_yen
from payouts.web.translate import gettext as _


def _params(notice: Notice) -> dict[str, Any]:
    try:
        value = json.loads(notice.params or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _yen(value: object, locale: str) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None
    try:
        return format_yen(int(value), locale)
    except ValueError:
        return None


def describe(notice: Notice, locale: str) -> str:
    """One sentence (or two) for the notice; unknown kinds get a neutral line."""
    p = _params(notice)
    kind = notice.kind
    total = _yen(p.get("total_jpy"), locale)
    if kind == "claim.adjusted":
        return _("Staff adjusted your claim to version %(version)s (total %(total)s). Reason: %(reason)s"
                 " Please check it and accept or dispute it again.",
                 version=p.get("version", "?"), total=total or "—", reason=p.get("reason", ""))
    if kind == "claim.approved":
        if total:
            return _("Your claim was approved for %(total)s. It is paid once the allocation is committed.",
                     total=total)
        return _("Your claim was approved. It is paid once the allocation is committed.")
    if kind == "claim.rejected":
        return _("Your claim was rejected. Reason: %(reason)s", reason=p.get("reason", ""))
    if kind == "claim.information_requested":
        return _("Staff need more information about your claim: %(question)s", question=p.get("question", ""))
    if kind == "claim.paid":
        return _("Your claim has been paid in full.")
    if kind == "destination.approved":
        return _("Your payout account %(account)s was approved.", account=p.get("account", ""))
    if kind == "destination.rejected":
        return _("Your payout account was not approved. Reason: %(reason)s", reason=p.get("reason", ""))
    if kind == "payment.sent":
        amount = _yen(p.get("amount_jpy"), locale)
        if amount:
            return _("A payment of %(amount)s was sent to your payout account.", amount=amount)
        return _("A payment was sent to your payout account.")
    if kind == "payment.delayed":
        return _("A payment to your payout account is delayed while we confirm it with the bank. You do not"
                 " need to do anything: it will not be paid twice.")
    if kind == "payment.failed":
        return _("A payment to your payout account failed. Check your payout account; staff will contact you"
                 " inside the portal.")
    return _("There is an update on your claim.")
