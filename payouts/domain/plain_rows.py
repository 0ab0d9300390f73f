"""A fast, conservative test that every row of a loss file is plainly valid.

A ledger export is almost always "plain": no quoting, no stray spaces, ASCII e-mail addresses,
the amount column right after the asset. One regular expression, built from the header and the
assets' decimals, recognises such rows a whole block of lines at a time, in C, while the bytes
stream to the database. When every row passes, the importer can skip checking each row again
in SQL (payouts.db.loss_staging); when any row does not, nothing is lost but time: the file
takes the full path, which judges every row and names each problem.

The test is conservative by construction: a row it accepts is one that every rule of
payouts.domain.loss_file accepts, already trimmed, so typing it needs no check. A row it
refuses may still be valid (a quoted name, a space after a comma); it is simply not plain.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping

from payouts.domain.loss_file import MAX_EMAIL_LENGTH, MAX_NAME_LENGTH, MAX_REF_LENGTH
from payouts.domain.money import MAX_QUANTITY_DIGITS

# Each piece is a subset of the rule it stands for (see loss_file's patterns and checks).
_REF = rf"[A-Za-z0-9][A-Za-z0-9._:@/-]{{0,{MAX_REF_LENGTH - 1}}}"
# No control character, comma or quote; no space at either end (btrim would have removed it).
_NAME = (
    rf'(?:[^\x00-\x20\x7f,"](?:[^\x00-\x1f\x7f,"]{{0,{MAX_NAME_LENGTH - 2}}}[^\x00-\x20\x7f,"])?)?'
)
# ASCII only: every character here is outside the rule's excluded set (@, space, , ; < >).
_EMAIL_CHAR = r"[A-Za-z0-9._%+!#$&'*/=?^`{|}~-]"
_EMAIL = (
    rf"(?:(?=[^,\r\n]{{1,{MAX_EMAIL_LENGTH}}}[,\r\n])"
    rf"{_EMAIL_CHAR}+@{_EMAIL_CHAR}+\.{_EMAIL_CHAR}+)?"
)
_LINE_END = r"\r?\n"
#: A line longer than this is never plain; holding no more of it keeps memory flat.
_MAX_PLAIN_LINE = 4096


def _amount(decimals: int) -> str:
    """A plain amount with at most ``decimals`` significant decimal places and not too many digits."""
    whole = rf"0*[0-9]{{1,{MAX_QUANTITY_DIGITS - decimals}}}"
    fraction = rf"(?:\.[0-9]{{1,{decimals}}}0*)?" if decimals else r"(?:\.0+)?"
    return whole + fraction


def plain_rows_pattern(columns: Mapping[str, int], asset_decimals: Mapping[str, int]) -> re.Pattern[str] | None:
    """The pattern of a block of plain lines for this header, or None if no row can be plain.

    ``columns`` maps column name to position (loss_file.check_header). The amount's rule
    depends on the row's asset, so the amount must come right after the asset: the pair is
    one alternative per number of decimals. (A conditional on which asset matched would be
    wrong: a group matched on an earlier line of the block still counts as matched.)
    """
    if columns["amount"] != columns["asset"] + 1:
        return None
    by_places: dict[int, list[str]] = {}
    for code, places in asset_decimals.items():
        if places < MAX_QUANTITY_DIGITS:  # an asset that cannot hold one unit is never plain
            by_places.setdefault(places, []).append(re.escape(code))
    if not by_places:
        return None
    pair = "|".join(
        f"(?:{'|'.join(sorted(codes))}),{_amount(places)}" for places, codes in sorted(by_places.items())
    )
    pieces = {"customer_ref": _REF, "asset": f"(?:{pair})", "name": _NAME, "email": _EMAIL}
    line = ",".join(pieces[name] for name in sorted(columns, key=columns.__getitem__) if name != "amount")
    return re.compile(f"(?:{line}{_LINE_END})*+")


class PlainRowsCheck:
    """Watches a loss file's body (the bytes after its header line) go by, chunk by chunk.

    ``all_plain`` stays true only if every line of the body matched the pattern; it is final
    once ``watch`` has been read to the end.
    """

    def __init__(self, columns: Mapping[str, int], asset_decimals: Mapping[str, int]) -> None:
        self._pattern = plain_rows_pattern(columns, asset_decimals)
        self.all_plain = self._pattern is not None
        self._tail = b""

    def watch(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Yield each chunk unchanged, then check it: the consumer (a COPY) sends it on first,
        so the database reads one chunk while this checks it."""
        for chunk in chunks:
            yield chunk
            if self.all_plain:
                self._feed(chunk)
        if self.all_plain and self._tail:
            self._check(self._tail + b"\n")  # the last line, without its newline
        self._tail = b""

    def _feed(self, chunk: bytes) -> None:
        data = self._tail + chunk
        cut = data.rfind(b"\n") + 1
        self._tail = data[cut:]
        if len(self._tail) > _MAX_PLAIN_LINE:
            self.all_plain = False
            self._tail = b""
        elif cut:
            self._check(data[:cut])

    def _check(self, block: bytes) -> None:
        assert self._pattern is not None
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError:
            self.all_plain = False
            return
        if self._pattern.fullmatch(text) is None:
            self.all_plain = False
