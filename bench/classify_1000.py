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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, SQUAWK_HOWTO, bytecode_note, find_squawk, generate_lint, lint_argv, tool_env


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
        generate_lint(directory, args.count)
        files = sorted(str(p) for p in directory.glob("*.sql"))
        print(f"{args.count} migration files, best of {args.repeat} runs, {os.cpu_count()} cores")

        print(f"  {bytecode_note()}")
        seconds, result = best_of(args.repeat, lint_argv(directory), tool_env())  # as ratios.py runs it
        print(f"  tme lint (python, start included) {seconds:6.3f} s   {result.stdout.strip().splitlines()[-1]}")

        squawk = find_squawk()
        if squawk is not None:
            seconds, result = best_of(args.repeat, [squawk, *files])
            print(f"  squawk (rust binary)              {seconds:6.3f} s   exit {result.returncode}")
        else:
            print(f"  squawk                            skipped: {SQUAWK_HOWTO}")

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
