"""CSV imports keyed by ``external_id``: every bad row reported with its line, field and reason;
good rows still land (patients and appointments share this machinery).

Nothing a file holds reaches SQL unchecked, and no bad row costs a good one:

- the bytes are decoded once, as UTF-8 (a BOM tolerated); undecodable bytes are kept as lone
  surrogates (``surrogateescape``) so the cell holding them is rejected by name;
- a row the csv module cannot read (a field over its size limit) is reported, and reading goes
  on with the next line (``csv_rows.CsvRows``);
- every cell is checked for control characters, undecodable bytes and length, and every value
  about to be stored against its column's length in the model (``storage.limits``);
- a chunk the database still refuses is retried row by row, so only the offending rows are
  rejected, with the database's reason masked (bound values are never shown:
  ``hide_parameters``).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, TextIO, cast

from sqlalchemy.exc import DataError, IntegrityError

from notifier.domain.batches import batch_then_each
from notifier.domain.contacts import mask_text
from notifier.errors import ValidationError
from notifier.storage.models import Location
from notifier.usecases.csv_rows import ID_CHARS, CsvRows, Unreadable, cell_problem, shown

log = logging.getLogger(__name__)

_CHUNK = 1000


@dataclass(frozen=True)
class RowError:
    line: int
    external_id: str
    reason: str
    field: str | None = None

    @property
    def message(self) -> str:
        """``field: reason``; the reason alone when it already starts with its field's name."""
        if self.field is None or self.reason.startswith(self.field):
            return self.reason
        return f"{self.field}: {self.reason}"

    def describe(self, filename: str) -> str:
        """``file.csv:LINE (external_id): field: reason``: how every surface reports a row."""
        who = f" ({self.external_id})" if self.external_id else ""
        return f"{filename}:{self.line}{who}: {self.message}"


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    errors: list[RowError] = field(default_factory=list)  # rows rejected
    # Rows imported with a bad cell left out (a bad phone: imported with email only), each
    # saying what was left out and what was kept.
    kept: list[RowError] = field(default_factory=list)
    delimiter: str = ","  # as detected from the header

    @property
    def imported(self) -> int:
        return self.created + self.updated

    @property
    def channels_off(self) -> int:
        return len(self.kept)


Row = dict[str, str | None]
Chunk = list[tuple[int, dict[str, object]]]
Source = IO[bytes] | IO[str]


class Cells:
    """One CSV row's cells, stripped, with the checks every import makes."""

    def __init__(self, row: Row) -> None:
        self.row = row

    def __call__(self, name: str) -> str:
        return (self.row.get(name) or "").strip()

    def required(self, *names: str) -> None:
        for name in names:
            if not self(name):
                raise ValidationError(f"{name} is empty", name)

    def location(self, locations: Mapping[str, Location]) -> Location:
        location = locations.get(self("location").lower())
        if location is None:
            raise ValidationError(f"location {self('location')!r} does not exist", "location")
        return location


@dataclass(frozen=True)
class Importer:
    """One kind of import: its columns, the stored columns' lengths (``storage.limits``),
    ``clean`` (a row → the values to store, raising ValidationError; what it leaves out of a
    row it keeps goes into the list it is given) and ``upsert`` (stores a chunk of checked rows
    in one transaction, counting into the report it is given)."""

    columns: Sequence[str]
    lengths: Mapping[str, int]
    clean: Callable[[Row, list[ValidationError]], dict[str, object]]
    upsert: Callable[[Chunk, ImportReport], None]
    optional: Sequence[str] = ()  # read when the header has them, else empty


Progress = Callable[[int], None]
"""Told the number of lines read so far, after each chunk is stored."""


def import_rows(
    source: Source, importer: Importer, on_progress: Progress | None = None
) -> ImportReport:
    """Read a CSV keyed by ``external_id`` (bytes, decoded here, or text) and store its good
    rows in chunks. A wrong header imports nothing and raises ValidationError saying why."""
    stream = _text(source)
    try:
        rows = CsvRows(stream, importer.columns, importer.lengths.get("external_id", ID_CHARS))
        report = ImportReport(delimiter=rows.delimiter)
        seen: dict[str, int] = {}
        chunk: Chunk = []
        for line, row in rows:
            checked = _checked(line, row, importer, seen, report)
            if checked is None:
                continue
            chunk.append((line, checked))
            if len(chunk) >= _CHUNK:
                _store(chunk, importer.upsert, report)
                chunk = []
                if on_progress:
                    on_progress(line)
        if chunk:
            _store(chunk, importer.upsert, report)
        if on_progress:
            on_progress(rows.lines_read)
    finally:
        if stream is not source:
            cast(io.TextIOWrapper, stream).detach()  # the caller closes its own stream
    report.errors.sort(key=lambda error: error.line)
    report.kept.sort(key=lambda error: error.line)
    return report


