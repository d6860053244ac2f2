# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The three ratios the collection aims at, as medians of paired rounds, with their goals.

* P1 apply     (ansible-playbook applying N migrations - a trivial one-task playbook) / dbmate up,
               each tool on a fresh database of its own every round. Goal: at most 0.8.
* P2 no-op     ansible-playbook again over the N applied migrations (nothing pending) / the trivial
               playbook. Goal: at most 1.3.
* P3 classify  `python tools/lint.py DIR` / squawk on the same N files, interpreter start included.
               Goal: at most 1.0.

Each round measures both sides of every pair back to back (the trivial playbook right beside the
run it is compared with), alternating which side goes first; the ratio is computed per round and
the median of the ratios is printed, with the median of each tool's own times beside it. One
untimed warm-up round comes first. The migrations are those of apply_1000.py (P1, P2) and
classify_1000.py (P3). Everything runs against a private bundled PostgreSQL on 127.0.0.1, started
here and stopped and removed at the end. Figures are printed, never asserted: the exit status is 0
whether or not the goals are met.

dbmate: --dbmate PATH, else `dbmate` on PATH, else `npm install dbmate` into the temporary directory.
squawk: the PyPI package squawk-cli (in the dev virtualenv). A missing tool skips its ratio, saying how
to get it.

    python bench/ratios.py [--rounds 5] [--count 1000] [--dbmate PATH]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from _common import (
    DBMATE_HOWTO,
    SQUAWK_HOWTO,
    LocalPostgres,
    ansible_env,
    ansible_playbook_argv,
    bytecode_note,
    dbmate_env,
    dbmate_up_argv,
    find_dbmate,
    find_squawk,
    generate_apply,
    generate_lint,
    lint_argv,
    private_server,
    run,
    timed,
    version_of,
    write_apply_playbook,
    write_trivial_playbook,
)


@dataclass
class Pair:
    """One goal: a ratio computed per round from named timings, with each side's times kept."""

    key: str
    title: str
    goal: float
    sides: tuple[str, ...]  # the timings taken each round, in the order they are printed
    formula: Callable[[dict[str, float]], float]
    shown: str  # how the ratio is made, for the per-round line: {0}, {1}... are the sides' times
    skipped: str = ""
    times: dict[str, list[float]] = field(default_factory=dict)
    ratios: list[float] = field(default_factory=list)

    def record(self, measured: dict[str, float]) -> str:
        for side in self.sides:
            self.times.setdefault(side, []).append(measured[side])
        ratio = self.formula(measured)
        self.ratios.append(ratio)
        return self.shown.format(*(measured[side] for side in self.sides)) + f" = {ratio:.2f}"

    def report(self) -> list[str]:
        if self.skipped:
            return [f"{self.key}  {self.title}", f"      skipped: {self.skipped}"]
        median = statistics.median(self.ratios)
        met = "met" if median <= self.goal else "NOT met"
        own = ", ".join(f"{side} {statistics.median(values):.3f} s" for side, values in self.times.items())
        return [
            f"{self.key}  {self.title}",
            f"      median ratio {median:.2f}   goal <= {self.goal:.1f}   {met}",
            f"      median times: {own}",
            f"      ratio per round: {' '.join(f'{r:.2f}' for r in self.ratios)}"
            f"   (min {min(self.ratios):.2f}, max {max(self.ratios):.2f})",
        ]


def fresh_databases(server: LocalPostgres, previous: tuple[str, ...], new: tuple[str, ...]) -> None:
    """Drop the last round's databases, create this round's, and checkpoint: all before any timing."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(autocommit=True, **server.admin_kwargs()) as conn:
        for name in previous:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
    server.ensure_databases(new)
    with psycopg.connect(autocommit=True, **server.admin_kwargs()) as conn:
        conn.execute("CHECKPOINT")


def tracked(server: LocalPostgres, database: str) -> int:
    """Rows in the database's schema_migrations (both tme.migrations and dbmate keep one)."""
    import psycopg

    with psycopg.connect(**server.admin_kwargs(database)) as conn:
        row = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
    return int(row[0]) if row else 0


