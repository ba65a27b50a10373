"""Patient import throughput on SQLite and PostgreSQL: rows/s and CPU seconds.

    python -m bench.import_rows [--rows 50000] [--databases sqlite postgresql] [--url ...]

Each database runs in a fresh child process (so its CPU time is its own) on a fresh database
(a temporary SQLite file; a throw-away PostgreSQL schema). The CSV is written to a file first
(not measured), then read the way `notifier patients import FILE` reads it and imported through
the use case. CPU seconds are the importing process's (user + system), not the database
server's. Writes bench/results/import_rows.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

from bench.common import BENCH_GATES
from bench.postgres_scale import DEFAULT_URL, NOW, RESULTS
from notifier.domain.actors import Actor

OPERATOR = Actor.operator()  # benchmarks run the installation: every location

CHILD = [sys.executable, "-m", "bench.import_rows"]
HEADER = "external_id,first_name,last_name,phone,email,language,location,sms_consent,email_consent"


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(HEADER + "\n")
        for i in range(rows):
            out.write(f"i{i},Pat{i},Ient,+1540{2000000 + i},pat{i}@example.org,en,cova,yes,yes\n")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_one(database: str, url: str, rows: int) -> dict[str, Any]:
    """Runs in the child process."""
    from notifier.bootstrap import build_app
    from notifier.clock import FrozenClock
    from notifier.settings import load_settings

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with tempfile.TemporaryDirectory(prefix="notifier-bench-") as tmp:
        if database == "sqlite":
            sa_url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        else:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{schema}"')
            sa_url = url.replace("postgresql://", "postgresql+psycopg://", 1)
            sa_url += ("&" if "?" in sa_url else "?") + f"options=-csearch_path%3D{schema}"
        try:
            app = build_app(
                load_settings(database_url=sa_url, **BENCH_GATES), clock=FrozenClock(NOW)
            )
            app.locations.save(
                OPERATOR,
                "cova",
                "COVA Spine and Pain Center",
                "America/New_York",
                "Mon-Fri 08:00-17:00",
            )
            csv_file = Path(tmp) / "patients.csv"
            write_csv(csv_file, rows)
            cpu, started = cpu_seconds(), time.perf_counter()
            with csv_file.open("rb") as stream:  # as the CLI opens it
                report = app.patients.import_patients(OPERATOR, stream)
            seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
            app.close()
        finally:
            if database != "sqlite":
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    assert report.created == rows and not report.errors, (report.created, report.errors[:3])
    return {
        "database": database,
        "rows": rows,
        "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds),
        "cpu_seconds": round(cpu, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument(
        "--databases", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite", "postgresql"]
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child, args.url, args.rows)))
        return
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    env["NOTIFIER_CONFIG_FILE"] = os.devnull
    results = []
    for database in args.databases:
        out = subprocess.run(
            [*CHILD, "--url", args.url, "--rows", str(args.rows), "--child", database],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{'database':<10} {'rows':>7} {'seconds':>8} {'rows/s':>8} {'CPU s':>6}")
    for r in results:
        print(
            f"{r['database']:<10} {r['rows']:>7} {r['seconds']:>8.2f} {r['rows_per_s']:>8} "
            f"{r['cpu_seconds']:>6.2f}"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "import_rows.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
