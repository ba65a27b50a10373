"""Cells a spreadsheet could run as a formula are written as text (OWASP: a leading ``'``)."""

from __future__ import annotations

import csv
import io

import pytest

from notifier.spreadsheets import csv_text, safe_cell


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ('=HYPERLINK("https://evil.example","x")', '\'=HYPERLINK("https://evil.example","x")'),
        ("+SUM(1,2)", "'+SUM(1,2)"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("\n=1+1", "'\n=1+1"),
        ("＝1+1", "'＝1+1"),  # fullwidth equals sign
        ("+1******0112", "+1******0112"),  # a masked phone reads as it is
        ("+4*********1234", "+4*********1234"),
        ("+1******0112+cmd|' /C calc'!A0", "'+1******0112+cmd|' /C calc'!A0"),
        ("+15405550112", "'+15405550112"),  # never printed unmasked, but not a formula either way
        ("2025-02-19T12:30:00-05:00", "2025-02-19T12:30:00-05:00"),
        ("m***@example.org", "m***@example.org"),
        ("Maria = Lopez", "Maria = Lopez"),
        (-1, -1),
        (None, None),
    ],
)
def test_a_cell_that_could_be_a_formula_gets_a_leading_quote(
    value: object, written: object
) -> None:
    assert safe_cell(value) == written


def test_csv_text_writes_the_columns_in_order_every_cell_made_safe() -> None:
    text = csv_text([{"b": "=1+1", "a": 7, "ignored": "=x"}, {"a": None, "b": "plain"}], ["a", "b"])
    assert list(csv.reader(io.StringIO(text))) == [["a", "b"], ["7", "'=1+1"], ["", "plain"]]
