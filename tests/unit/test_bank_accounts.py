"""Bank accounts for payouts: holder names as Zengin half-width kana, field-by-field validation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payouts.domain.bank_accounts import (
    ACCOUNT_TYPES,
    ZENGIN_ACCOUNT_TYPE_CODES,
    ZENGIN_NAME_CHARSET,
    BankAccount,
    masked,
    parse_bank_account,
    to_zengin_kana,
)
from payouts.domain.errors import ValidationError


@pytest.mark.parametrize("text, expected", [
    ("ヤマダ　タロウ", "ﾔﾏﾀﾞ ﾀﾛｳ"),
    ("やまだ たろう", "ﾔﾏﾀﾞ ﾀﾛｳ"),
    ("ｶﾞｯｺｳ", "ｶﾞﾂｺｳ"),  # half-width input stays half-width, small ｯ becomes ﾂ
    ("ガギグゲゴ", "ｶﾞｷﾞｸﾞｹﾞｺﾞ"),
    ("パピプペポ", "ﾊﾟﾋﾟﾌﾟﾍﾟﾎﾟ"),
    ("ヴァイオリン", "ｳﾞｱｲｵﾘﾝ"),
    ("ゔ", "ｳﾞ"),
    ("キャッシュ", "ｷﾔﾂｼﾕ"),
    ("ァィゥェォヵヶヮ", "ｱｲｳｴｵｶｹﾜ"),
    ("ぁぃぅぇぉっゃゅょゎゕゖ", "ｱｲｳｴｵﾂﾔﾕﾖﾜｶｹ"),
    ("ヲ", "ｦ"),
    ("を", "ｦ"),
    ("ヷヸヹヺ", "ﾜﾞｲﾞｴﾞｦﾞ"),
    ("は゛", "ﾊﾞ"),  # a spacing voiced mark typed after the kana
    ("コーヒー", "ｺ-ﾋ-"),
    ("ｺｰﾋｰ", "ｺ-ﾋ-"),
    ("A\u2015B\u2212C\u2014D", "A-B-C-D"),
    ("ＹＡＭＡＤＡ　Ｔａｒｏ", "YAMADA TARO"),
    ("smith john", "SMITH JOHN"),
    ("ＡＢＣ１２３", "ABC123"),
    ("  ヤマダ \u3000\u3000 タロウ  ", "ﾔﾏﾀﾞ ﾀﾛｳ"),
    ("カ）ペイアウト", "ｶ)ﾍﾟｲｱｳﾄ"),
    ("（カ）エー．ビー／シー，", "(ｶ)ｴ-.ﾋﾞ-/ｼ-,"),
    ("ジョン・スミス", "ｼﾞﾖﾝ.ｽﾐｽ"),
    ("", ""),
    ("\u3000 ", ""),
])
def test_to_zengin_kana(text, expected):  # type: ignore[no-untyped-def]
    assert to_zengin_kana(text) == expected


@pytest.mark.parametrize("text, offending", [
    ("山田太郎", "山"),
    ("ヤマダ😀", "😀"),
    ("taro@example", "@"),
    ("￥100", "¥"),
    ("¥", "¥"),
    ("ヤマダ\tタロウ", "control character"),
    ("Müller", "ü"),
    ("O'BRIEN", "'"),
    ("ヽ", "ヽ"),  # an iteration mark needs the kana before it; we do not guess
])
def test_characters_a_transfer_cannot_carry_are_named(text, offending):  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError) as err:
        to_zengin_kana(text)
    assert err.value.field == "holder_kana"
    assert offending in err.value.message


def test_error_field_can_be_renamed_for_other_names():
    with pytest.raises(ValidationError) as err:
        to_zengin_kana("銀行", field="payer.bank_name_kana")
    assert err.value.field == "payer.bank_name_kana"


def test_charset_has_no_small_kana_long_mark_or_yen():
    for char in "ｧｨｩｪｫｬｭｮｯｰ¥\\ｰ":
        assert char not in ZENGIN_NAME_CHARSET
    for char in "ｦｱﾝﾞﾟ09AZ ()-./,":
        assert char in ZENGIN_NAME_CHARSET


KANA_INPUT = st.text(
    alphabet=st.sampled_from(
        [chr(c) for c in range(0x3041, 0x3097)]  # hiragana
        + [chr(c) for c in range(0x30A1, 0x30FB)]  # katakana
        + [chr(c) for c in range(0xFF66, 0xFFA0)]  # half-width katakana
        + list("ーｰ―−‐　 ()（）-.,/・ABCxyzＡｚ０９0")
    ),
    max_size=40,
)


@given(KANA_INPUT)
def test_any_kana_or_latin_name_converts_into_the_charset(text):  # type: ignore[no-untyped-def]
    result = to_zengin_kana(text)
    assert set(result) <= ZENGIN_NAME_CHARSET
    assert result == result.strip() and "  " not in result
    assert to_zengin_kana(result) == result


@given(st.text(max_size=30))
def test_arbitrary_text_either_converts_cleanly_or_names_the_field(text):  # type: ignore[no-untyped-def]
    try:
        result = to_zengin_kana(text)
    except ValidationError as err:
        assert err.field == "holder_kana"
        assert "U+" in err.message
    else:
        assert set(result) <= ZENGIN_NAME_CHARSET
        assert to_zengin_kana(result) == result


def account(**overrides: str) -> BankAccount:
    values = dict(bank_code="0005", branch_code="123", account_type="ordinary",
                  account_number="1234567", holder_name="ヤマダ タロウ")
    values.update(overrides)
    return parse_bank_account(**values)


def test_parse_accepts_full_width_digits_and_spaces_and_pads_the_number():
    acc = account(bank_code=" ０００５ ", branch_code="１２３ ", account_number=" ４５６７",
                  account_type=" Savings ")
    assert acc == BankAccount("0005", "123", "savings", "0004567", "ﾔﾏﾀﾞ ﾀﾛｳ")


def test_one_digit_account_number_is_padded_to_seven():
    assert account(account_number="7").account_number == "0000007"


@pytest.mark.parametrize("overrides, field, words", [
    (dict(bank_code="005"), "bank_code", "4 digits"),
    (dict(bank_code="00051"), "bank_code", "4 digits"),
    (dict(bank_code="00a5"), "bank_code", "digits only"),
    (dict(bank_code=""), "bank_code", "empty"),
    (dict(bank_code=None), "bank_code", "missing"),
    (dict(branch_code="12"), "branch_code", "3 digits"),
    (dict(branch_code="1-2"), "branch_code", "digits only"),
    (dict(account_type="checking"), "account_type", "ordinary, current, savings"),
    (dict(account_type=""), "account_type", "one of"),
    (dict(account_number="12345678"), "account_number", "at most 7"),
    (dict(account_number="12 34"), "account_number", "digits only"),
    (dict(account_number="-123"), "account_number", "digits only"),
    (dict(account_number="   "), "account_number", "empty"),
    (dict(holder_name=""), "holder_kana", "empty"),
    (dict(holder_name="　"), "holder_kana", "empty"),
    (dict(holder_name="山田太郎"), "holder_kana", "山"),
    (dict(holder_name="ア" * 31), "holder_kana", "at most 30"),
    (dict(holder_name="ガ" * 16), "holder_kana", "32 half-width"),  # each ガ is ｶﾞ: two
])
def test_parse_refuses_bad_fields(overrides, field, words):  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError) as err:
        account(**overrides)
    assert err.value.field == field
    assert words in err.value.message


def test_holder_name_of_exactly_thirty_half_width_characters_is_allowed():
    assert len(account(holder_name="ガ" * 15).holder_kana) == 30


def test_japan_post_bank_is_refused_with_the_reason():
    with pytest.raises(ValidationError) as err:
        account(bank_code="9900")
    assert err.value.field == "bank_code"
    assert "ゆうちょ" in err.value.message and "記号・番号" in err.value.message


@pytest.mark.parametrize("kwargs, field", [
    (dict(bank_code="５"), "bank_code"),
    (dict(branch_code="12"), "branch_code"),
    (dict(account_number="123"), "account_number"),  # the constructor does not pad
    (dict(account_type="Ordinary"), "account_type"),
    (dict(holder_kana="ﾔﾏﾀﾞ  ﾀﾛｳ"), "holder_kana"),  # not canonical: two spaces
    (dict(holder_kana="ヤマダ"), "holder_kana"),  # full-width
    (dict(holder_kana=""), "holder_kana"),
])
def test_constructor_accepts_only_canonical_values(kwargs, field):  # type: ignore[no-untyped-def]
    values = dict(bank_code="0005", branch_code="123", account_type="ordinary",
                  account_number="1234567", holder_kana="ﾔﾏﾀﾞ")
    values.update(kwargs)
    with pytest.raises(ValidationError) as err:
        BankAccount(**values)
    assert err.value.field == field


def test_masked_shows_only_the_last_three_digits():
    assert masked(account(account_number="1234567")) == "****567"
    assert masked(account(account_number="5")) == "****005"


def test_account_types_have_zengin_codes():
    assert set(ZENGIN_ACCOUNT_TYPE_CODES) == set(ACCOUNT_TYPES)
    assert ZENGIN_ACCOUNT_TYPE_CODES == {"ordinary": "1", "current": "2", "savings": "4"}
