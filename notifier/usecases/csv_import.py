"""CSV imports keyed by ``external_id``: every bad row reported with its line and reason; good
rows still land (patients and appointments share this machinery)."""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from notifier.errors import ValidationError
from notifier.storage.models import Location

_CHUNK = 1000


@dataclass(frozen=True)
class RowError:
    line: int
    external_id: str
    reason: str


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def imported(self) -> int:
        return self.created + self.updated


Row = dict[str, str | None]
Chunk = list[tuple[int, dict[str, object]]]


class Cells:
    """One CSV row's cells, stripped, with the checks every import makes."""

    def __init__(self, row: Row) -> None:
        self.row = row

    def __call__(self, name: str) -> str:
        return (self.row.get(name) or "").strip()

    def required(self, *names: str) -> None:
        for name in names:
            if not self(name):
                raise ValidationError(f"{name} is empty")

    def location(self, locations: Mapping[str, Location]) -> Location:
        location = locations.get(self("location").lower())
        if location is None:
            raise ValidationError(f"location {self('location')!r} does not exist")
        return location


def import_rows(
    stream: TextIO,
    columns: Sequence[str],
    clean: Callable[[Row], dict[str, object]],
    upsert: Callable[[Chunk, ImportReport], None],
) -> ImportReport:
    """Read a CSV keyed by ``external_id``: ``clean`` checks each row (raising ValidationError
    with the reason), ``upsert`` stores good rows in chunks. Bad rows are reported by line."""
    reader = csv.DictReader(stream)
    header = [name.strip() for name in reader.fieldnames or []]
    missing = [name for name in columns if name not in header]
    if missing:
        raise ValidationError(
            f"the CSV header lacks column(s) {', '.join(missing)}; expected: {','.join(columns)}"
        )
    reader.fieldnames = header
    report = ImportReport()
    seen: dict[str, int] = {}
    chunk: Chunk = []
    for row in reader:
        line = reader.line_num
        external_id = (row.get("external_id") or "").strip()
        try:
            extra = row.get(None)  # DictReader's key for cells beyond the header
            if extra:
                raise ValidationError(f"{len(extra)} more cell(s) than the header has")
            if external_id in seen:
                raise ValidationError(f"external_id repeats line {seen[external_id]}")
            values = clean(row)
        except ValidationError as exc:
            report.errors.append(RowError(line, external_id, str(exc)))
            continue
        seen[external_id] = line
        chunk.append((line, values))
        if len(chunk) >= _CHUNK:
            upsert(chunk, report)
            chunk = []
    if chunk:
        upsert(chunk, report)
    return report
