"""The benchmarks measure the same at any hour: run at 22:00 in the location's zone (inside the
default quiet hours on the wall clock), the quick bench still sends in every row, because it
pins its own clock; and a row that sends nothing would fail the run loudly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

AT_22_IN_NEW_YORK = """
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

import time_machine

from bench.__main__ import main

late = datetime(2026, 12, 7, 22, 0, tzinfo=ZoneInfo("America/New_York"))
with time_machine.travel(late, tick=True):
    sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_the_quick_bench_at_22_00_sends_something_in_every_row(tmp_path: Path) -> None:
    out = tmp_path / "latest.json"
    args = ["--quick", "--only", "rates", "unlimited", "--rates", "20", "--seconds", "1"]
    args += ["--unlimited-messages", "60", "--out", str(out)]
    result = subprocess.run(
        [sys.executable, "-c", AT_22_IN_NEW_YORK, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(out.read_text())
    rows = results["rates"] + results["unlimited"] + [results["unlimited_no_server_latency"]]
    assert len(rows) == 5
    assert all(row["messages"] > 0 for row in rows), rows
    assert "no rate limit, 64 threads" in result.stdout
