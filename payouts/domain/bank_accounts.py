"""Japanese bank accounts that payouts go to, and the half-width kana a Zengin transfer carries.

A transfer names the receiving account by bank (4 digits), branch (3), type and number (7), and
its holder in half-width characters only: digits, upper-case letters, half-width katakana and a
few signs. Customers type names in full-width katakana, hiragana or romaji; ``to_zengin_kana``
turns that into what the bank compares against its own record, or says which character cannot
be sent (kanji, emoji, ...): guessing a reading for kanji is the customer's job, not ours.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from payouts.domain.errors import ValidationError

ACCOUNT_TYPES = ("ordinary", "current", "savings")
#: 預金種目 as Zengin writes it: 普通 1, 当座 2, 貯蓄 4.
ZENGIN_ACCOUNT_TYPE_CODES = {"ordinary": "1", "current": "2", "savings": "4"}

#: Longest holder name a Zengin data record carries (受取人名, 30 half-width characters; a
#: voiced mark ﾞ/ﾟ counts as one).
MAX_HOLDER_LENGTH = 30

#: ゆうちょ銀行: its accounts are known by 記号・番号, which must first be converted into a
#: branch and account number (ゆうちょ's own rule) before any other bank can pay into them.
JAPAN_POST_BANK_CODE = "9900"

# --- Kana tables ------------------------------------------------------------------------------
# Built once from two parallel strings so that a reviewer can check them by eye. Voiced and
# semi-voiced kana are derived by Unicode decomposition (ガ = カ + U+3099), so none is forgotten.

_LARGE_FULL = "ヲアイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワン"
_LARGE_HALF = "ｦｱｲｳｴｵｶｷｸｹｺｻｼｽｾｿﾀﾁﾂﾃﾄﾅﾆﾇﾈﾉﾊﾋﾌﾍﾎﾏﾐﾑﾒﾓﾔﾕﾖﾗﾘﾙﾚﾛﾜﾝ"

# Zengin has no small kana: banks register ｼﾔ for シャ. ヰ/ヱ (archaic) are read イ/エ.
# ㇰ-ㇿ are the small katakana used for Ainu words.
_SMALL_TO_LARGE = dict(
    zip("ァィゥェォッャュョヮヵヶヰヱㇰㇱㇲㇳㇴㇵㇶㇷㇸㇹㇺㇻㇼㇽㇾㇿ",
        "アイウエオツヤユヨワカケイエクシストヌハヒフヘホムラリルレロ", strict=True)
)

_VOICED, _SEMI_VOICED = "\u3099", "\u309a"  # combining marks, what NFKC leaves after a kana
_MARKS = {_VOICED: "ﾞ", _SEMI_VOICED: "ﾟ"}

#: Every dash a name may be typed with; Zengin only has '-'.
_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u30fc\uff70"

#: ASCII signs a Zengin name field may carry, besides digits, A-Z and space.
_ASCII_SIGNS = "()-./,"

#: The result alphabet: 0-9 A-Z, ｦ and ｱ-ﾝ, ﾞ ﾟ, space and ( ) - . / ,  (no small kana, no ｰ,
#: no ¥: Zengin defines them, but not every bank accepts them in a name).
ZENGIN_NAME_CHARSET = frozenset(
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ" + _LARGE_HALF + "ﾞﾟ" + " " + _ASCII_SIGNS
)


def _build_kana_table() -> dict[str, str]:
    large = dict(zip(_LARGE_FULL, _LARGE_HALF, strict=True))
    table: dict[str, str] = {}
    for code in range(0x30A1, 0x30FB):  # ァ .. ヺ, all full-width katakana letters
        char = chr(code)
        base, *marks = unicodedata.normalize("NFD", char)
        base = _SMALL_TO_LARGE.get(base, base)
        if base in large:
            table[char] = large[base] + "".join(_MARKS[m] for m in marks)
    for small in "ㇰㇱㇲㇳㇴㇵㇶㇷㇸㇹㇺㇻㇼㇽㇾㇿ":
        table[small] = large[_SMALL_TO_LARGE[small]]
    for code in range(0x3041, 0x3097):  # ぁ .. ゖ: hiragana sits 0x60 below its katakana
        kata = chr(code + 0x60)
        if kata in table:
            table[chr(code)] = table[kata]
    table.update(_MARKS)
    for dash in _DASHES:
        table[dash] = "-"
    # 中黒 separates given and family names of foreigners (ジョン・スミス); banks write '.'.
    table["・"] = "."
    return table


_KANA_TABLE = _build_kana_table()


def to_zengin_kana(text: str, *, field: str = "holder_kana") -> str:
    """A name as half-width Zengin characters: ``"ヤマダ　タロウ"`` -> ``"ﾔﾏﾀﾞ ﾀﾛｳ"``.

    Katakana and hiragana (full- or half-width) become half-width katakana with voiced marks
    split off, small kana become large, dashes become '-', full-width letters and digits become
    ASCII (letters upper-case), and runs of any space become one space, stripped at the ends.
    Any other character raises ValidationError(field, ...) naming it. Idempotent: converting a
    converted name changes nothing. An empty or blank name gives "" (callers decide if that is
    allowed).
    """
    if not isinstance(text, str):
        raise ValidationError(field, "must be text")
    # NFKC folds full-width ASCII and ideographic spaces, and also turns half-width kana into
    # full-width (composing ｶﾞ into ガ), so everything goes to full-width first and our own
    # table maps it to half-width afterwards. The spacing marks ゛゜ would become a space plus a
    # combining mark under NFKC; make them combining first so that は゛ reads as ば.
    text = text.replace("\u309b", _VOICED).replace("\u309c", _SEMI_VOICED)
    normal = unicodedata.normalize("NFKC", text)
    out: list[str] = []
    for char in normal:
        if char in _KANA_TABLE:
            out.append(_KANA_TABLE[char])
        elif "a" <= char <= "z":
            out.append(char.upper())
        elif char == " " or char in ZENGIN_NAME_CHARSET:
            out.append(char)
        else:
            raise ValidationError(field, f"{_describe(char)} cannot be sent in a bank transfer;"
                                         " write the name in katakana or Latin letters")
    return " ".join(part for part in "".join(out).split(" ") if part)


def _describe(char: str) -> str:
    name = unicodedata.name(char, "")
    label = f"{char!r}" if char.isprintable() else "a control character"
    return f"{label} (U+{ord(char):04X}{' ' + name if name else ''})"


@dataclass(frozen=True)
class BankAccount:
    """A receiving account in canonical form: ASCII digits, account number zero-padded to 7,
    holder in half-width Zengin characters. Build one with ``parse_bank_account`` from what a
    person typed; the constructor only accepts values that are already canonical."""

    bank_code: str
    branch_code: str
    account_type: str
    account_number: str
    holder_kana: str

    def __post_init__(self) -> None:
        _check_digits(self.bank_code, "bank_code", 4)
        if self.bank_code == JAPAN_POST_BANK_CODE:
            raise ValidationError(
                "bank_code",
                "9900 is Japan Post Bank (ゆうちょ銀行): convert its 記号・番号 to a branch code and"
                " account number first; they cannot be entered here",
            )
        _check_digits(self.branch_code, "branch_code", 3)
        if self.account_type not in ACCOUNT_TYPES:
            raise ValidationError("account_type", f"must be one of {', '.join(ACCOUNT_TYPES)}")
        _check_digits(self.account_number, "account_number", 7)
        if not isinstance(self.holder_kana, str) or self.holder_kana == "":
            raise ValidationError("holder_kana", "is empty")
        if to_zengin_kana(self.holder_kana) != self.holder_kana:
            raise ValidationError("holder_kana", "is not in half-width Zengin characters")
        if len(self.holder_kana) > MAX_HOLDER_LENGTH:
            raise ValidationError(
                "holder_kana",
                f"is {len(self.holder_kana)} half-width characters; a transfer carries at most"
                f" {MAX_HOLDER_LENGTH}",
            )


def _check_digits(value: object, field: str, width: int) -> None:
    if not (isinstance(value, str) and len(value) == width and value.isascii() and value.isdigit()):
        raise ValidationError(field, f"must be {width} digits")


def _digits(value: object, field: str) -> str:
    """What a person typed as a number: full-width digits folded, surrounding spaces dropped."""
    if value is None:
        raise ValidationError(field, "is missing")
    if not isinstance(value, str):
        raise ValidationError(field, "must be text")
    text = unicodedata.normalize("NFKC", value).strip()
    if text == "":
        raise ValidationError(field, "is empty")
    if not (text.isascii() and text.isdigit()):
        raise ValidationError(field, f"must contain digits only, got {value!r}")
    return text


def parse_bank_account(
    *,
    bank_code: str,
    branch_code: str,
    account_type: str,
    account_number: str,
    holder_name: str,
) -> BankAccount:
    """Validate a destination as typed into a form; each refusal names its field."""
    bank = _digits(bank_code, "bank_code")
    if len(bank) != 4:
        raise ValidationError("bank_code", f"must be 4 digits, got {len(bank)}")
    branch = _digits(branch_code, "branch_code")
    if len(branch) != 3:
        raise ValidationError("branch_code", f"must be 3 digits, got {len(branch)}")
    kind = account_type.strip().lower() if isinstance(account_type, str) else account_type
    if kind not in ACCOUNT_TYPES:
        raise ValidationError("account_type", f"must be one of {', '.join(ACCOUNT_TYPES)}")
    number = _digits(account_number, "account_number")
    if len(number) > 7:
        raise ValidationError("account_number", f"must be at most 7 digits, got {len(number)}")
    if holder_name is None:
        raise ValidationError("holder_kana", "is missing")
    holder = to_zengin_kana(holder_name)
    return BankAccount(
        bank_code=bank,
        branch_code=branch,
        account_type=kind,
        # Passbooks print account numbers without leading zeros; the transfer needs all 7.
        account_number=number.rjust(7, "0"),
        holder_kana=holder,
    )


def masked(account: BankAccount) -> str:
    """The account number as shown outside the approval screens: ``"****567"``."""
    return "****" + account.account_number[-3:]