def _text(source: Source) -> TextIO:
    if isinstance(source, io.TextIOBase):
        return cast(TextIO, source)
    return io.TextIOWrapper(
        cast(IO[bytes], source), encoding="utf-8-sig", errors="surrogateescape", newline=""
    )


def _checked(
    line: int,
    row: Row | Unreadable,
    importer: Importer,
    seen: dict[str, int],
    report: ImportReport,
) -> dict[str, object] | None:
    """The row's values to store, or None after reporting why it cannot be stored."""
    if isinstance(row, Unreadable):
        report.errors.append(RowError(line, row.external_id, row.reason, row.field))
        return None
    raw_id = row.get("external_id") or ""
    shown_id = shown(raw_id.strip(), importer.lengths.get("external_id", ID_CHARS))
    left_out: list[ValidationError] = []
    try:
        _check_cells(row, importer)
        external_id = raw_id.strip()
        if external_id in seen:
            raise ValidationError(f"external_id repeats line {seen[external_id]}", "external_id")
        values = importer.clean(row, left_out)
        _check_values(values, importer.lengths)
    except ValidationError as exc:
        report.errors.append(RowError(line, shown_id, str(exc), exc.field))
        return None
    seen[external_id] = line
    report.kept += [RowError(line, shown_id, str(exc), exc.field) for exc in left_out]
    return values


def _check_cells(row: Row, importer: Importer) -> None:
    for name in (*importer.columns, *importer.optional):
        problem = cell_problem(row.get(name) or "", importer.lengths.get(name))
        if problem:
            raise ValidationError(problem, name)


def _check_values(values: Mapping[str, object], lengths: Mapping[str, int]) -> None:
    """What is about to be stored fits its column: the last check before SQL."""
    for name, value in values.items():
        if isinstance(value, str):
            problem = cell_problem(value, lengths.get(name), stored=True)
            if problem:
                raise ValidationError(problem, name)


def _store(
    chunk: Chunk, upsert: Callable[[Chunk, ImportReport], None], report: ImportReport
) -> None:
    """Store a chunk in one transaction; if the database refuses it, store its rows one by one
    so that only the rows it refuses are rejected."""

    def run(rows: Sequence[tuple[int, dict[str, object]]]) -> list[ImportReport]:
        done = ImportReport()
        upsert(list(rows), done)
        return [done]

    def alone(row: tuple[int, dict[str, object]], exc: Exception) -> list[ImportReport]:
        if not isinstance(exc, IntegrityError | DataError):
            raise exc
        line, values = row
        external_id = shown(str(values.get("external_id", "")), ID_CHARS)
        return [ImportReport(errors=[RowError(line, external_id, _refusal(exc))])]

    def on_split(exc: Exception) -> None:
        log.warning(
            "the database refused a chunk of the import; storing its rows one by one",
            extra={
                "action": "import_chunk_retried",
                "rows": len(chunk),
                "error": type(getattr(exc, "orig", exc)).__name__,
            },
        )

    parts = batch_then_each(
        chunk,
        run,
        splits=lambda exc: isinstance(exc, IntegrityError | DataError),
        alone=alone,
        on_split=on_split,
    )
    for done in parts:
        report.created += done.created
        report.updated += done.updated
        report.errors += done.errors


def _refusal(exc: IntegrityError | DataError) -> str:
    """The database's own words, first line only (PostgreSQL's DETAIL quotes values), masked."""
    diag = getattr(exc.orig, "diag", None)
    words = getattr(diag, "message_primary", None) or str(exc.orig).strip()
    first = words.splitlines()[0] if words else type(exc.orig).__name__
    return f"the database refused the row: {shown(mask_text(first), 200)}"
