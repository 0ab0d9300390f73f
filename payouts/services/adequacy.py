"""Reserve adequacy: the rule's versions, its inputs, the requirement at any date, stress tests.

The arithmetic lives in payouts.domain.adequacy; this module gathers its inputs from the
records (trailing 12-month volumes, the latest wallet snapshots, losses of incidents in the
rule's lookback, the insurance tower in force, the reserve ledger's balance on the date) and
stores rule versions and stress tests, each with an audit event.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, BinaryIO

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from payouts.audit.chain import canonical_json
from payouts.audit.log import record_event
from payouts.db.models import (
    AllocationLine,
    AllocationRun,
    ExternalIncident,
    Incident,
    InsurancePolicy,
    ReserveRuleVersion,
    StressTest,
    TradingVolume,
    WalletSnapshot,
)
from payouts.db.session import transaction
from payouts.domain import adequacy as rules
from payouts.domain.allocation import (
    AllocationInput,
    AssetSpec,
    CustomerInput,
    CustomerTerms,
    LayerInput,
    Position,
    allocate,
    check_invariants,
)
from payouts.domain.errors import NotFoundError, ValidationError
from payouts.domain.incidents import JST, business_date
from payouts.domain.money import canonical_decimal, check_yen
from payouts.domain.tranches import tranche_buckets
from payouts.domain.roles import BACK_OFFICE_READERS, STAFF_WRITERS, Actor
from payouts.services import funding
from payouts.services.access import require_role

MAX_STRESS_CUSTOMERS = 2_000_000
WALLETS = ("cold", "hot")


# --- rule versions ------------------------------------------------------------------------------


def parse_rule(params: dict[str, Any]) -> tuple[rules.ReserveRule, frozenset[str] | None]:
    """The rule and its qualifying policies (None: every recorded policy) from stored JSON."""
    rule = rules.parse_rule({k: v for k, v in params.items() if k != "qualifying_policies"})
    qualifying = params.get("qualifying_policies")
    if qualifying is not None and (not isinstance(qualifying, list) or
                                   not all(isinstance(p, str) for p in qualifying)):
        raise ValidationError("qualifying_policies", "must be a list of policy numbers, or null for all")
    return rule, (None if qualifying is None else frozenset(qualifying))


def dec_of(value: object, field: str) -> Decimal:
    """An exact decimal from a string such as "0.25" (never a float)."""
    if not isinstance(value, str):
        raise ValidationError(field, "must be an exact decimal string such as \"0.25\"")
    try:
        parsed = Decimal(value.strip())
    except ArithmeticError:
        raise ValidationError(field, f"is not a decimal number: {value!r}") from None
    if not parsed.is_finite():
        raise ValidationError(field, f"is not a decimal number: {value!r}")
    return parsed


def set_rule(session: Session, actor: Actor, *, effective_from: dt.date, params: dict[str, Any],
             rationale: str, illustrative: bool) -> ReserveRuleVersion:
    """Record a new version of the rule; earlier versions stay as they were."""
    require_role(actor, STAFF_WRITERS, "set the reserve rule")
    parse_rule(params)  # refuse an invalid rule before anything is written
    with transaction(session):
        funding.lock_reserve(session)  # versions are numbered one at a time
        version = (session.scalar(select(func.max(ReserveRuleVersion.version))) or 0) + 1
        row = ReserveRuleVersion(version=version, effective_from=effective_from, parameters=canonical_json(params),
                                 illustrative=illustrative, rationale=(rationale or "").strip(),
                                 created_by_label=actor.label)
        session.add(row)
        session.flush()
        record_event(session, actor, "reserve_rule.versioned", "reserve_rule", version,
                     f"Reserve rule version {version} effective {effective_from.isoformat()}"
                     f"{' (illustrative)' if illustrative else ''}",
                     {"effective_from": effective_from.isoformat(), "parameters": params})
    return row


def rule_versions(session: Session, actor: Actor) -> list[ReserveRuleVersion]:
    require_role(actor, BACK_OFFICE_READERS, "read the reserve rule")
    return list(session.scalars(select(ReserveRuleVersion).order_by(ReserveRuleVersion.version.desc())))


def rule_in_force(session: Session, on_date: dt.date) -> ReserveRuleVersion | None:
    return session.scalar(select(ReserveRuleVersion).where(ReserveRuleVersion.effective_from <= on_date)
                          .order_by(ReserveRuleVersion.effective_from.desc(), ReserveRuleVersion.version.desc())
                          .limit(1))


# --- inputs ---------------------------------------------------------------------------------------


def first_of_month(value: dt.date) -> dt.date:
    return value.replace(day=1)


def record_volume(session: Session, actor: Actor, *, month: dt.date, market: str, volume_jpy: int) -> TradingVolume:
    require_role(actor, STAFF_WRITERS, "record trading volumes")
    market = (market or "").strip()
    if not market or len(market) > 40 or market == "*":
        raise ValidationError("market", "is required (at most 40 characters, not '*')")
    check_yen(volume_jpy, "volume_jpy")
    with transaction(session):
        return _put_volume(session, actor, first_of_month(month), market, volume_jpy)


def _put_volume(session: Session, actor: Actor, month: dt.date, market: str, volume: int) -> TradingVolume:
    return _put_input(session, actor, TradingVolume, {"month": month, "market": market}, "volume_jpy", volume,
                      "trading_volume", f"{month:%Y-%m}/{market}",
                      f"Trading volume of {market} in {month:%Y-%m}: ¥{volume:,}")


def record_snapshot(session: Session, actor: Actor, *, as_of: dt.date, wallet: str, value_jpy: int) -> WalletSnapshot:
    require_role(actor, STAFF_WRITERS, "record wallet holdings")
    if wallet not in WALLETS:
        raise ValidationError("wallet", "must be cold or hot")
    check_yen(value_jpy, "value_jpy")
    with transaction(session):
        return _put_snapshot(session, actor, as_of, wallet, value_jpy)


def _put_snapshot(session: Session, actor: Actor, as_of: dt.date, wallet: str, value: int) -> WalletSnapshot:
    return _put_input(session, actor, WalletSnapshot, {"as_of": as_of, "wallet": wallet}, "value_jpy", value,
                      "wallet_snapshot", f"{as_of.isoformat()}/{wallet}",
                      f"{wallet.capitalize()} wallet holdings on {as_of.isoformat()}: ¥{value:,}")


def _put_input(session: Session, actor: Actor, model: Any, keys: dict[str, Any], field: str, value: int,
               subject: str, subject_id: str, summary: str) -> Any:
    """Create or replace the one input row with ``keys``, auditing the value before and after."""
    row = session.scalar(select(model).filter_by(**keys))
    before = None if row is None else getattr(row, field)
    if row is None:
        row = model(**keys)
        session.add(row)
    setattr(row, field, value)
    row.recorded_by_label, row.recorded_at = actor.label, dt.datetime.now(dt.timezone.utc)
    session.flush()
    record_event(session, actor, f"{subject}.recorded", subject, subject_id, summary, {field: [before, value]})
    return row


def record_external_incident(session: Session, actor: Actor, *, occurred_on: dt.date, loss_jpy: int,
                             description: str) -> ExternalIncident:
    require_role(actor, STAFF_WRITERS, "record incident history")
    check_yen(loss_jpy, "loss_jpy")
    description = (description or "").strip()
    if not description or len(description) > 500:
        raise ValidationError("description", "is required (at most 500 characters)")
    with transaction(session):
        row = ExternalIncident(occurred_on=occurred_on, loss_jpy=loss_jpy, description=description,
                               recorded_by_label=actor.label)
        session.add(row)
        session.flush()
        record_event(session, actor, "incident_history.recorded", "external_incident", row.id,
                     f"Past incident on {occurred_on.isoformat()}: ¥{loss_jpy:,} ({description})",
                     {"occurred_on": occurred_on.isoformat(), "loss_jpy": loss_jpy})
    return row


_CSV_KINDS = {
    "volumes": ("month", "market", "volume_jpy"),
    "snapshots": ("as_of", "wallet", "value_jpy"),
}


def import_inputs(session: Session, actor: Actor, kind: str, stream: BinaryIO) -> int:
    """A CSV of volumes (month,market,volume_jpy; month as YYYY-MM) or wallet snapshots
    (as_of,wallet,value_jpy): every row or none, problems named by line."""
    require_role(actor, STAFF_WRITERS, "import adequacy inputs")
    if kind not in _CSV_KINDS:
        raise ValidationError("kind", "must be volumes or snapshots")
    try:
        text_value = stream.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError("file", "is not UTF-8") from None
    reader = csv.reader(io.StringIO(text_value), strict=True)
    try:
        return _import_rows(session, actor, kind, reader)
    except csv.Error as exc:
        raise ValidationError("file", f"line {reader.line_num}: malformed CSV ({exc})") from None


def _import_rows(session: Session, actor: Actor, kind: str, reader: Any) -> int:
    header = [h.strip().lower() for h in next(reader, [])]
    if header != list(_CSV_KINDS[kind]):
        raise ValidationError("file", f"line 1: the header must be {','.join(_CSV_KINDS[kind])}")
    parsed: list[tuple[dt.date, str, int]] = []
    seen: set[tuple[dt.date, str]] = set()
    for number, row in enumerate(reader, start=2):
        if len(row) != 3:
            raise ValidationError("file", f"line {number}: expected 3 fields")
        try:
            if kind == "volumes":
                date = dt.date.fromisoformat(row[0].strip() + "-01")
            else:
                date = dt.date.fromisoformat(row[0].strip())
        except ValueError:
            raise ValidationError("file", f"line {number}: {row[0]!r} is not a date") from None
        key = row[1].strip()
        if kind == "snapshots" and key not in WALLETS:
            raise ValidationError("file", f"line {number}: wallet must be cold or hot")
        if not key or len(key) > 40 or key == "*":
            raise ValidationError("file", f"line {number}: market is required (at most 40 characters)")
        amount_text = row[2].strip()
        if not amount_text.isascii() or not amount_text.isdigit():
            raise ValidationError("file", f"line {number}: {amount_text!r} is not a whole number of yen")
        amount = int(amount_text)
        try:
            check_yen(amount, "amount")
        except ValidationError as exc:
            raise ValidationError("file", f"line {number}: {exc.message}") from None
        if (date, key) in seen:
            raise ValidationError("file", f"line {number}: {date.isoformat()} {key} appears twice")
        seen.add((date, key))
        parsed.append((date, key, amount))
    if not parsed:
        raise ValidationError("file", "has no data rows")
    with transaction(session):
        for date, key, amount in parsed:
            if kind == "volumes":
                _put_volume(session, actor, date, key, amount)
            else:
                _put_snapshot(session, actor, date, key, amount)
    return len(parsed)


def volumes(session: Session, actor: Actor, months: int = 24) -> list[TradingVolume]:
    require_role(actor, BACK_OFFICE_READERS, "read trading volumes")
    return list(session.scalars(select(TradingVolume).order_by(TradingVolume.month.desc(), TradingVolume.market)
                                .limit(months * 10)))


def snapshots(session: Session, actor: Actor) -> list[WalletSnapshot]:
    require_role(actor, BACK_OFFICE_READERS, "read wallet holdings")
    return list(session.scalars(select(WalletSnapshot).order_by(WalletSnapshot.as_of.desc(), WalletSnapshot.wallet)
                                .limit(200)))


def external_incidents(session: Session, actor: Actor) -> list[ExternalIncident]:
    require_role(actor, BACK_OFFICE_READERS, "read incident history")
    return list(session.scalars(select(ExternalIncident).order_by(ExternalIncident.occurred_on.desc())))


# --- the requirement -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Adequacy:
    as_of: dt.date
    rule: ReserveRuleVersion
    inputs: rules.AdequacyInputs
    requirement: rules.Requirement
    own_incidents: list[tuple[str, dt.date, int]]
    external: list[tuple[str, dt.date, int]]
    snapshot_dates: dict[str, dt.date | None]


def adequacy(session: Session, actor: Actor, as_of: dt.date | None = None) -> Adequacy | None:
    """The requirement on ``as_of`` (today in Japan by default); None without a rule in force."""
    require_role(actor, BACK_OFFICE_READERS, "read reserve adequacy")
    as_of = as_of or business_date(dt.datetime.now(dt.timezone.utc))
    version = rule_in_force(session, as_of)
    if version is None:
        return None
    rule, qualifying = parse_rule(json.loads(version.parameters))
    start = _months_back(first_of_month(as_of), 11)
    volume_rows = session.execute(
        select(TradingVolume.market, func.sum(TradingVolume.volume_jpy))
        .where(TradingVolume.month >= start, TradingVolume.month <= as_of).group_by(TradingVolume.market)).all()
    wallets: dict[str, int] = {}
    dates: dict[str, dt.date | None] = {}
    for wallet in WALLETS:
        snap = session.scalar(select(WalletSnapshot).where(WalletSnapshot.wallet == wallet,
                                                           WalletSnapshot.as_of <= as_of)
                              .order_by(WalletSnapshot.as_of.desc()).limit(1))
        wallets[wallet], dates[wallet] = (snap.value_jpy, snap.as_of) if snap else (0, None)
    since = _years_back(as_of, rule.incident_lookback_years)
    # Everything as it stood at the end of that day in Japan: a later commit must not
    # rewrite a past month's verdict.
    day_end = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(), JST)
    own = _own_incident_losses(session, since, as_of, day_end)
    external = [(e.description, e.occurred_on, e.loss_jpy) for e in session.scalars(
        select(ExternalIncident).where(ExternalIncident.occurred_on > since, ExternalIncident.occurred_on <= as_of))]
    layers = tuple(
        rules.LayerCover(s.layer.code, s.layer.limit_jpy, s.layer.share, s.aggregate_remaining_jpy,
                         qualifying is None or s.layer.policy.policy_number in qualifying)
        for s in funding.tower(session, actor, as_of, as_at=day_end))
    inputs = rules.AdequacyInputs(
        volumes_12m={market: int(total) for market, total in volume_rows},
        cold_wallet_jpy=wallets["cold"], hot_wallet_jpy=wallets["hot"],
        incident_losses_jpy=sum(x[2] for x in own) + sum(x[2] for x in external),
        layers=layers, reserve_balance_jpy=funding.reserve_balance(session, before=day_end).available)
    return Adequacy(as_of, version, inputs, rules.compute_requirement(rule, inputs), own, external, dates)


def _own_incident_losses(session: Session, since: dt.date, as_of: dt.date,
                         as_at: dt.datetime) -> list[tuple[str, dt.date, int]]:
    """Customer losses (their value at the reference prices) of our incidents whose allocation
    was committed before ``as_at``, by the incident's date in Japan."""
    rows = session.execute(
        select(Incident.ref, Incident.occurred_at, func.sum(AllocationLine.approved_jpy))
        .join(AllocationRun, AllocationRun.incident_id == Incident.id)
        .join(AllocationLine, AllocationLine.run_id == AllocationRun.id)
        .where(AllocationRun.sequence == 1, AllocationRun.created_at < as_at)
        .group_by(Incident.ref, Incident.occurred_at)).all()
    found = []
    for ref, occurred, total in rows:
        day = business_date(occurred)
        if since < day <= as_of:
            found.append((ref, day, int(total)))
    return found


