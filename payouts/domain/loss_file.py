"""Reading a loss file from the exchange's ledger: header and rows, validated one by one.

The format (UTF-8, optional BOM, comma separated, header first, no blank lines):

    customer_ref,asset,amount[,name][,email]

``amount`` is a plain decimal in whole units of the asset (``0.12345678`` BTC). Rows are
yielded as they are read, so memory does not grow with the file; problems are reported with
the physical line number. Checks that need the whole file (duplicates, conflicting names) are
done by the importer on the staged rows.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from payouts.domain.errors import ValidationError
from payouts.domain.money import parse_amount

REQUIRED_COLUMNS = ("customer_ref", "asset", "amount")
OPTIONAL_COLUMNS = ("name", "email")
MAX_REF_LENGTH = 64
MAX_NAME_LENGTH = 200
MAX_EMAIL_LENGTH = 254

#: Patterns shared with the PostgreSQL import path (payouts.db.loss_staging), which checks the
#: same rules in SQL: both dialects of regular expression read them the same way.
REF_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._:@/-]*"
EMAIL_PATTERN = r"[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+"
_REF_RE = re.compile(REF_PATTERN)
_EMAIL_RE = re.compile(EMAIL_PATTERN)
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class LossRow:
    line: int
    customer_ref: str
    asset: str
    amount_minor: int
    name: str
    email: str


@dataclass(frozen=True, slots=True)
class RowProblem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class LossFileError(ValidationError):
    """The file as a whole cannot be read (encoding, header, emptiness)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__("file", message if line is None else f"line {line}: {message}")
        self.line = line


def decode_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Decode a binary file line by line so an encoding error can name its line."""
    for number, raw in enumerate(chunks, start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LossFileError(
                f"is not valid UTF-8 (byte {exc.start + 1}); export the file as UTF-8", line=number
            ) from None


def check_header(fields: list[str]) -> dict[str, int]:
    """Column name -> position, after checking the header names the columns we know."""
    names = [h.strip().lower() for h in fields]
    if names == [""] or not names:
        raise LossFileError("the header line is empty", line=1)
    known = set(REQUIRED_COLUMNS) | set(OPTIONAL_COLUMNS)
    for name in names:
        if name not in known:
            raise LossFileError(
                f"unknown column {name!r}; expected {', '.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)}",
                line=1,
            )
    if len(set(names)) != len(names):
        raise LossFileError("a column is named twice in the header", line=1)
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise LossFileError(f"missing column {', '.join(repr(m) for m in missing)}", line=1)
    return {name: index for index, name in enumerate(names)}


def parse_header_line(raw: bytes) -> dict[str, int]:
    """The header from the file's first line (bytes, BOM allowed)."""
    if not raw.strip():
        raise LossFileError("the file is empty; expected a header line")
    text = next(decode_lines([raw]))
    try:
        fields = next(csv.reader([text], strict=True))
    except csv.Error as exc:
        raise LossFileError(f"unreadable header: {exc}", line=1) from None
    return check_header(fields)


class LossFileReader:
    """Iterates a loss file, yielding LossRow or RowProblem for each data row.

    Fields lose leading and trailing ASCII spaces only, exactly as PostgreSQL's btrim() does on
    the database import path: a tab or an ideographic space is data, judged by the rules.
    """

    def __init__(self, lines: Iterable[str], asset_decimals: Mapping[str, int]) -> None:
        self._reader = csv.reader(lines, strict=True)
        self._decimals = dict(asset_decimals)
        self.rows_read = 0
        self._columns = self._read_header()

    def _read_header(self) -> dict[str, int]:
        try:
            header = next(self._reader)
        except StopIteration:
            raise LossFileError("the file is empty; expected a header line") from None
        except csv.Error as exc:
            raise LossFileError(f"unreadable header: {exc}", line=1) from None
        return check_header(header)

    def __iter__(self) -> Iterator[LossRow | RowProblem]:
        cols = self._columns
        i_ref, i_asset, i_amount = cols["customer_ref"], cols["asset"], cols["amount"]
        i_name, i_email = cols.get("name"), cols.get("email")
        width = len(cols)
        decimals = self._decimals
        reader = self._reader
        while True:
            try:
                record = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                raise LossFileError(f"malformed CSV: {exc}", line=reader.line_num) from None
            line = reader.line_num
            self.rows_read += 1
            if not record or record == [""]:
                yield RowProblem(line, "is blank")
                continue
            if len(record) != width:
                more_or_fewer = "more" if len(record) > width else "fewer"
                yield RowProblem(line, f"has {more_or_fewer} fields than the header")
                continue
            ref = record[i_ref].strip(" ")
            if not ref:
                yield RowProblem(line, "customer_ref is empty")
                continue
            if len(ref) > MAX_REF_LENGTH or not _REF_RE.fullmatch(ref):
                yield RowProblem(line, f"customer_ref {ref[:80]!r} is not a valid reference")
                continue
            asset = record[i_asset].strip(" ")
            places = decimals.get(asset)
            if places is None:
                yield RowProblem(line, f"unknown asset {asset[:20]!r}")
                continue
            try:
                amount = parse_amount(record[i_amount].strip(" "), places)
            except ValidationError as exc:
                yield RowProblem(line, f"amount {exc.message} ({asset})")
                continue
            name = record[i_name].strip(" ") if i_name is not None else ""
            email = record[i_email].strip(" ") if i_email is not None else ""
            problem = _check_contact(name, email)
            if problem:
                yield RowProblem(line, problem)
                continue
            yield LossRow(line, ref, asset, amount, name, email)


def _check_contact(name: str, email: str) -> str | None:
    if len(name) > MAX_NAME_LENGTH:
        return f"name is longer than {MAX_NAME_LENGTH} characters"
    if _CONTROL_RE.search(name):
        return "name contains control characters"
    if email and (len(email) > MAX_EMAIL_LENGTH or not _EMAIL_RE.fullmatch(email)):
        return f"email {email[:80]!r} is not a valid address"
    return None
