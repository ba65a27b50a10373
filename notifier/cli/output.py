"""How the CLI prints: JSON, aligned tables, CSV, import reports, previews."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from notifier.domain.estimates import duration
from notifier.domain.wording import plural
from notifier.spreadsheets import csv_text
from notifier.usecases.csv_import import ImportReport
from notifier.usecases.csv_rows import DELIMITERS
from notifier.usecases.views import Preview


def as_dict(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str, ensure_ascii=False))


def emit_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    click.echo(csv_text(rows, columns), nl=False)


def emit_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    cells = [[str(row.get(c) if row.get(c) is not None else "-") for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for r in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))


def emit_rows(fmt: str, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """``rows`` as JSON, CSV or a table (``columns`` for the last two)."""
    if fmt == "json":
        emit_json(list(rows))
    elif fmt == "csv":
        emit_csv(rows, columns)
    else:
        emit_table(rows, columns)


def report_import(file: Path, report: ImportReport, noun: str) -> None:
    """Each rejected row as ``file:line (id): field: reason`` on stderr, and each row imported
    with a bad cell left out; the counts on stdout; exit 4 when any row was rejected."""
    for error in report.errors:
        click.echo(error.describe(file.name), err=True)
    for kept in report.kept:
        click.echo(kept.describe(file.name), err=True)
    if report.delimiter != ",":
        click.echo(f"read as {DELIMITERS[report.delimiter]}-separated values")
    off = f", {plural(report.channels_off, 'channel')} turned off" if report.kept else ""
    click.echo(
        f"imported {plural(report.imported, noun.removesuffix('s'), noun)} "
        f"({report.created:,} new, {report.updated:,} updated)"
        f"{off}, {plural(len(report.errors), 'row')} rejected"
    )
    if report.errors:
        sys.exit(4)


def print_preview(preview: Preview, labels: Mapping[str, str]) -> None:
    for warning in preview.warnings:
        click.echo(f"warning: {warning}")
    for channel, seconds in preview.estimated_seconds.items():
        click.echo(f"estimated sending time, {channel}: {duration(seconds)}")
    for channel, messages in preview.messages.items():
        label = labels.get(channel, channel)
        for m in messages:
            if m.subject is not None:
                click.echo(f"\n--- {label} [{m.language}, {m.template}] Subject: {m.subject}")
            elif m.segments is None:  # spoken: no segments to count
                click.echo(f"\n--- {label} [{m.language}, {m.template}] {m.characters} characters")
            else:
                click.echo(
                    f"\n--- {label} [{m.language}, {m.template}] {m.characters} characters, "
                    f"{plural(m.segments or 0, 'segment')}, {m.encoding}"
                )
            click.echo(m.text)
        longest = preview.longest.get(channel)
        if longest is not None:
            click.echo(
                f"\n--- longest {label} any patient gets [{longest.language}, "
                f"{longest.template}]: {longest.characters} characters, "
                f"{plural(longest.segments or 0, 'segment')}, {longest.encoding}"
            )
            click.echo(longest.text)
