"""Zengin (全銀協) transfer files: payments the zengin rail marked "submitted" leave the
exchange as 総合振込 files, one per paying account and transfer date, which staff download and
hand to the bank; the bank's result file, imported back, marks each payment paid or failed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from payouts.audit.log import record_event, record_events
from payouts.db.models import Disbursement, PayingAccount, PayoutDestination, ReserveEntry, ZenginFile
from payouts.db.session import transaction
from payouts.db.types import utcnow
from payouts.domain.bank_accounts import ACCOUNT_TYPES, BankAccount, to_zengin_kana
from payouts.domain.disbursements import PERMANENT_REASONS, DisbursementStatus
from payouts.domain.errors import ConflictError, NotFoundError, ValidationError
from payouts.domain.roles import BACK_OFFICE_READERS, STAFF_WRITERS, Actor
from payouts.rails.zengin import MAX_ITEMS, PayingAccountSpec, ZenginItem, build_transfer_file, parse_result_file
from payouts.services import disbursements
from payouts.services.access import require_role

S = DisbursementStatus


def set_paying_account(session: Session, actor: Actor, *, purpose: str, company_code: str, company_name: str,
                       bank_code: str, bank_name: str, branch_code: str, branch_name: str, account_type: str,
                       account_number: str) -> PayingAccount:
    """Record (or replace) the exchange's account payments of ``purpose`` leave from."""
    require_role(actor, STAFF_WRITERS, "set paying accounts")
    if purpose not in ("reserve", "insurance"):
        raise ValidationError("purpose", "must be reserve or insurance")
    checks = (("company_code", company_code, 10), ("bank_code", bank_code, 4), ("branch_code", branch_code, 3))
    for name, value, width in checks:
        if not (value.isascii() and value.isdigit() and len(value) == width):
            raise ValidationError(name, f"must be {width} digits")
    if account_type not in ACCOUNT_TYPES:
        raise ValidationError("account_type", f"must be one of {', '.join(ACCOUNT_TYPES)}")
    if not (account_number.isascii() and account_number.isdigit() and 1 <= len(account_number) <= 7):
        raise ValidationError("account_number", "must be 1 to 7 digits")
    names = {}
    for name, value, width in (("company_name", company_name, 40), ("bank_name", bank_name, 15),
                               ("branch_name", branch_name, 15)):
        names[name] = to_zengin_kana(value, field=name)[:width]
        if not names[name]:
            raise ValidationError(name, "is empty")
    values = {"company_code": company_code, "company_name_kana": names["company_name"],
              "bank_code": bank_code, "bank_name_kana": names["bank_name"],
              "branch_code": branch_code, "branch_name_kana": names["branch_name"],
              "account_type": account_type, "account_number": account_number.zfill(7)}
    with transaction(session):
        account = session.scalar(select(PayingAccount).where(PayingAccount.purpose == purpose).with_for_update())
        before = {k: getattr(account, k) for k in values} if account else None
        if account is None:
            account = PayingAccount(purpose=purpose, **values)
            session.add(account)
        else:
            for key, value in values.items():
                setattr(account, key, value)
        session.flush()
        record_event(session, actor, "paying_account.set", "paying_account", purpose,
                     f"Paying account for {purpose} set", {k: [before[k] if before else None, v]
                                                           for k, v in values.items()})
    return account


def _spec(account: PayingAccount) -> PayingAccountSpec:
    return PayingAccountSpec(account.company_code, account.company_name_kana, account.bank_code,
                             account.bank_name_kana, account.branch_code, account.branch_name_kana,
                             account.account_type, account.account_number)


def create_transfer_files(session: Session, actor: Actor, transfer_date: dt.date) -> list[ZenginFile]:
    """Gather submitted payments not yet in a file into one file per paying account for
    ``transfer_date`` (reserve payments from the reserve's account, insurers' and recovered
    money from the insurance account, or the reserve's when none is set)."""
    require_role(actor, STAFF_WRITERS, "create transfer files")
    with transaction(session):
        accounts = {a.purpose: a for a in session.scalars(select(PayingAccount))}
        if "reserve" not in accounts:
            raise ConflictError("no paying account for the reserve is set: set it before creating files")
        rows = session.execute(
            select(Disbursement.id, Disbursement.amount_jpy, Disbursement.source_id, PayoutDestination)
            .join(PayoutDestination, PayoutDestination.id == Disbursement.destination_id)
            .where(Disbursement.status == S.SUBMITTED.value, Disbursement.rail == "zengin",
                   Disbursement.zengin_file_id.is_(None))
            .order_by(Disbursement.id).with_for_update(of=Disbursement)).all()
        if not rows:
            raise ValidationError("payments", "no submitted payments are waiting for a transfer file")
        groups: dict[str, list] = defaultdict(list)
        for row in rows:
            purpose = "reserve" if row.source_id == disbursements.RESERVE or "insurance" not in accounts else "insurance"
            groups[purpose].append(row)
        files = []
        for purpose, items in sorted(groups.items()):
            account = accounts[purpose]
            if session.scalar(select(ZenginFile.id).where(ZenginFile.paying_account_id == account.id,
                                                         ZenginFile.transfer_date == transfer_date)):
                raise ConflictError(f"a {purpose} transfer file for {transfer_date} already exists; choose another date")
            if len(items) > MAX_ITEMS:
                raise ValidationError("payments", f"{len(items):,} payments exceed one file's {MAX_ITEMS:,}")
            zengin_items = [ZenginItem(r.id, r.amount_jpy, BankAccount(
                r.PayoutDestination.bank_code, r.PayoutDestination.branch_code, r.PayoutDestination.account_type,
                r.PayoutDestination.account_number, r.PayoutDestination.holder_kana)) for r in items]
            content = build_transfer_file(_spec(account), transfer_date, zengin_items)
            zfile = ZenginFile(paying_account_id=account.id, transfer_date=transfer_date, content=content,
                               sha256=hashlib.sha256(content).hexdigest(), record_count=len(items),
                               total_jpy=sum(r.amount_jpy for r in items), created_by_label=actor.label)
            session.add(zfile)
            session.flush()
            session.execute(update(Disbursement).where(Disbursement.id.in_([r.id for r in items]))
                            .values(zengin_file_id=zfile.id, updated_at=utcnow())
                            .execution_options(synchronize_session=False))
            record_event(session, actor, "zengin_file.created", "zengin_file", zfile.id,
                         f"Transfer file #{zfile.id} ({purpose}, {transfer_date}): {len(items)} payments,"
                         f" ¥{zfile.total_jpy:,}", {"sha256": zfile.sha256, "count": len(items),
                                                    "total_jpy": zfile.total_jpy})
            files.append(zfile)
    return files


