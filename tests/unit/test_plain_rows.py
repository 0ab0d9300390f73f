"""The plain-rows check: whatever it calls plain, the full row rules accept unchanged."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from payouts.domain.loss_file import LossFileReader, LossRow, decode_lines, parse_header_line
from payouts.domain.plain_rows import PlainRowsCheck, plain_rows_pattern
from payouts.domain.sample_losses import loss_file_bytes

DECIMALS = {"JPY": 0, "BTC": 8, "ETH": 18, "USD": 2, "USDT": 6}
HEADER = b"customer_ref,asset,amount,name,email\n"


def all_plain(data: bytes, chunk: int = 1 << 20, decimals: dict[str, int] = DECIMALS) -> bool:
    """Run the check over a whole file (header included) fed in chunks of ``chunk`` bytes."""
    header, _, body = data.partition(b"\n")
    check = PlainRowsCheck(parse_header_line(header + b"\n"), decimals)
    pieces = [body[i:i + chunk] for i in range(0, len(body), chunk)]
    assert b"".join(check.watch(pieces)) == body  # the bytes pass through unchanged
    return check.all_plain


def test_a_ledger_export_is_plain_however_it_is_cut_into_chunks():
    data = loss_file_bytes(300)
    assert all_plain(data)
    assert all_plain(data, chunk=7)  # lines and UTF-8 characters split across chunks


def test_japanese_names_split_byte_by_byte_stay_plain():
    data = HEADER + "C1,JPY,5,佐藤　陽翔,\nC2,BTC,0.5,鈴木 結衣,yui@example.jp\n".encode()
    assert all_plain(data, chunk=1)


def test_windows_line_endings_and_a_last_line_without_one_are_plain():
    assert all_plain(HEADER.replace(b"\n", b"\r\n") + b"C1,JPY,5,,\r\nC2,BTC,1.50000000000,,a@b.jp")


def test_one_bad_line_anywhere_makes_the_file_not_plain():
    good = loss_file_bytes(50)
    for bad in (b"C9,BTC,0.123456789,,\n", b"C9,DOGE,1,,\n", b"C9,JPY,-1,,\n", b"C9,JPY,1.5,,\n",
                b"C9,JPY,,,\n", b"\n", b"C9,JPY,1,,not-an-address\n", b"C9,JPY,1\n"):
        lines = good.splitlines(keepends=True)
        assert not all_plain(b"".join(lines[:20] + [bad] + lines[20:]), chunk=64), bad
    # ... including the last line, with no newline after it.
    assert not all_plain(good + b"C9,BTC,0.123456789,,")


def test_valid_but_unusual_rows_are_left_to_the_full_check():
    for row in (b'C1,JPY,5,"Sato, Haruto",\n', b"C1, JPY,5,,\n", b"C1,JPY,5,Sato ,\n",
                "C1,JPY,5,,サトウ@example.jp\n".encode()):
        assert not all_plain(HEADER + row), row
    assert not all_plain(b"customer_ref,asset,amount\nC1,JPY,5" + b"0" * 5000 + b"\n")


def test_a_header_with_the_amount_away_from_the_asset_is_never_plain():
    assert plain_rows_pattern({"amount": 0, "customer_ref": 1, "asset": 2}, DECIMALS) is None
    assert plain_rows_pattern({"customer_ref": 0, "asset": 1, "amount": 2}, DECIMALS) is not None


# Fields that are valid, invalid, or valid only after trimming, mixed at random.
_REFS = st.sampled_from(["C1", "c-2.x:y@z/w", "", " C1", "C1 ", "-C1", "C 1", "C" * 64, "C" * 65, "Ｃ1"])
_ASSETS = st.sampled_from(["JPY", "BTC", "ETH", "USD", "USDT", "btc", "DOGE", " BTC", "", "US"])
_AMOUNTS = st.one_of(
    st.from_regex(r"\A[0-9]{1,3}(\.[0-9]{1,20})?\Z"),
    st.sampled_from(["", "-1", "1e5", ".5", "5.", "+1", " 1", "1 ", "１", "0" * 80 + "1",
                     "9" * 61, "9" * 79, "1.0000000000000000000", "0.000000000000000001"]),
)
_NAMES = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n,\""), max_size=6),
    st.sampled_from(["Sato Haruto", "佐藤　陽翔", " Sato", "Sato ", "x" * 200, "x" * 201, "a\tb"]),
)
_EMAILS = st.sampled_from(["", "a@b.jp", "a.b@c.d.e", "a@b", "a b@c.jp", "a@b@c.jp", "a;b@c.jp",
                           "@b.jp", "a@.jp", "a@b.", " a@b.jp", "x" * 250 + "@b.jp", "x" * 249 + "@b.jp"])


@settings(max_examples=400, deadline=None)
@given(_REFS, _ASSETS, _AMOUNTS, _NAMES, _EMAILS)
def test_a_plain_row_is_one_the_full_rules_accept_as_it_stands(ref, asset, amount, name, email):  # type: ignore[no-untyped-def]
    line = ",".join((ref, asset, amount, name, email))
    data = HEADER + line.encode() + b"\n"
    if not all_plain(data):
        return
    rows = list(LossFileReader(decode_lines(data.splitlines(keepends=True)), DECIMALS))
    assert len(rows) == 1 and isinstance(rows[0], LossRow), (line, rows)
    row = rows[0]
    # Plain fields need no trimming: what the database stores is the field as sent.
    assert (row.customer_ref, row.asset, row.name, row.email) == (ref, asset, name, email)
