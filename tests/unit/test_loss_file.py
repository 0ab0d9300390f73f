"""The loss-file reader on its own: header rules and row problems, without a database."""

from __future__ import annotations

import pytest

from payouts.domain.loss_file import LossFileError, LossFileReader, LossRow, RowProblem, decode_lines

DECIMALS = {"JPY": 0, "BTC": 8}


def read(text: str) -> list[LossRow | RowProblem]:
    return list(LossFileReader(decode_lines(text.encode().splitlines(keepends=True)), DECIMALS))


def test_reads_rows_with_line_numbers_and_reports_blank_lines():
    rows = read("customer_ref,asset,amount\nC1,BTC,0.5\n\nC2,JPY,10\n")
    assert rows == [LossRow(2, "C1", "BTC", 50_000_000, "", ""), RowProblem(3, "is blank"),
                    LossRow(4, "C2", "JPY", 10, "", "")]


def test_header_is_case_and_space_insensitive_and_columns_may_be_reordered():
    rows = read(" Amount , CUSTOMER_REF ,asset\n3,C1,JPY\n")
    assert rows == [LossRow(2, "C1", "JPY", 3, "", "")]


def test_quoted_fields_with_commas_are_read():
    rows = read('customer_ref,asset,amount,name\nC1,JPY,3,"Sato, Haruto"\n')
    assert rows[0].name == "Sato, Haruto"


@pytest.mark.parametrize("header, message", [
    ("customer_ref,asset,amount,amount", "named twice"),
    ("customer_ref,amount", "missing column 'asset'"),
    ("ref,asset,amount", "unknown column 'ref'"),
])
def test_bad_headers(header, message):  # type: ignore[no-untyped-def]
    with pytest.raises(LossFileError, match=message):
        read(header + "\nC1,JPY,1\n")


def test_control_characters_in_names_are_refused():
    rows = read("customer_ref,asset,amount,name\nC1,JPY,1,Bad\x07Name\n")
    assert isinstance(rows[0], RowProblem) and "control characters" in rows[0].message


def test_unclosed_quote_is_reported_with_its_line():
    with pytest.raises(LossFileError, match="line"):
        read('customer_ref,asset,amount,name\nC1,JPY,1,"open\n')
