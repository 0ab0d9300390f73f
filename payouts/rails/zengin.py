"""Zengin (全銀協) 総合振込 files: the transfer file staff upload to the bank, and its result.

Payments on this rail leave in a file, not in a call: ``ZenginRail.pay`` only marks orders
SUBMITTED, staff download the day's file per paying account (``build_transfer_file``), upload it
to the bank, and later import the bank's 振込結果 file (``parse_result_file``), which settles
each disbursement as paid or failed.

The format: fixed 120-byte records in Shift_JIS (cp932), each followed by a separator (CRLF by
default; the reader also takes LF or none). Only ASCII and half-width katakana occur, one byte a
character. A file is a header (1), data records (2), a trailer (8) and an end record (9):

  header   1 データ区分 "1" | 2 種別コード "21" 総合振込 | 1 コード区分 "0" (JIS/SJIS)
           10 依頼人コード | 40 依頼人名 | 4 取組日 MMDD | 4 仕向銀行番号 | 15 仕向銀行名
           3 仕向支店番号 | 15 仕向支店名 | 1 預金種目 | 7 口座番号 | 17 ダミー
  data     1 "2" | 4 被仕向銀行番号 | 15 被仕向銀行名 | 3 被仕向支店番号 | 15 被仕向支店名
           4 手形交換所番号 | 1 預金種目 | 7 口座番号 | 30 受取人名 | 10 振込金額
           1 新規コード "0" | 10 顧客コード1 | 10 顧客コード2 | 1 振込指定区分 "7" (テレ振込)
           1 識別表示 | 7 ダミー
  trailer  1 "8" | 6 合計件数 | 12 合計金額 | 101 ダミー
  end      1 "9" | 119 ダミー

顧客コード1 carries the disbursement id (zero-padded to 10 digits), so a result matches its
instruction without relying on names or amounts. Bank and branch names of the receiving account
are left blank: the codes identify the account and banks accept blank names.

Result files: banks return the transfer file's records with a result code. Where they put it
varies by bank; this product reads the first byte of the data record's trailing dummy area
(byte 114, 0-based offset 113): "0" 振込済 (paid), "1" 口座なし (no_account), "2" 口座解約
(closed_account), "3" 名義相違 (name_mismatch), "9" その他 (other). A bank with another layout
needs its result converted to this one before import.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from payouts.domain.bank_accounts import (
    ZENGIN_ACCOUNT_TYPE_CODES,
    BankAccount,
    to_zengin_kana,
)
from payouts.domain.errors import ValidationError
from payouts.rails.base import Outcome, PaymentOrder, RailResult

RECORD_LENGTH = 120
ENCODING = "cp932"
KIND_GENERAL_TRANSFER = "21"  # 種別コード: 総合振込
CODE_TYPE_JIS = "0"  # コード区分: JIS (Shift_JIS) rather than EBCDIC
TRANSFER_KIND_TELEGRAPHIC = "7"  # 振込指定区分: テレ振込

MAX_ITEM_AMOUNT = 9_999_999_999  # 振込金額: 10 digits
MAX_FILE_TOTAL = 999_999_999_999  # 合計金額: 12 digits
MAX_ITEMS = 999_999  # 合計件数: 6 digits
MAX_DISBURSEMENT_ID = 9_999_999_999  # 顧客コード1: 10 digits

#: Result code (offset 113 of a data record) -> reason code ("paid" when the money arrived).
RESULT_CODES = {
    "0": "paid",
    "1": "no_account",
    "2": "closed_account",
    "3": "name_mismatch",
    "9": "other",
}
_REASON_TO_CODE = {reason: code for code, reason in RESULT_CODES.items()}
_TYPE_FROM_CODE = {code: kind for kind, code in ZENGIN_ACCOUNT_TYPE_CODES.items()}
_RESULT_OFFSET = 113

# (field, width) in record order; widths add up to 120, checked at import by _check_layouts.
_HEADER = (
    ("record_type", 1), ("kind", 2), ("code_type", 1), ("company_code", 10),
    ("company_name_kana", 40), ("transfer_date", 4), ("bank_code", 4), ("bank_name_kana", 15),
    ("branch_code", 3), ("branch_name_kana", 15), ("account_type", 1), ("account_number", 7),
    ("dummy", 17),
)
_DATA = (
    ("record_type", 1), ("bank_code", 4), ("bank_name_kana", 15), ("branch_code", 3),
    ("branch_name_kana", 15), ("clearing_house", 4), ("account_type", 1),
    ("account_number", 7), ("holder_kana", 30), ("amount", 10), ("new_code", 1),
    ("customer_code_1", 10), ("customer_code_2", 10), ("transfer_kind", 1),
    ("identification", 1), ("result_code", 1), ("dummy", 6),
)
_TRAILER = (("record_type", 1), ("count", 6), ("total", 12), ("dummy", 101))
_END = (("record_type", 1), ("dummy", 119))


def _check_layouts() -> None:
    for layout in (_HEADER, _DATA, _TRAILER, _END):
        assert sum(width for _, width in layout) == RECORD_LENGTH, layout
    assert sum(width for _, width in _DATA[:15]) == _RESULT_OFFSET


_check_layouts()


@dataclass(frozen=True)
class PayingAccountSpec:
    """The exchange's account a file pays from, as the bank registered it for 総合振込."""

    company_code: str  # 依頼人コード, 10 digits, given by the bank
    company_name_kana: str
    bank_code: str
    bank_name_kana: str
    branch_code: str
    branch_name_kana: str
    account_type: str  # "ordinary", "current" or "savings"
    account_number: str


