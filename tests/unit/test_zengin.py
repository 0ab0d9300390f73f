"""Zengin 総合振込 files: record layout, refusals, round trips and the bank's result file."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payouts.domain.bank_accounts import BankAccount, parse_bank_account
from payouts.domain.errors import ValidationError
from payouts.rails.base import Outcome, PaymentOrder
from payouts.rails.zengin import (
    MAX_ITEM_AMOUNT,
    PayingAccountSpec,
    ZenginItem,
    ZenginRail,
    ZenginResult,
    ZenginTrailer,
    build_transfer_file,
    make_result_file,
    parse_result_file,
    parse_transfer_file,
)

PAYER = PayingAccountSpec(
    company_code="1234567890", company_name_kana="カ）コウカンジョ", bank_code="0001",
    bank_name_kana="ミズホ", branch_code="001", branch_name_kana="ホンテン",
    account_type="current", account_number="7654321",
)
DAY = dt.date(2026, 4, 1)


def acc(number: str = "1234567", name: str = "ヤマダ タロウ", kind: str = "ordinary") -> BankAccount:
    return parse_bank_account(bank_code="0005", branch_code="123", account_type=kind,
                              account_number=number, holder_name=name)


def items(*amounts: int) -> list[ZenginItem]:
    return [ZenginItem(i + 1, amount, acc()) for i, amount in enumerate(amounts)]


def records(data: bytes) -> list[bytes]:
    assert data.endswith(b"\r\n")
    return data[:-2].split(b"\r\n")


def test_layout_of_every_record():
    data = build_transfer_file(PAYER, DAY, [
        ZenginItem(42, 150_000, acc("45", "ヤマダ タロウ", "savings")),
        ZenginItem(7, 3, acc()),
    ])
    header, first, second, trailer, end = records(data)
    assert all(len(r) == 120 for r in (header, first, second, trailer, end))

    h = header.decode("cp932")
    assert h[0:1] == "1" and h[1:3] == "21" and h[3:4] == "0"
    assert h[4:14] == "1234567890"
    assert h[14:54] == "ｶ)ｺｳｶﾝｼﾞﾖ".ljust(40)
    assert h[54:58] == "0401"
    assert h[58:62] == "0001" and h[62:77] == "ﾐｽﾞﾎ".ljust(15)
    assert h[77:80] == "001" and h[80:95] == "ﾎﾝﾃﾝ".ljust(15)
    assert h[95:96] == "2" and h[96:103] == "7654321" and h[103:] == " " * 17

    d = first.decode("cp932")
    assert d[0] == "2"
    assert d[1:5] == "0005" and d[5:20] == " " * 15
    assert d[20:23] == "123" and d[23:38] == " " * 15
    assert d[38:42] == " " * 4  # 手形交換所番号
    assert d[42] == "4"  # savings
    assert d[43:50] == "0000045"
    assert d[50:80] == "ﾔﾏﾀﾞ ﾀﾛｳ".ljust(30)
    assert d[80:90] == "0000150000"
    assert d[90] == "0"
    assert d[91:101] == "0000000042"  # 顧客コード1: the disbursement id
    assert d[101:111] == " " * 10
    assert d[111] == "7"  # テレ振込
    assert d[112:] == " " * 8  # 識別表示, then the dummy the result code goes into

    t = trailer.decode("cp932")
    assert t[0] == "8" and t[1:7] == "000002" and t[7:19] == "000000150003" and t[19:] == " " * 101
    assert end == b"9" + b" " * 119


def test_half_width_kana_are_single_shift_jis_bytes():
    data = build_transfer_file(PAYER, DAY, items(1))
    assert "ﾔﾏﾀﾞ".encode("cp932") in data
    assert len("ﾔﾏﾀﾞ".encode("cp932")) == 4


@pytest.mark.parametrize("newline", [b"\r\n", b"\n", b""])
def test_separator_is_a_parameter_and_every_form_reads_back(newline):  # type: ignore[no-untyped-def]
    data = build_transfer_file(PAYER, DAY, items(5, 6), newline=newline)
    assert len(data) == 5 * (120 + len(newline))
    _, read, trailer = parse_transfer_file(data)
    assert [i.amount_jpy for i in read] == [5, 6] and trailer == ZenginTrailer(2, 11)


def test_bad_separator_is_refused():
    with pytest.raises(ValueError):
        build_transfer_file(PAYER, DAY, items(1), newline=b"\r")


def test_long_names_are_truncated_to_their_fields():
    payer = PayingAccountSpec("1234567890", "ア" * 50, "0001", "ギンコウメイガナガイギンコウデス",
                              "001", "シテンメイモナガイシテンデスヨ", "ordinary", "123")
    header, *_ = records(build_transfer_file(payer, DAY, items(1)))
    h = header.decode("cp932")
    assert h[14:54] == "ｱ" * 40
    assert h[62:77] == "ｷﾞﾝｺｳﾒｲｶﾞﾅｶﾞｲｷﾞ"  # 15 characters, a ﾞ counting as one
    assert h[96:103] == "0000123"  # the payer's number is padded like a customer's


@pytest.mark.parametrize("bad, field", [
    (dict(company_code="123456789"), "payer.company_code"),
    (dict(company_code="12345678901"), "payer.company_code"),
    (dict(company_name_kana="株式会社"), "payer.company_name_kana"),
    (dict(company_name_kana=" "), "payer.company_name_kana"),
    (dict(bank_code="01"), "payer.bank_code"),
    (dict(bank_name_kana=""), "payer.bank_name_kana"),
    (dict(branch_code="1234"), "payer.branch_code"),
    (dict(branch_name_kana="本店"), "payer.branch_name_kana"),
    (dict(account_type="checking"), "payer.account_type"),
    (dict(account_number="12345678"), "payer.account_number"),
    (dict(account_number="12a"), "payer.account_number"),
])
def test_bad_payer_is_refused(bad, field):  # type: ignore[no-untyped-def]
    values = {**PAYER.__dict__, **bad}
    with pytest.raises(ValidationError) as err:
        build_transfer_file(PayingAccountSpec(**values), DAY, items(1))
    assert err.value.field == field


def test_empty_file_is_refused():
    with pytest.raises(ValidationError, match="at least one"):
        build_transfer_file(PAYER, DAY, [])


@pytest.mark.parametrize("item, field, words", [
    (ZenginItem(1, 0, acc()), "items[1].amount_jpy", "disbursement 1"),
    (ZenginItem(1, -5, acc()), "items[1].amount_jpy", "outside"),
    (ZenginItem(1, MAX_ITEM_AMOUNT + 1, acc()), "items[1].amount_jpy", "outside"),
    (ZenginItem(1, True, acc()), "items[1].amount_jpy", "outside"),
    (ZenginItem(1, 10.0, acc()), "items[1].amount_jpy", "outside"),  # type: ignore[arg-type]
    (ZenginItem(10**10, 5, acc()), "items[1].disbursement_id", "顧客コード1"),
    (ZenginItem(0, 5, acc()), "items[1].disbursement_id", "顧客コード1"),
    (ZenginItem(5, 5, "not an account"), "items[1].account", "BankAccount"),  # type: ignore[arg-type]
])
def test_bad_items_are_refused_naming_the_item(item, field, words):  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError) as err:
        build_transfer_file(PAYER, DAY, [ZenginItem(99, 1, acc()), item])
    assert err.value.field == field
    assert words in err.value.message


def test_a_disbursement_twice_in_one_file_is_refused():
    with pytest.raises(ValidationError, match="disbursement 3 appears twice"):
        build_transfer_file(PAYER, DAY, [ZenginItem(3, 1, acc()), ZenginItem(3, 1, acc())])


def test_largest_amount_and_id_fit():
    data = build_transfer_file(PAYER, DAY, [ZenginItem(9_999_999_999, MAX_ITEM_AMOUNT, acc())])
    _, [item], trailer = parse_transfer_file(data)
    assert (item.disbursement_id, item.amount_jpy) == (9_999_999_999, MAX_ITEM_AMOUNT)
    assert trailer.total_jpy == MAX_ITEM_AMOUNT


def test_total_beyond_twelve_digits_is_refused():
    ok = [ZenginItem(i, MAX_ITEM_AMOUNT, acc()) for i in range(1, 101)]  # 999,999,999,900
    build_transfer_file(PAYER, DAY, ok)
    with pytest.raises(ValidationError, match="12-digit") as err:
        build_transfer_file(PAYER, DAY, ok + [ZenginItem(101, 100, acc())])
    assert err.value.field == "items"


def test_header_fields_read_back():
    header, _, _ = parse_transfer_file(build_transfer_file(PAYER, DAY, items(1)))
    assert header == {
        "company_code": "1234567890", "company_name_kana": "ｶ)ｺｳｶﾝｼﾞﾖ", "transfer_date": "0401",
        "bank_code": "0001", "bank_name_kana": "ﾐｽﾞﾎ", "branch_code": "001",
        "branch_name_kana": "ﾎﾝﾃﾝ", "account_type": "current", "account_number": "7654321",
    }


KANA_NAMES = st.text(alphabet=st.sampled_from(list("ｱｲｳｴｵｶﾞﾊﾟﾝﾞﾟ ABC019()-./,ﾔﾏﾀﾞﾛｳ")), max_size=40)
ACCOUNTS = st.builds(
    lambda bank, branch, kind, number, name: parse_bank_account(
        bank_code=bank, branch_code=branch, account_type=kind, account_number=number,
        holder_name=name[:30] or "ｱ",
    ),
    st.from_regex(r"\A[0-9]{4}\Z").filter(lambda code: code != "9900"),
    st.from_regex(r"\A[0-9]{3}\Z"),
    st.sampled_from(["ordinary", "current", "savings"]),
    st.from_regex(r"\A[0-9]{1,7}\Z"),
    KANA_NAMES.map(lambda text: text.strip() or "ｱ"),
)


@st.composite
def item_lists(draw):  # type: ignore[no-untyped-def]
    ids = draw(st.lists(st.integers(1, 9_999_999_999), min_size=1, max_size=15, unique=True))
    return [ZenginItem(i, draw(st.integers(1, MAX_ITEM_AMOUNT)), draw(ACCOUNTS)) for i in ids]


@settings(max_examples=60, deadline=None)
@given(item_lists(), st.dates(dt.date(2000, 1, 1), dt.date(2099, 12, 31)),
       st.sampled_from([b"\r\n", b"\n", b""]))
def test_build_parse_round_trip(file_items, day, newline):  # type: ignore[no-untyped-def]
    data = build_transfer_file(PAYER, day, file_items, newline=newline)
    assert len(data) % (120 + len(newline)) == 0
    header, read, trailer = parse_transfer_file(data)
    assert read == file_items
    assert header["transfer_date"] == day.strftime("%m%d")
    assert trailer == ZenginTrailer(len(file_items), sum(i.amount_jpy for i in file_items))
    paid = parse_result_file(make_result_file(data, {}))
    assert [(r.disbursement_id, r.amount_jpy, r.paid) for r in paid] == [
        (i.disbursement_id, i.amount_jpy, True) for i in file_items
    ]


# --- Result files -----------------------------------------------------------------------------


def transfer() -> bytes:
    return build_transfer_file(PAYER, DAY, items(100, 200, 300, 400, 500))


def test_result_file_settles_each_disbursement():
    result = make_result_file(transfer(), {2: "no_account", 3: "closed_account",
                                           4: "name_mismatch", 5: "other"})
    assert parse_result_file(result) == [
        ZenginResult(1, 100, True, ""),
        ZenginResult(2, 200, False, "no_account"),
        ZenginResult(3, 300, False, "closed_account"),
        ZenginResult(4, 400, False, "name_mismatch"),
        ZenginResult(5, 500, False, "other"),
    ]
    codes = [r[113:114] for r in records(result)[1:6]]
    assert codes == [b"0", b"1", b"2", b"3", b"9"]


def test_result_file_keeps_the_transfer_records_otherwise():
    original, result = records(transfer()), records(make_result_file(transfer(), {}))
    assert len(original) == len(result)
    for a, b in zip(original, result, strict=True):
        assert a[:113] == b[:113] and a[114:] == b[114:]


@pytest.mark.parametrize("outcomes, words", [
    ({9: "no_account"}, "disbursement 9 is not in the file"),
    ({1: "bounced"}, "unknown reason 'bounced'"),
    ({1: "key_reused"}, "unknown reason"),  # not something a bank file says
])
def test_make_result_file_refuses_bad_outcomes(outcomes, words):  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError, match=words):
        make_result_file(transfer(), outcomes)


def paid_lines() -> list[bytes]:
    return records(make_result_file(transfer(), {}))


def join(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\r\n" for line in lines)


def assert_refused(data: bytes, line: int, words: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_result_file(data)
    assert err.value.field == "file"
    assert err.value.message.startswith(f"line {line}: "), err.value.message
    assert words in err.value.message, err.value.message


def test_result_structure_errors_name_the_line():
    lines = paid_lines()
    assert_refused(join([lines[0], lines[1][:119], *lines[2:]]), 2, "119 bytes")
    assert_refused(join([lines[0], lines[1] + b" ", *lines[2:]]), 2, "121 bytes")
    assert_refused(join(lines[:3] + lines[4:]), 6, "trailer counts 5 records; there are 4")
    bad_total = lines[6][:7] + b"000000009999" + lines[6][19:]
    assert_refused(join(lines[:6] + [bad_total] + lines[7:]), 7, "1,500")
    assert_refused(join(lines[:6] + lines[7:]), 7, "end record (9) before the trailer")
    assert_refused(join(lines[:7]), 8, "without an end record")
    assert_refused(join(lines + [lines[1]]), 9, "after the end record")
    assert_refused(join(lines[1:]), 1, "outside a header")
    assert_refused(join([lines[0], b"3" + lines[1][1:], *lines[2:]]), 2, "unknown record type '3'")
    assert_refused(join([lines[0], lines[1][:113] + b"7" + lines[1][114:], *lines[2:]]), 2,
                   "unknown result code '7'")
    assert_refused(join([lines[0], lines[1][:80] + b"00000001x0" + lines[1][90:], *lines[2:]]), 2,
                   "振込金額 is not a number")
    same_id = lines[2][:91] + b"0000000001" + lines[2][101:]
    assert_refused(join([lines[0], lines[1], same_id, *lines[3:]]), 3,
                   "disbursement 1 also appears on line 2")
    header_other_kind = lines[0][:1] + b"11" + lines[0][3:]
    assert_refused(join([header_other_kind, *lines[1:]]), 1, "expected 21")


def test_result_encoding_errors_name_the_line():
    lines = paid_lines()
    undecodable = lines[1][:50] + b"\x81\x20" + lines[1][52:]  # a lead byte with no trail
    assert_refused(join([lines[0], undecodable, *lines[2:]]), 2, "Shift_JIS")
    double = lines[1][:50] + "ア".encode("cp932") + lines[1][52:]  # 120 bytes, 119 characters
    assert_refused(join([lines[0], double, *lines[2:]]), 2, "double-byte")
    control = lines[1][:50] + b"\t" + lines[1][51:]
    assert_refused(join([lines[0], control, *lines[2:]]), 2, "control character")


def test_a_transfer_file_is_not_a_result_file():
    assert_refused(transfer(), 2, "no result code")


def test_empty_and_non_bytes_are_refused():
    with pytest.raises(ValidationError, match="empty"):
        parse_result_file(b"")
    with pytest.raises(ValidationError, match="bytes"):
        parse_result_file("1" * 120)  # type: ignore[arg-type]


def test_result_without_separators_and_with_eof_mark_is_read():
    lines = paid_lines()
    assert len(parse_result_file(b"".join(lines))) == 5
    assert len(parse_result_file(join(lines) + b"\x1a")) == 5
    assert len(parse_result_file(b"\n".join(lines))) == 5  # no final newline


def test_several_groups_in_one_result_are_all_read():
    first = records(make_result_file(build_transfer_file(PAYER, DAY, items(1, 2)), {}))
    second = records(make_result_file(
        build_transfer_file(PAYER, DAY, [ZenginItem(10, 7, acc())]), {10: "other"}))
    data = join(first[:-1] + second)
    assert [(r.disbursement_id, r.paid) for r in parse_result_file(data)] == [
        (1, True), (2, True), (10, False)
    ]
    with pytest.raises(ValidationError, match="second header"):
        parse_transfer_file(data)


def test_zengin_rail_submits_every_order():
    orders = [PaymentOrder(f"pay-{i}-1", 1000 * i, acc()) for i in range(1, 4)]
    results = ZenginRail().pay(orders)
    assert [r.idempotency_key for r in results] == [o.idempotency_key for o in orders]
    assert {r.outcome for r in results} == {Outcome.SUBMITTED}
    assert ZenginRail.name == "zengin"


def test_zengin_rail_rejects_an_amount_no_record_can_carry():
    [result] = ZenginRail().pay([PaymentOrder("pay-1-1", MAX_ITEM_AMOUNT + 1, acc())])
    assert result.outcome is Outcome.REJECTED and result.reason == "other"
