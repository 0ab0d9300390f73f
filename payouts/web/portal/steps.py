"""Where a claim stands for the customer: the next step, when to expect it, and its timeline.

Everything is worked out from the claim's own fields, its disputes, versions, approvals and the
customer's notices (what payouts.services.claims.my_claim returns); no audit table is read.
Dates are shown in Japan time; "business days" skip weekends (public holidays are not known
here, so the date is given as "around").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:  # types only: the web reads what the services return, never tables
    from payouts.db.models import Claim, ClaimApproval, ClaimDispute, ClaimVersion, Notice
from payouts.domain.claims import ClaimStatus
from payouts.domain.i18n import N_
from payouts.domain.money import format_yen
from payouts.web.translate import gettext as _

JST = ZoneInfo("Asia/Tokyo")
REVIEW_BUSINESS_DAYS = 5
DISPUTE_BUSINESS_DAYS = 10
#: Statuses in which the customer has accepted the current version: a receipt exists.
RECEIPT_STATUSES = frozenset({ClaimStatus.ACCEPTED, ClaimStatus.UNDER_REVIEW, ClaimStatus.APPROVED,
                              ClaimStatus.PAID})

#: Marked for extraction here, translated when shown: only the label asked for is looked up.
_STATUS_LABELS = {
    "open": N_("Open: waiting for you"),
    "accepted": N_("Accepted by you"),
    "disputed": N_("Disputed by you"),
    "needs_information": N_("Staff need more information"),
    "under_review": N_("Under review (second approval)"),
    "approved": N_("Approved"),
    "rejected": N_("Rejected"),
    "withdrawn": N_("Withdrawn"),
    "paid": N_("Paid"),
}


def status_label(status: str) -> str:
    label = _STATUS_LABELS.get(status)
    return _(label) if label else status


def add_business_days(start: dt.datetime, days: int) -> dt.date:
    """The Japan-time date ``days`` weekdays after ``start``."""
    day = start.astimezone(JST).date()
    added = 0
    while added < days:
        day += dt.timedelta(days=1)
        if day.weekday() < 5:
            added += 1
    return day


@dataclass(frozen=True)
class NextStep:
    text: str
    #: True when it is the customer's move.
    yours: bool
    #: When the step is expected (a Japan-time date), if anyone can say.
    expected: dt.date | None = None
    #: A text explaining the expected date ("usually within 5 business days").
    expected_note: str | None = None


def next_step(claim: Claim, disputes: Iterable[ClaimDispute] = (), *, has_destination: bool = True) -> NextStep:
    status = ClaimStatus(claim.status)
    if status is ClaimStatus.OPEN:
        return NextStep(_("Check each position and the total, then accept the claim or dispute it."), True)
    if status is ClaimStatus.NEEDS_INFORMATION:
        return NextStep(_("Staff asked for more information: dispute the claim with your answer and any"
                          " evidence, or accept it as it is."), True)
    if status is ClaimStatus.ACCEPTED:
        return NextStep(_("Review by staff."), False,
                        add_business_days(claim.accepted_at or claim.updated_at, REVIEW_BUSINESS_DAYS),
                        _("usually within %(days)s business days", days=REVIEW_BUSINESS_DAYS))
    if status is ClaimStatus.UNDER_REVIEW:
        return NextStep(_("A second person approves the claim (large claims need two people)."), False,
                        add_business_days(claim.updated_at, REVIEW_BUSINESS_DAYS),
                        _("usually within %(days)s business days", days=REVIEW_BUSINESS_DAYS))
    if status is ClaimStatus.DISPUTED:
        latest = max((d.created_at for d in disputes), default=claim.updated_at)
        return NextStep(_("Staff review your dispute and either adjust the claim or explain why not."), False,
                        add_business_days(latest, DISPUTE_BUSINESS_DAYS),
                        _("usually within %(days)s business days", days=DISPUTE_BUSINESS_DAYS))
    if status is ClaimStatus.APPROVED:
        if not has_destination:
            return NextStep(_("Payment once the allocation is committed. Add a payout account now, or the"
                              " payment has to wait for it."), True)
        return NextStep(_("Payment to your approved payout account once the allocation is committed."), False)
    if status is ClaimStatus.PAID:
        return NextStep(_("Nothing more to do: the claim is paid."), False)
    if status is ClaimStatus.REJECTED:
        return NextStep(_("Nothing more to do: the claim was rejected."), False)
    return NextStep(_("Nothing more to do: you withdrew the claim."), False)


@dataclass(frozen=True)
class Event:
    at: dt.datetime
    title: str
    detail: str = ""


def timeline(claim: Claim, *, disputes: Iterable[ClaimDispute], versions: Iterable[ClaimVersion],
             approvals: Iterable[ClaimApproval], approvals_required: int, notices: Iterable[Notice],
             locale: str) -> list[Event]:
    """What happened to the claim, oldest first."""
    events = [Event(claim.created_at, _("Claim opened with the positions in the exchange's ledger (version 1)."))]
    for version in versions:
        events.append(Event(version.created_at,
                            _("Adjusted by staff: version %(version)s, total %(total)s.",
                              version=version.version, total=format_yen(version.total_jpy, locale)),
                            version.reason))
    for dispute in disputes:
        events.append(Event(dispute.created_at, _("You disputed version %(version)s.", version=dispute.version),
                            dispute.reason))
    if claim.accepted_at is not None:
        events.append(Event(claim.accepted_at, _("You accepted version %(version)s.", version=claim.version)))
    status = ClaimStatus(claim.status)
    if approvals_required > 1:
        for approval in approvals:
            if approval.voided_at is None and approval.version == claim.version:
                events.append(Event(approval.created_at, _("Approved by one person; a second must approve too.")))
                break
    if status in (ClaimStatus.APPROVED, ClaimStatus.PAID):
        events.append(Event(claim.decided_at or claim.updated_at, _("Approved.")))
    if status is ClaimStatus.REJECTED:
        events.append(Event(claim.decided_at or claim.updated_at, _("Rejected."), claim.status_reason))
    if status is ClaimStatus.WITHDRAWN:
        events.append(Event(claim.updated_at, _("You withdrew the claim.")))
    if claim.paid_at is not None:
        events.append(Event(claim.paid_at, _("Paid.")))
    from payouts.web.portal.notices import describe

    for notice in notices:
        if notice.claim_id == claim.id and notice.kind in TIMELINE_NOTICE_KINDS:
            events.append(Event(notice.created_at, describe(notice, locale)))
    return sorted(events, key=lambda e: e.at)


#: Notices that say something the claim's own fields do not.
TIMELINE_NOTICE_KINDS = frozenset({"claim.information_requested", "payment.sent", "payment.delayed",
                                   "payment.failed"})