@dataclass(frozen=True)
class ZenginItem:
    disbursement_id: int
    amount_jpy: int
    account: BankAccount


@dataclass(frozen=True)
class ZenginTrailer:
    count: int
    total_jpy: int


@dataclass(frozen=True)
class ZenginResult:
    disbursement_id: int
    amount_jpy: int
    paid: bool
    #: "" when paid, otherwise a reason code (RESULT_CODES' values).
    reason: str


# --- Writing ----------------------------------------------------------------------------------


def _record(layout: tuple[tuple[str, int], ...], values: Mapping[str, str]) -> str:
    parts = []
    for name, width in layout:
        value = values.get(name, "")
        if len(value) > width:  # pragma: no cover - callers truncate or validate first
            raise ValueError(f"{name} is wider than {width}: {value!r}")
        parts.append(value.ljust(width))
    return "".join(parts)


def _encode(record: str) -> bytes:
    data = record.encode(ENCODING)
    if len(data) != RECORD_LENGTH:  # pragma: no cover - only single-byte characters get here
        raise ValueError(f"a record encoded to {len(data)} bytes: {record!r}")
    return data


def _join(records: Sequence[str], newline: bytes) -> bytes:
    if newline not in (b"\r\n", b"\n", b""):
        raise ValueError("newline must be CRLF, LF or nothing")
    return b"".join(_encode(record) + newline for record in records)


def _digits_field(value: object, field: str, width: int, *, pad: bool = False) -> str:
    if not (isinstance(value, str) and value.isascii() and value.isdigit()):
        raise ValidationError(field, f"must be {width} digits")
    if pad and len(value) < width:
        value = value.rjust(width, "0")
    if len(value) != width:
        raise ValidationError(field, f"must be {width} digits")
    return value


def _kana_field(value: str, field: str, width: int) -> str:
    kana = to_zengin_kana(value, field=field)
    if not kana:
        raise ValidationError(field, "is empty")
    return kana[:width]


def _header(payer: PayingAccountSpec, transfer_date: dt.date) -> str:
    if payer.account_type not in ZENGIN_ACCOUNT_TYPE_CODES:
        raise ValidationError("payer.account_type", "must be ordinary, current or savings")
    if not isinstance(transfer_date, dt.date):
        raise ValidationError("transfer_date", "must be a date")
    return _record(_HEADER, {
        "record_type": "1",
        "kind": KIND_GENERAL_TRANSFER,
        "code_type": CODE_TYPE_JIS,
        "company_code": _digits_field(payer.company_code, "payer.company_code", 10),
        "company_name_kana": _kana_field(payer.company_name_kana, "payer.company_name_kana", 40),
        "transfer_date": transfer_date.strftime("%m%d"),
        "bank_code": _digits_field(payer.bank_code, "payer.bank_code", 4),
        "bank_name_kana": _kana_field(payer.bank_name_kana, "payer.bank_name_kana", 15),
        "branch_code": _digits_field(payer.branch_code, "payer.branch_code", 3),
        "branch_name_kana": _kana_field(payer.branch_name_kana, "payer.branch_name_kana", 15),
        "account_type": ZENGIN_ACCOUNT_TYPE_CODES[payer.account_type],
        "account_number": _digits_field(payer.account_number, "payer.account_number", 7, pad=True),
    })