def _months_back(month: dt.date, count: int) -> dt.date:
    index = month.year * 12 + month.month - 1 - count
    return dt.date(index // 12, index % 12 + 1, 1)


def _years_back(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def history(session: Session, actor: Actor, months: int = 12, today: dt.date | None = None) -> list[tuple[dt.date, Adequacy | None]]:
    """The requirement at each month end of the last ``months`` months (and today)."""
    today = today or business_date(dt.datetime.now(dt.timezone.utc))
    points = []
    for back in range(months, 0, -1):
        month_start = _months_back(first_of_month(today), back - 1)
        month_end = _months_back(month_start, -1) - dt.timedelta(days=1)
        day = min(month_end, today)
        points.append((day, adequacy(session, actor, day)))
    return points


def _cell(value: object) -> object:
    """Text that a spreadsheet would run as a formula is prefixed with an apostrophe."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def report_csv(result: Adequacy) -> str:
    """The adequacy report as CSV: every component, then the totals."""
    out = io.StringIO()
    writer = csv.writer(out)
    req = result.requirement
    writer.writerow(["as_of", result.as_of.isoformat()])
    writer.writerow(["rule_version", result.rule.version, "illustrative" if result.rule.illustrative else "adopted"])
    writer.writerow(["part", "key", "base_jpy", "rate", "amount_jpy"])
    for part, components in (("volume", req.volume_components), ("holdings", req.holdings_components),
                             ("incidents", (req.incident_component,))):
        for c in components:
            writer.writerow([part, _cell(c.key), c.base_jpy, canonical_decimal(c.rate), c.amount_jpy])
    for layer_id, credit in req.layer_credits:
        writer.writerow(["insurance_credit", _cell(layer_id), "", "", credit])
    for key in ("volume_part_jpy", "holdings_part_jpy", "incident_part_jpy", "sum_jpy", "gross_requirement_jpy",
                "insurance_available_jpy", "insurance_offset_jpy", "cash_requirement_jpy", "reserve_balance_jpy",
                "surplus_jpy"):
        writer.writerow(["total", key, "", "", getattr(req, key)])
    writer.writerow(["total", "binding", "", "", req.binding])
    return out.getvalue()


# --- stress tests -------------------------------------------------------------------------------


def run_stress_test(session: Session, actor: Actor, *, preset: str | None, wallet: str | None,
                    share_lost: str | None, customers: int, tranches_jpy: str, label: str) -> StressTest:
    """Run the allocation engine on a hypothetical incident against today's reserve and tower."""
    require_role(actor, STAFF_WRITERS, "run stress tests")
    chosen = None
    if preset:
        chosen = next((p for p in rules.STRESS_PRESETS if p.key == preset), None)
        if chosen is None:
            raise ValidationError("preset", f"unknown preset {preset!r}")
        wallet, share = chosen.wallet, chosen.share_lost
    else:
        if wallet not in WALLETS:
            raise ValidationError("wallet", "must be cold or hot")
        share = dec_of(share_lost, "share_lost")
        if not Decimal(0) < share <= Decimal(1):
            raise ValidationError("share_lost", "must be more than 0 and at most 1")
    if type(customers) is not int or not 1 <= customers <= MAX_STRESS_CUSTOMERS:
        raise ValidationError("customers", f"must be a whole number from 1 to {MAX_STRESS_CUSTOMERS:,}")
    tranches = funding.parse_tranches(tranches_jpy)
    today = business_date(dt.datetime.now(dt.timezone.utc))
    current = adequacy(session, actor, today)
    if current is None:
        raise ValidationError("rule", "no reserve rule is in force: record one first")
    loss = rules.stress_loss_jpy(share, wallet, current.inputs)
    if loss <= 0:
        raise ValidationError("share_lost", f"there are no {wallet} wallet holdings recorded to lose")
    amounts = rules.synthetic_customers(loss, customers)
    layer_rows = funding.tower(session, actor, today)
    inp = AllocationInput(
        incident_type="hack",
        assets={"JPY": AssetSpec("JPY", 0, Decimal(1))},
        customers=tuple(CustomerInput(f"S{i:07d}", (Position("JPY", amount),)) for i, amount in enumerate(amounts)),
        terms=CustomerTerms(0, None), tranches_jpy=tranches,
        reserve_jpy=current.inputs.reserve_balance_jpy,
        layers=tuple(
            LayerInput(s.layer.code, s.layer.attachment_jpy, s.layer.limit_jpy, s.layer.share,
                       s.aggregate_remaining_jpy, frozenset(t for t in s.layer.excluded_incident_types.split(",") if t))
            for s in layer_rows),
    )
    result = allocate(inp)
    check_invariants(inp, result)
    details = {
        "reserve_available_jpy": inp.reserve_jpy,
        "tranches_jpy": list(tranches),
        "sources": [{"id": s.id, "available_jpy": s.available_jpy, "used_jpy": s.used_jpy} for s in result.sources],
        "tranche_payout": _tranche_payout(result.customers.eligible_jpy, tranches, result.total_funded_jpy),
        "customers_paid_in_full": sum(1 for e, p in zip(result.customers.eligible_jpy, result.customers.payout_jpy)
                                      if p == e),
        "preset": None if chosen is None else {"key": chosen.key, "label": chosen.label,
                                               "description": chosen.description},
    }
    label = (label or (chosen.label if chosen else f"{canonical_decimal(share)} of {wallet} wallet")).strip()[:200]
    with transaction(session):
        row = StressTest(label=label, preset=None if chosen is None else chosen.key, wallet=wallet,
                         share_lost=share, loss_jpy=loss, customers=customers, as_of=today,
                         funded_jpy=result.total_funded_jpy, shortfall_jpy=result.shortfall_jpy,
                         details=canonical_json(details), created_by_label=actor.label)
        session.add(row)
        session.flush()
        record_event(session, actor, "stress_test.run", "stress_test", row.id,
                     f"Stress test {label}: loss ¥{loss:,}, funded ¥{result.total_funded_jpy:,},"
                     f" shortfall ¥{result.shortfall_jpy:,}",
                     {"loss_jpy": loss, "funded_jpy": result.total_funded_jpy, "shortfall_jpy": result.shortfall_jpy})
    return row


def _tranche_payout(eligible: Iterable[int], tranches: tuple[int, ...], funded: int) -> list[dict[str, Any]]:
    """Per tranche: how much of the claims fall in it and how much of that is paid (buckets are
    paid in order, the first one the money does not cover pro rata)."""
    totals = [0] * (len(tranches) + 1)
    for e in eligible:
        for index, (_low, _high, part) in enumerate(tranche_buckets(e, tranches)):
            totals[index] += part
    left, rows = funded, []
    bounds = [0, *tranches]
    for index, total in enumerate(totals):
        paid = min(left, total)
        left -= paid
        rows.append({"from_jpy": bounds[index], "to_jpy": tranches[index] if index < len(tranches) else None,
                     "claims_jpy": total, "paid_jpy": paid,
                     "paid_percent": None if total == 0 else (paid * 100) // total})
    return rows


def stress_tests(session: Session, actor: Actor) -> list[StressTest]:
    require_role(actor, BACK_OFFICE_READERS, "read stress tests")
    return list(session.scalars(select(StressTest).order_by(StressTest.id.desc())))


def get_stress_test(session: Session, actor: Actor, test_id: int) -> StressTest:
    require_role(actor, BACK_OFFICE_READERS, "read stress tests")
    row = session.get(StressTest, test_id)
    if row is None:
        raise NotFoundError(f"no stress test {test_id}")
    return row


def stress_csv(rows: list[StressTest]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "label", "as_of", "wallet", "share_lost", "loss_jpy", "customers", "funded_jpy",
                     "shortfall_jpy", "sources_used", "created_by", "created_at"])
    for row in rows:
        details = json.loads(row.details)
        writer.writerow([row.id, _cell(row.label), row.as_of.isoformat(), row.wallet,
                         canonical_decimal(row.share_lost), row.loss_jpy, row.customers, row.funded_jpy,
                         row.shortfall_jpy, _cell(";".join(f"{s['id']}={s['used_jpy']}" for s in details["sources"])),
                         _cell(row.created_by_label), row.created_at.isoformat()])
    return out.getvalue()


def policies_numbers(session: Session) -> list[str]:
    return list(session.scalars(select(InsurancePolicy.policy_number).order_by(InsurancePolicy.policy_number)))
