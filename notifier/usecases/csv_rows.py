"""Reading a CSV file row by row so that no row can stop the others, and the checks every cell
passes before it is used: no control characters, no undecodable bytes, a bounded length.

A row the csv module refuses (a field over ``csv.field_size_limit()``, 128 KiB) comes out as
``Unreadable``, naming the cell when it can be told, and reading goes on after that record: when
the refused cell is a quoted one spanning lines, its remaining lines are skipped, never read as
rows of their own. A row short of cells only in columns the import does not use is padded.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TextIO

from notifier.domain.contacts import mask_text
from notifier.domain.untrusted import CONTROL_CHARACTERS
from notifier.errors import ValidationError

CELL_MAX = 256  # a cell longer than this and than its column is refused before it is parsed
ID_CHARS = 100  # of an external_id shown in a report, unless the importer says otherwise
_BAD = re.compile(f"[{CONTROL_CHARACTERS}\ud800-\udfff]")
_TOKENS = re.compile(r'[^",]+|"|,')


@dataclass(frozen=True)
class Unreadable:
    """A row that could not be read as cells: why, and which cell when it can be told."""

    external_id: str
    reason: str
    field: str | None = None


def cell_problem(value: str, length: int | None, *, stored: bool = False) -> str | None:
    """What is wrong with one cell, or None. ``length`` is its column's (None: not stored as
    is); a raw cell may be up to ``CELL_MAX`` (it may shrink when normalised, as a phone
    number does), a value about to be ``stored`` no longer than its column."""
    text = value.strip()
    bad = _BAD.search(text)
    if bad:
        return _bad_character(bad.group())
    limit = length if stored else max(length or 0, CELL_MAX)
    if limit is not None and len(text) > limit:
        return f"{len(text)} characters, at most {length or CELL_MAX}"
    return None


def _bad_character(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, kept by "surrogateescape"
        return f"not UTF-8 (byte 0x{code - 0xDC00:02X}): save the file as 'CSV UTF-8'"
    if 0xD800 <= code <= 0xDFFF:
        return "holds an unpaired surrogate: not valid text"
    if code == 0:
        return "holds a NUL character"
    return f"holds control character U+{code:04X}"


def shown(text: str, limit: int = 40) -> str:
    """``text`` safe to print or show: bad characters escaped (``\\xff``), at most ``limit``."""
    head = text[:limit]
    if _BAD.search(head):
        head = "".join(_escaped(char) if _BAD.match(char) else char for char in head)
    return head + ("…" if len(text) > limit else "")


def _escaped(char: str) -> str:
    code = ord(char)
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else ascii(char)[1:-1]


class _Lines:
    """The stream's lines, remembering those of the record being read."""

    def __init__(self, stream: TextIO) -> None:
        self._lines = iter(stream)
        self.record: list[str] = []
        self.count = 0  # lines read so far: the line number of the record's last line

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.record.append(line)
        self.count += 1
        return line

    def finish_record(self) -> None:
        """Read on to the end of a quoted cell the csv module gave up in (an odd number of
        quotes so far), so that its lines are not taken for records of their own."""
        quotes = sum(line.count('"') for line in self.record)
        while quotes % 2:
            line = next(self, None)
            if line is None:
                return
            quotes += line.count('"')


DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "vertical bar"}


class CsvRows:
    """A CSV's rows as ``(line, {column: cell})`` or ``(line, Unreadable)``; blank lines are
    skipped. The delimiter is the one of ``DELIMITERS`` that makes the header name the most
    expected columns (spreadsheets in many locales save "CSV" with semicolons). A header
    lacking a column raises ValidationError before any row is read."""

    def __init__(self, stream: TextIO, columns: Sequence[str], id_chars: int = ID_CHARS) -> None:
        self._lines = _Lines(stream)
        self._used = frozenset(columns)
        self._id_chars = id_chars
        first_line = next(self._lines, "")
        self.delimiter = _delimiter(first_line, columns)
        try:
            first = next(csv.reader([first_line], delimiter=self.delimiter), [])
        except csv.Error as exc:
            raise ValidationError(f"the header line cannot be read as CSV: {exc}") from None
        self._reader = csv.reader(self._lines, delimiter=self.delimiter)
        self.header = [name.strip().lstrip("\ufeff").strip() for name in first]
        missing = [name for name in columns if name not in self.header]
        if missing:
            raise ValidationError(
                f"the CSV header lacks {'column' if len(missing) == 1 else 'columns'} "
                f"{', '.join(missing)}; expected: {','.join(columns)} (separated by commas, "
                "semicolons or tabs)"
            )
        self._id = self.header.index("external_id") if "external_id" in self.header else 0

    @property
    def lines_read(self) -> int:
        return self._lines.count

    def __iter__(self) -> Iterator[tuple[int, dict[str, str | None] | Unreadable]]:
        header, reader, lines = self.header, self._reader, self._lines
        while True:
            lines.record.clear()
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                lines.finish_record()
                yield lines.count, self._unreadable(str(exc), "".join(lines.record))
                continue
            if not cells:
                continue
            if len(cells) < len(header) and self._used.isdisjoint(header[len(cells) :]):
                cells += [""] * (len(header) - len(cells))  # only unused cells are missing
            if len(cells) != len(header):
                yield lines.count, self._misshapen(cells)
                continue
            yield lines.count, dict(zip(header, cells, strict=True))

    def _who(self, cells: Sequence[str]) -> str:
        """The external_id of a row that could not be read, masked: its cells may be shifted."""
        if self._id >= len(cells):
            return ""
        return shown(mask_text(cells[self._id].strip()), self._id_chars)

    def _misshapen(self, cells: list[str]) -> Unreadable:
        who = self._who(cells)
        if len(cells) > len(self.header):
            extra = len(cells) - len(self.header)
            cells_word = "cell" if extra == 1 else "cells"
            return Unreadable(who, f"{extra} more {cells_word} than the header has")
        have = f"the row has {len(cells)} of {len(self.header)} cells"
        return Unreadable(who, f"missing: {have}", self.header[len(cells)])

    def _unreadable(self, error: str, record: str) -> Unreadable:
        limit = csv.field_size_limit()
        if not error.startswith("field larger than field limit"):
            return Unreadable("", f"cannot be read as CSV: {error}")
        cells = _cells_before_oversized(record, limit, limit * (len(self.header) + 1))
        reason = f"longer than {limit} characters"
        if cells is None or len(cells) >= len(self.header):
            return Unreadable("", f"a cell is {reason}")
        return Unreadable(self._who(cells), reason, self.header[len(cells)])


def _delimiter(header: str, columns: Sequence[str]) -> str:
    """The delimiter under which ``header`` names the most of ``columns`` (a comma on a tie)."""
    wanted = set(columns)

    def named(delimiter: str) -> int:
        cells = {c.strip().lstrip("\ufeff").strip() for c in header.split(delimiter)}
        return len(wanted & cells)

    return max(DELIMITERS, key=named)


def _cells_before_oversized(record: str, limit: int, scan: int) -> list[str] | None:
    """The cells of a record before the first one over ``limit`` characters (a rough reading
    of CSV quoting, enough to name the cell), or None if none is found in ``scan`` characters."""
    cells: list[str] = []
    current: list[str] = []
    size, quoted = 0, False
    for match in _TOKENS.finditer(record, 0, min(len(record), scan)):
        token = match.group()
        if token == '"':
            quoted = not quoted
        elif token == "," and not quoted:
            cells.append("".join(current))
            current, size = [], 0
        else:
            size += len(token)
            if size >= limit:
                return cells
            current.append(token)
    return None