def _data(index: int, item: object, seen: set[int]) -> str:
    field = f"items[{index}]"
    if not isinstance(item, ZenginItem):
        raise ValidationError(field, "is not a ZenginItem")
    ident = item.disbursement_id
    if type(ident) is not int or not 1 <= ident <= MAX_DISBURSEMENT_ID:
        raise ValidationError(
            f"{field}.disbursement_id",
            f"{ident!r} does not fit 顧客コード1 (1 to {MAX_DISBURSEMENT_ID:,})",
        )
    if ident in seen:
        # Two records for one disbursement would pay it twice.
        raise ValidationError(f"{field}.disbursement_id", f"disbursement {ident} appears twice")
    seen.add(ident)
    amount = item.amount_jpy
    if type(amount) is not int or not 1 <= amount <= MAX_ITEM_AMOUNT:
        raise ValidationError(
            f"{field}.amount_jpy",
            f"disbursement {ident}: {amount!r} yen is outside 1 to {MAX_ITEM_AMOUNT:,}",
        )
    account = item.account
    if not isinstance(account, BankAccount):
        raise ValidationError(f"{field}.account", f"disbursement {ident}: not a BankAccount")
    return _record(_DATA, {
        "record_type": "2",
        "bank_code": account.bank_code,
        "branch_code": account.branch_code,
        "account_type": ZENGIN_ACCOUNT_TYPE_CODES[account.account_type],
        "account_number": account.account_number,
        "holder_kana": to_zengin_kana(account.holder_kana)[:30],
        "amount": f"{amount:010d}",
        "new_code": "0",
        "customer_code_1": f"{ident:010d}",
        "transfer_kind": TRANSFER_KIND_TELEGRAPHIC,
    })


def build_transfer_file(
    payer: PayingAccountSpec,
    transfer_date: dt.date,
    items: Sequence[ZenginItem],
    *,
    newline: bytes = b"\r\n",
) -> bytes:
    """The 総合振込 file paying ``items`` from ``payer``'s account on ``transfer_date``."""
    if not items:
        raise ValidationError("items", "a transfer file needs at least one payment")
    if len(items) > MAX_ITEMS:
        raise ValidationError("items", f"{len(items):,} payments; a file holds {MAX_ITEMS:,}")
    records = [_header(payer, transfer_date)]
    seen: set[int] = set()
    records.extend(_data(index, item, seen) for index, item in enumerate(items))
    total = sum(item.amount_jpy for item in items)
    if total > MAX_FILE_TOTAL:
        raise ValidationError(
            "items", f"total {total:,} yen exceeds the file's 12-digit limit; split the file"
        )
    records.append(_record(_TRAILER, {
        "record_type": "8", "count": f"{len(items):06d}", "total": f"{total:012d}",
    }))
    records.append(_record(_END, {"record_type": "9"}))
    return _join(records, newline)


# --- Reading ----------------------------------------------------------------------------------


def _fail(line: int, message: str) -> ValidationError:
    return ValidationError("file", f"line {line}: {message}")


