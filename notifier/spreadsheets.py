"""Every CSV the product writes, safe to open in a spreadsheet (CSV formula injection).

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab, CR or LF (or their fullwidth forms,
which some spreadsheets read as the ASCII ones) could run as a formula: a patient named
``=HYPERLINK(…)``, or a provider's error text. Such a cell gets a leading ``'`` (OWASP's advice):
the spreadsheet shows it as text, and the original is the cell without its first character.

One exception, so the address column reads the same in every export: a masked phone number
(``+1******0112``, all we ever print of one). It starts with ``+`` but holds only digits and
``*``, which no spreadsheet can run (no function, reference or ``|``); a payload cannot fit it.
ISO timestamps and ids start with a digit and are never touched.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠")
_MASKED_PHONE = re.compile(r"\+\d\*+\d{4}")


def safe_cell(value: object) -> object:
    """``value``, with a ``'`` in front if a spreadsheet could read it as a formula."""
    if (
        isinstance(value, str)
        and value.startswith(FORMULA_STARTS)
        and not _MASKED_PHONE.fullmatch(value)
    ):
        return "'" + value
    return value


def csv_text(rows: Iterable[Mapping[str, object]], columns: Sequence[str]) -> str:
    """``rows`` as CSV with a header of ``columns`` (other keys ignored), every cell made safe."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([safe_cell(row.get(column)) for column in columns])
    return out.getvalue()
