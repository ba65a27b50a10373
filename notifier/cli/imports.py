"""CSV imports: patients and appointments, every bad row reported by line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import click

from notifier.bootstrap import App
from notifier.cli.output import report_import
from notifier.cli.root import app_of, main
from notifier.usecases.csv_import import ImportReport

Importer = Callable[[App, BinaryIO], ImportReport]


def _import_command(group: click.Group, noun: str, run: Importer, help_text: str) -> None:
    """``notifier <group> import FILE``: ``run`` on the file, rejected rows on stderr, exit 4
    when any row was rejected."""

    @group.command("import", help=help_text)
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.pass_context
    def command(ctx: click.Context, file: Path) -> None:
        app = app_of(ctx)
        with file.open("rb") as stream:  # decoded by the import, bad bytes reported by line
            report = run(app, stream)
        report_import(file, report, noun)


@main.group()
def patients() -> None:
    """Patients and their consent."""


@main.group()
def appointments() -> None:
    """Appointments, to tell patients which of theirs a closure affects."""


_import_command(
    patients,
    "patients",
    lambda app, stream: app.patients.import_patients(stream),
    "Import patients from a CSV file (upsert by external_id).",
)
_import_command(
    appointments,
    "appointments",
    lambda app, stream: app.patients.import_appointments(stream),
    "Import appointments from a CSV file (upsert by external_id; times in the location's zone).",
)
