# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Classify 1000 generated migration files and print the figures, beside squawk on the same files.

* tme lint        `python tools/lint.py DIR`: one Python process, interpreter start included
* squawk          PyPI `squawk-cli` (a Rust binary) over the same files; skipped with the reason if absent
* pglast floor    pglast's JSON parse of the same files, in this process (no start-up, no analysis)
* check.yml       playbooks/check.yml end to end through ansible-runner (Ansible start-up included)

Files are small migrations in the guide's template (one statement each, cycling through create table,
add column, create index, backfill, create view, drop column). Figures are printed, never asserted.

    python bench/classify_1000.py [--count N] [--repeat K]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

STATEMENTS = (
    (
        "CREATE TABLE t_{n} (id bigserial PRIMARY KEY, name text NOT NULL, created_at timestamptz DEFAULT now());",
        "DROP TABLE t_{n};",
    ),
    ("ALTER TABLE t_{b} ADD COLUMN note text;", "ALTER TABLE t_{b} DROP COLUMN note;"),
    ("CREATE INDEX idx_t_{b}_name ON t_{b} (name);", "DROP INDEX idx_t_{b}_name;"),
    ("UPDATE t_{b} SET note = 'backfilled -- DROP TABLE x' WHERE note IS NULL;", "UPDATE t_{b} SET note = NULL;"),
    ("CREATE VIEW v_{b} AS SELECT id, name FROM t_{b};", "DROP VIEW v_{b};"),
    ("ALTER TABLE t_{b} DROP COLUMN note;", "ALTER TABLE t_{b} ADD COLUMN note text;"),
)


def generate(directory: Path, count: int) -> None:
    directory.mkdir(parents=True)
    for i in range(count):
        forward, rollback = STATEMENTS[i % len(STATEMENTS)]
        base = i - i % len(STATEMENTS)
        version = f"{i + 1:04d}_step_{i + 1}"
        declared = "BREAKING" if i % len(STATEMENTS) == 5 else "SAFE"
        (directory / f"{version}.sql").write_text(
            f"-- Migration: {version}\n-- Type: {declared}\n-- Description: step {i + 1}\n\nBEGIN;\n\n"
            f"{forward.format(n=i, b=base)}\n\n"
            f"INSERT INTO schema_migrations (version, description) VALUES ('{version}', 'step');\n\nCOMMIT;\n\n"
            "-- ============================================\n-- ROLLBACK (if needed):\n"
            f"-- ============================================\n-- {rollback.format(n=i, b=base)}\n"
        )


def best_of(
    repeat: int, argv: list[str], env: dict[str, str] | None = None
) -> tuple[float, subprocess.CompletedProcess[str]]:
    times, result = [], None
    for _run in range(repeat):
        start = time.perf_counter()
        result = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
        times.append(time.perf_counter() - start)
    assert result is not None
    return min(times), result


def pglast_floor(directory: Path) -> float:
    import pglast.parser

    texts = [p.read_text() for p in sorted(directory.glob("*.sql"))]
    start = time.perf_counter()
    for text in texts:
        pglast.parser.parse_sql_json(text)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description="classification benchmark")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5, help="runs per tool; the best is printed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tme-bench-") as tmp:
        directory = Path(tmp) / "migrations"
        generate(directory, args.count)
        files = sorted(str(p) for p in directory.glob("*.sql"))
        print(f"{args.count} migration files, best of {args.repeat} runs, {os.cpu_count()} cores")

        seconds, result = best_of(args.repeat, [sys.executable, str(REPO / "tools" / "lint.py"), str(directory)])
        print(f"  tme lint (python, start included) {seconds:6.3f} s   {result.stdout.strip().splitlines()[-1]}")

        squawk = shutil.which("squawk") or str(Path(sys.executable).parent / "squawk")
        if Path(squawk).exists():
            seconds, result = best_of(args.repeat, [squawk, *files])
            print(f"  squawk (rust binary)              {seconds:6.3f} s   exit {result.returncode}")
        else:
            print("  squawk                            skipped: pip install squawk-cli")

        print(f"  pglast parse only (in process)    {pglast_floor(directory):6.3f} s")

        env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
        private = Path(tmp) / "runner"
        private.mkdir()
        runner = str(Path(sys.executable).parent / "ansible-runner")
        argv = [
            runner,
            "run",
            str(private),
            "--project-dir",
            str(REPO / "playbooks"),
            "-p",
            "check.yml",
            "-q",
            "--cmdline",
            f"-e check_migrations_dir={directory} -e check_report_dir={Path(tmp) / 'report'}",
        ]
        seconds, result = best_of(min(args.repeat, 3), argv, env)
        report = Path(tmp) / "report" / "migration-lint.txt"
        last = report.read_text().strip().splitlines()[-1] if report.exists() else result.stderr[-300:]
        print(f"  check.yml via ansible-runner      {seconds:6.3f} s   exit {result.returncode}: {last}")


if __name__ == "__main__":
    main()