def _split_records(data: bytes) -> list[tuple[int, str]]:
    """(line number, text) for each record, after checking length, encoding and charset."""
    if not isinstance(data, (bytes, bytearray)):
        raise ValidationError("file", "must be bytes")
    if not data:
        raise ValidationError("file", "is empty")
    if b"\n" in data:
        raw = data.split(b"\n")
        if raw[-1] == b"":
            raw.pop()
        raw = [line[:-1] if line.endswith(b"\r") else line for line in raw]
        if raw and raw[-1] == b"\x1a":  # an old-style EOF mark after the last record
            raw.pop()
    else:
        raw = [data[start:start + RECORD_LENGTH] for start in range(0, len(data), RECORD_LENGTH)]
    records = []
    for number, line in enumerate(raw, start=1):
        if len(line) != RECORD_LENGTH:
            raise _fail(number, f"is {len(line)} bytes; a Zengin record is {RECORD_LENGTH}")
        try:
            text = bytes(line).decode(ENCODING)
        except UnicodeDecodeError as exc:
            raise _fail(number, f"does not decode as Shift_JIS at byte {exc.start + 1}") from None
        if len(text) != RECORD_LENGTH:
            raise _fail(number, "contains double-byte characters; Zengin records are half-width")
        for position, char in enumerate(text, start=1):
            if not (" " <= char <= "~" or "\uff61" <= char <= "\uff9f"):
                raise _fail(number, f"byte {position} is a control character ({ord(char):#04x})")
        records.append((number, text))
    return records


def _fields(layout: tuple[tuple[str, int], ...], text: str) -> dict[str, str]:
    out, start = {}, 0
    for name, width in layout:
        out[name] = text[start:start + width]
        start += width
    return out


def _number(line: int, value: str, label: str) -> int:
    if not (value.isascii() and value.isdigit()):
        raise _fail(line, f"{label} is not a number: {value!r}")
    return int(value)


@dataclass
class _Group:
    header_line: int
    header: dict[str, str]
    data: list[tuple[int, dict[str, str]]]
    trailer: ZenginTrailer | None = None


def _groups(records: list[tuple[int, str]]) -> list[_Group]:
    """Header/data/trailer groups up to the end record, with each trailer checked."""
    groups: list[_Group] = []
    current: _Group | None = None
    ended = False
    for line, text in records:
        if ended:
            raise _fail(line, "comes after the end record (9)")
        kind = text[0]
        if kind == "1":
            if current is not None:
                raise _fail(line, "header (1) before the previous group's trailer (8)")
            header = _fields(_HEADER, text)
            if header["kind"] != KIND_GENERAL_TRANSFER:
                raise _fail(line, f"種別コード is {header['kind']!r}; expected 21 (総合振込)")
            if header["code_type"] != CODE_TYPE_JIS:
                raise _fail(line, f"コード区分 is {header['code_type']!r}; expected 0 (JIS)")
            current = _Group(line, header, [])
        elif kind == "2":
            if current is None:
                raise _fail(line, "data record (2) outside a header/trailer group")
            fields = _fields(_DATA, text)
            _number(line, fields["amount"], "振込金額")
            _number(line, fields["customer_code_1"], "顧客コード1 (disbursement id)")
            current.data.append((line, fields))
        elif kind == "8":
            if current is None:
                raise _fail(line, "trailer (8) without a header")
            fields = _fields(_TRAILER, text)
            count = _number(line, fields["count"], "合計件数")
            total = _number(line, fields["total"], "合計金額")
            actual_total = sum(int(f["amount"]) for _, f in current.data)
            if count != len(current.data):
                raise _fail(line, f"trailer counts {count} records; there are {len(current.data)}")
            if total != actual_total:
                raise _fail(line, f"trailer total is {total:,} yen; the records add up to"
                                  f" {actual_total:,}")
            current.trailer = ZenginTrailer(count, total)
            groups.append(current)
            current = None
        elif kind == "9":
            if current is not None:
                raise _fail(line, "end record (9) before the trailer (8)")
            ended = True
        else:
            raise _fail(line, f"unknown record type {kind!r}")
    last = records[-1][0] if records else 0
    if current is not None:
        raise _fail(last + 1, "the file ends without a trailer (8)")
    if not ended:
        raise _fail(last + 1, "the file ends without an end record (9)")
    if not groups:
        raise _fail(1, "no header record (1)")
    return groups