def in_turn(first_first: bool, steps: list[tuple[str, Callable[[], None]]]) -> dict[str, float]:
    """Time the steps back to back, in the given order or reversed."""
    ordered = steps if first_first else list(reversed(steps))
    return {name: timed(action) for name, action in ordered}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="paired rounds (default 5, the least the goals ask)")
    parser.add_argument("--count", type=int, default=1000, help="generated migrations (default 1000)")
    parser.add_argument("--dbmate", help="dbmate binary (default: on PATH, else npm install into a temporary dir)")
    args = parser.parse_args()
    if args.rounds < 1 or args.count < 1:
        parser.error("--rounds and --count must be at least 1")

    pairs = {
        "P1": Pair(
            "P1",
            f"apply {args.count}: (ansible-playbook - trivial playbook) / dbmate up, fresh databases",
            0.8,
            ("ansible-playbook apply", "trivial playbook", "dbmate up"),
            lambda t: (t["ansible-playbook apply"] - t["trivial playbook"]) / t["dbmate up"],
            "({0:.2f} - {1:.2f}) / {2:.2f}",
        ),
        "P2": Pair(
            "P2",
            f"no-op: ansible-playbook over the {args.count} applied / trivial playbook",
            1.3,
            ("ansible-playbook no-op", "trivial playbook"),
            lambda t: t["ansible-playbook no-op"] / t["trivial playbook"],
            "{0:.2f} / {1:.2f}",
        ),
        "P3": Pair(
            "P3",
            f"classify {args.count} files: tools/lint.py / squawk, interpreter start included",
            1.0,
            ("tools/lint.py", "squawk"),
            lambda t: t["tools/lint.py"] / t["squawk"],
            "{0:.3f} / {1:.3f}",
        ),
    }

    root = Path(tempfile.mkdtemp(prefix="tme-bench-ratios-"))
    header: list[str] = []
    try:
        with private_server(root) as server:
            dirs = generate_apply(root / "apply", args.count)
            lint_dir = root / "lint"
            generate_lint(lint_dir, args.count)
            lint_files = sorted(str(p) for p in lint_dir.glob("*.sql"))
            password = server.password()
            env = ansible_env(password)
            trivial = ansible_playbook_argv(write_trivial_playbook(root / "trivial.yml"))

            dbmate, why = find_dbmate(root, args.dbmate)
            if dbmate is None:
                pairs["P1"].skipped = f"dbmate missing ({why}). {DBMATE_HOWTO}"
            squawk = find_squawk()
            if squawk is None:
                pairs["P3"].skipped = SQUAWK_HOWTO
            header = [
                f"tme.migrations ratios: {args.count} generated migrations, {args.rounds} paired"
                f" round{'s' if args.rounds > 1 else ''} (ratio per round, then the median of the ratios)"
                + (" - fewer than the 5 the goals ask for" if args.rounds < 5 else ""),
                f"  {server.version()}, {os.cpu_count()} cores (load average {os.getloadavg()[0]:.2f} at the start),"
                f" Python {sys.version.split()[0]}, "
                f"{version_of([trivial[0], '--version'])}",
                f"  dbmate: {version_of([str(dbmate), '--version']) + f' ({dbmate})' if dbmate else 'missing'}; "
                f"squawk: {version_of([squawk, '--version']) + f' ({squawk})' if squawk else 'missing'}",
                f"  {bytecode_note()}",
            ]
            print("\n".join(header), flush=True)

            previous: tuple[str, ...] = ()
            for number in range(0, args.rounds + 1):  # round 0: warm-up, not counted
                tme_db, dbmate_db = f"r{number}_tme", f"r{number}_dbmate"
                fresh_databases(server, previous, (tme_db, dbmate_db))
                previous = (tme_db, dbmate_db)
                apply = ansible_playbook_argv(
                    write_apply_playbook(root / f"apply_r{number}.yml", dirs["tme"], server.port, tme_db)
                )
                odd = number % 2 == 1
                line = []

                # P1: the trivial playbook right before the apply it is subtracted from; dbmate before or after.
                steps = [
                    ("trivial playbook", lambda: run(trivial, env)),
                    ("ansible-playbook apply", lambda apply=apply: run(apply, env)),
                ]
                if dbmate is not None:
                    dbenv = dbmate_env(env, server, password, dbmate_db)
                    up = dbmate_up_argv(dbmate, dirs["dbmate"])
                    dbmate_step = ("dbmate up", lambda up=up, dbenv=dbenv: run(up, dbenv))
                    steps = [*steps, dbmate_step] if odd else [dbmate_step, *steps]
                measured = {name: timed(action) for name, action in steps}
                for database in (tme_db, dbmate_db) if dbmate is not None else (tme_db,):
                    if tracked(server, database) != args.count:
                        raise RuntimeError(
                            f"{database}: {tracked(server, database)} migrations tracked, not {args.count}"
                        )
                if dbmate is not None:
                    line.append("P1 " + (pairs["P1"].record(measured) if number else "warm-up"))

                # P2: nothing pending on the database just migrated, beside the trivial playbook.
                measured = in_turn(
                    odd,
                    [
                        ("ansible-playbook no-op", lambda apply=apply: run(apply, env)),
                        ("trivial playbook", lambda: run(trivial, env)),
                    ],
                )
                line.append("P2 " + (pairs["P2"].record(measured) if number else "warm-up"))

                # P3: same files, each tool a new process (lint exits 0, squawk 1: it reports violations).
                if squawk is not None:
                    measured = in_turn(
                        odd,
                        [
                            ("tools/lint.py", lambda: run(lint_argv(lint_dir), env)),
                            ("squawk", lambda: run([squawk, *lint_files], env, ok=(0, 1))),
                        ],
                    )
                    line.append("P3 " + (pairs["P3"].record(measured) if number else "warm-up"))
                label = f"round {number}/{args.rounds}" if number else "warm-up"
                print(f"  {label:<11} " + "   ".join(line), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print()
    for pair in pairs.values():
        print("\n".join(pair.report()))
    print(
        f"Figures, not assertions: this machine and its load (average {os.getloadavg()[0]:.2f} at the end)"
        " decide them; the exit status ignores the goals."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