def list_files(session: Session, actor: Actor) -> list[ZenginFile]:
    require_role(actor, BACK_OFFICE_READERS, "read transfer files")
    return list(session.scalars(select(ZenginFile).order_by(ZenginFile.id.desc()).limit(200)))


def get_file(session: Session, actor: Actor, file_id: int) -> ZenginFile:
    require_role(actor, BACK_OFFICE_READERS, "read transfer files")
    zfile = session.get(ZenginFile, file_id)
    if zfile is None:
        raise NotFoundError(f"no transfer file #{file_id}")
    return zfile


def import_result(session: Session, actor: Actor, file_id: int, data: bytes) -> dict[str, int]:
    """Settle a transfer file's payments from the bank's result file, all or nothing: every
    record must name a payment of this file with its amount, each exactly once."""
    require_role(actor, STAFF_WRITERS, "import bank results")
    results = parse_result_file(data)
    with transaction(session):
        zfile = session.scalar(select(ZenginFile).where(ZenginFile.id == file_id).with_for_update())
        if zfile is None:
            raise NotFoundError(f"no transfer file #{file_id}")
        if zfile.result_imported_at is not None:
            raise ConflictError(f"the result of transfer file #{file_id} was already imported")
        rows = {r.id: r for r in session.execute(
            select(Disbursement.id, Disbursement.amount_jpy, Disbursement.status, Disbursement.source_id,
                   Disbursement.customer_id, Disbursement.incident_id)
            .where(Disbursement.zengin_file_id == file_id).with_for_update()).all()}
        seen = set()
        for result in results:
            row = rows.get(result.disbursement_id)
            if row is None:
                raise ValidationError("file", f"payment {result.disbursement_id} is not in transfer file #{file_id}")
            if row.amount_jpy != result.amount_jpy:
                raise ValidationError("file", f"payment {row.id}: the bank reports ¥{result.amount_jpy:,},"
                                              f" the file sent ¥{row.amount_jpy:,}")
            if row.status != S.SUBMITTED.value:
                raise ConflictError(f"payment {row.id} is {row.status}, not waiting for a bank result")
            seen.add(row.id)
        missing = sorted(set(rows) - seen)
        if missing:
            raise ValidationError("file", f"the result does not mention payments {missing[:10]}")
        now = utcnow()
        paid, failed, events = [], [], []
        reserve_paid: dict[int, int] = defaultdict(int)
        for result in results:
            row = rows[result.disbursement_id]
            if result.paid:
                paid.append(row.id)
                if row.source_id == disbursements.RESERVE:
                    reserve_paid[row.incident_id] += row.amount_jpy
            else:
                failed.append((row.id, PERMANENT_REASONS.get(result.reason, result.reason)))
            events.append((f"disbursement.{'paid' if result.paid else 'needs_attention'}", "disbursement", row.id,
                           f"Payment #{row.id}: {'paid' if result.paid else result.reason} (bank result, file #{file_id})",
                           {"status": [S.SUBMITTED.value, S.PAID.value if result.paid else S.NEEDS_ATTENTION.value]}))
        if paid:
            session.execute(update(Disbursement).where(Disbursement.id.in_(paid)).values(
                status=S.PAID.value, paid_at=now, updated_at=now).execution_options(synchronize_session=False))
        for disbursement_id, reason in failed:
            session.execute(update(Disbursement).where(Disbursement.id == disbursement_id).values(
                status=S.NEEDS_ATTENTION.value, failure_reason=reason[:300], updated_at=now))
        for incident_id, amount in reserve_paid.items():
            session.add(ReserveEntry(kind="payment", amount_jpy=amount, incident_id=incident_id,
                                     created_by_label=actor.label, memo=f"Transfer file #{file_id}"))
        record_events(session, actor, events)
        disbursements.settle_paid(session, actor, [(rows[i].incident_id, rows[i].customer_id, rows[i].amount_jpy)
                                                   for i in paid], now)
        zfile.result_imported_at = now
        record_event(session, actor, "zengin_file.result_imported", "zengin_file", file_id,
                     f"Bank result of transfer file #{file_id}: {len(paid)} paid, {len(failed)} failed",
                     {"paid": len(paid), "failed": len(failed)})
    return {"paid": len(paid), "failed": len(failed)}