def parse_transfer_file(data: bytes) -> tuple[dict[str, str], list[ZenginItem], ZenginTrailer]:
    """Read back a file built by build_transfer_file: header fields, items, trailer totals."""
    groups = _groups(_split_records(data))
    if len(groups) != 1:
        raise _fail(groups[1].header_line, "a second header; our transfer files hold one group")
    group = groups[0]
    raw = group.header
    account_type = _TYPE_FROM_CODE.get(raw["account_type"])
    if account_type is None:
        raise _fail(group.header_line, f"unknown 預金種目 {raw['account_type']!r}")
    header = {
        "company_code": raw["company_code"],
        "company_name_kana": raw["company_name_kana"].rstrip(),
        "transfer_date": raw["transfer_date"],
        "bank_code": raw["bank_code"],
        "bank_name_kana": raw["bank_name_kana"].rstrip(),
        "branch_code": raw["branch_code"],
        "branch_name_kana": raw["branch_name_kana"].rstrip(),
        "account_type": account_type,
        "account_number": raw["account_number"],
    }
    items = []
    for line, fields in group.data:
        kind = _TYPE_FROM_CODE.get(fields["account_type"])
        if kind is None:
            raise _fail(line, f"unknown 預金種目 {fields['account_type']!r}")
        try:
            account = BankAccount(
                bank_code=fields["bank_code"],
                branch_code=fields["branch_code"],
                account_type=kind,
                account_number=fields["account_number"],
                holder_kana=fields["holder_kana"].rstrip(),
            )
        except ValidationError as exc:
            raise _fail(line, f"{exc.field} {exc.message}") from None
        items.append(ZenginItem(int(fields["customer_code_1"]), int(fields["amount"]), account))
    assert group.trailer is not None
    return header, items, group.trailer


def parse_result_file(data: bytes) -> list[ZenginResult]:
    """The bank's 振込結果: one result per data record, every line checked before any is used."""
    results = []
    seen: dict[int, int] = {}
    for group in _groups(_split_records(data)):
        for line, fields in group.data:
            ident = int(fields["customer_code_1"])
            if ident in seen:
                raise _fail(line, f"disbursement {ident} also appears on line {seen[ident]}")
            seen[ident] = line
            code = fields["result_code"]
            reason = RESULT_CODES.get(code)
            if reason is None:
                if code == " ":
                    raise _fail(line, "no result code at byte 114 (is this the transfer file?)")
                raise _fail(line, f"unknown result code {code!r} at byte 114")
            paid = reason == "paid"
            results.append(ZenginResult(ident, int(fields["amount"]), paid, "" if paid else reason))
    return results


def make_result_file(
    transfer_file: bytes, outcomes: Mapping[int, str], *, newline: bytes = b"\r\n"
) -> bytes:
    """Play the bank: the result file for ``transfer_file``. ``outcomes`` maps a disbursement
    id to a reason code ("no_account", "closed_account", "name_mismatch", "other"); every
    other disbursement is paid."""
    records = _split_records(transfer_file)
    groups = _groups(records)
    in_file = {int(fields["customer_code_1"]) for group in groups for _, fields in group.data}
    for ident, reason in outcomes.items():
        if ident not in in_file:
            raise ValidationError("outcomes", f"disbursement {ident} is not in the file")
        if reason not in _REASON_TO_CODE:
            raise ValidationError(
                "outcomes",
                f"unknown reason {reason!r} for disbursement {ident};"
                f" use one of {', '.join(_REASON_TO_CODE)}",
            )
    out = []
    for _, text in records:
        if text[0] == "2":
            ident = int(_fields(_DATA, text)["customer_code_1"])
            code = _REASON_TO_CODE[outcomes.get(ident, "paid")]
            text = text[:_RESULT_OFFSET] + code + text[_RESULT_OFFSET + 1:]
        out.append(text)
    return _join(out, newline)


# --- The rail ---------------------------------------------------------------------------------


class ZenginRail:
    """Payments leave in a file that staff download; the result import settles them."""

    name = "zengin"

    def pay(self, orders: Sequence[PaymentOrder]) -> list[RailResult]:
        results = []
        for order in orders:
            if order.amount_jpy > MAX_ITEM_AMOUNT:
                # No Zengin record can carry it; staff must split or pay it another way.
                results.append(RailResult(order.idempotency_key, Outcome.REJECTED, None, "other"))
            else:
                results.append(RailResult(order.idempotency_key, Outcome.SUBMITTED, None, ""))
        return results
