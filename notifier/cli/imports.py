"""CSV imports: patients and appointments, every bad row reported by line."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import click
from rich.console import Console
from rich.progress import Progress as RichProgress

from notifier.bootstrap import App
from notifier.cli.output import report_import
from notifier.cli.root import acting, actor_of, app_of, main
from notifier.domain.actors import Actor
from notifier.usecases.csv_import import ImportReport, Progress

Importer = Callable[[App, Actor, BinaryIO, Progress], ImportReport]
BIG = 2000  # lines: a file this long shows its progress


def _import_command(group: click.Group, noun: str, run: Importer, help_text: str) -> None:
    """``notifier <group> import FILE``: ``run`` on the file, rejected rows on stderr, exit 4
    when any row was rejected."""

    @group.command("import", help=help_text)
    @acting
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.pass_context
    def command(ctx: click.Context, file: Path) -> None:
        app = app_of(ctx)
        with file.open("rb") as stream:
            lines = sum(block.count(b"\n") for block in iter(lambda: stream.read(1 << 20), b""))
        with file.open("rb") as stream, import_progress(file.name, lines) as told:
            report = run(
                app, actor_of(ctx), stream, told
            )  # decoded by the import, bad bytes reported by line
        report_import(file, report, noun)


@contextmanager
def import_progress(name: str, lines: int) -> Iterator[Progress]:
    """How a long import shows its progress: a bar in a terminal, a line per chunk on stderr
    when piped; nothing for a short file."""
    if lines < BIG:
        yield lambda _: None
        return
    if not sys.stderr.isatty():
        yield lambda done: click.echo(f"{name}: {done:,} of {lines:,} lines read", err=True)
        return
    with RichProgress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"importing {name}", total=lines)
        yield lambda done: bar.update(task, completed=done)


@main.group()
def patients() -> None:
    """Patients and their consent."""


@main.group()
def appointments() -> None:
    """Appointments, to tell patients which of theirs a closure affects."""


_import_command(
    patients,
    "patients",
    lambda app, actor, stream, told: app.patients.import_patients(actor, stream, told),
    "Import patients from a CSV file (upsert by external_id).",
)
_import_command(
    appointments,
    "appointments",
    lambda app, actor, stream, told: app.patients.import_appointments(actor, stream, told),
    "Import appointments from a CSV file (upsert by external_id; times in the location's zone).",
)
