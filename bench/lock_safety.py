# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""P4, lock safety under load: what the application sees while a migration waits for its lock.

On a private bundled PostgreSQL, for each way of adding a column to table t:

* pgbench runs 4 clients of `SELECT v FROM t WHERE id = :id` (rate-limited, like an application),
  logging the latency of every transaction (`--log`);
* one second in, a session reads t in an open transaction (ACCESS SHARE) and keeps it open for
  12 seconds, as a long report would;
* one more second in, the migration adds a column to t:
  - ``tme.migrations``: one `tme.migrations.migration` task through ansible-playbook, with the
    module's defaults (lock_timeout 100 ms, retries with growing sleeps);
  - ``plain ALTER``: `ALTER TABLE t ADD COLUMN ...` on a plain connection, no lock_timeout.

Printed for each: the worst pgbench latency, how many transactions took over 100 ms, and when the
migration completed. The goal: the worst latency at most 200 ms while the migration waits, and the
migration completes after the holder leaves. Figures are printed, never asserted.

Run: PATH="$PWD/.venv/bin:$PATH" .venv/bin/python bench/lock_safety.py [--hold 12] [--rows 100000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from _common import ansible_env, ansible_playbook_argv, private_server, write_apply_playbook

GOAL_WORST_MS = 200.0
SLOW_MS = 100.0
CLIENTS = 4
RATE = 400  # transactions per second in all: an application, not a saturation test


def prepare(server: Any, database: str, rows: int) -> None:
    import psycopg

    with psycopg.connect(autocommit=True, **server.app_kwargs(database)) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, %s) g", (rows,))
        conn.execute("VACUUM ANALYZE t")


def start_pgbench(server: Any, database: str, scratch: Path, seconds: int, rows: int) -> subprocess.Popen[str]:
    script = scratch / f"{database}.sql"
    script.write_text(f"\\set id random(1, {rows})\nSELECT v FROM t WHERE id = :id;\n")
    argv = [
        str(server.bindir / "pgbench"),
        "--no-vacuum",
        "--client",
        str(CLIENTS),
        "--jobs",
        "2",
        "--rate",
        str(RATE),
        "--time",
        str(seconds),
        "--file",
        str(script),
        "--log",
        "--log-prefix",
        str(scratch / f"{database}_log"),
        "--host",
        "127.0.0.1",
        "--port",
        str(server.port),
        "--username",
        server.app_kwargs(database)["user"],
        database,
    ]
    env = ansible_env(server.password())  # PGPASSWORD for the application role
    return subprocess.Popen(argv, env=env, cwd=scratch, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def latencies_ms(scratch: Path, database: str) -> list[float]:
    """Per-transaction latencies of pgbench's logs: client, transaction, time in microseconds, ..."""
    values: list[float] = []
    for path in scratch.glob(f"{database}_log.*"):
        for line in path.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[2].isdigit():
                values.append(int(fields[2]) / 1000.0)
    return values


def hold_access_share(server: Any, database: str, seconds: float, ready: threading.Event) -> None:
    import psycopg

    with psycopg.connect(application_name="long-report", **server.app_kwargs(database)) as conn:
        conn.execute("SELECT count(*) FROM t").fetchone()  # ACCESS SHARE until the transaction ends
        ready.set()
        time.sleep(seconds)
        conn.rollback()


def migrate_with_engine(server: Any, database: str, scratch: Path) -> Callable[[], None]:
    migrations = scratch / f"{database}_migrations"
    migrations.mkdir()
    (migrations / "001_add_note.sql").write_text(
        "-- Type: SAFE\nBEGIN;\nALTER TABLE t ADD COLUMN note text;\nCOMMIT;\n"
        "-- ROLLBACK\n-- ALTER TABLE t DROP COLUMN note;\n"
    )
    playbook = write_apply_playbook(scratch / f"{database}.yml", migrations, server.port, database)
    argv, env = ansible_playbook_argv(playbook), ansible_env(server.password())

    def run() -> None:
        result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"ansible-playbook failed ({result.returncode}):\n{result.stdout[-2000:]}")

    return run


def migrate_plain(server: Any, database: str, _scratch: Path) -> Callable[[], None]:
    def run() -> None:
        import psycopg

        with psycopg.connect(autocommit=True, **server.app_kwargs(database)) as conn:
            conn.execute("ALTER TABLE t ADD COLUMN note text")

    return run


def one_run(
    server: Any, database: str, scratch: Path, how: Callable[..., Callable[[], None]], hold: float, rows: int
) -> dict[str, Any]:
    prepare(server, database, rows)
    migrate = how(server, database, scratch)
    seconds = int(hold + 14)
    start = time.monotonic()
    bench = start_pgbench(server, database, scratch, seconds, rows)
    time.sleep(1.0)
    ready = threading.Event()
    holder = threading.Thread(target=hold_access_share, args=(server, database, hold, ready))
    holder.start()
    ready.wait(10)
    held_at = time.monotonic() - start
    time.sleep(1.0)
    outcome: dict[str, Any] = {"error": None}
    migration_start = time.monotonic() - start
    try:
        migrate()
    except Exception as exc:  # reported beside the figures
        outcome["error"] = str(exc)
    outcome["migration_done"] = time.monotonic() - start
    holder.join()
    output = bench.communicate(timeout=seconds + 60)[0]
    if bench.returncode != 0:
        raise RuntimeError(f"pgbench failed ({bench.returncode}): {output[-1500:]}")
    values = latencies_ms(scratch, database)
    outcome.update(
        held=(held_at, held_at + hold),
        migration_start=migration_start,
        transactions=len(values),
        worst=max(values, default=0.0),
        slow=sum(1 for v in values if v > SLOW_MS),
    )
    return outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hold", type=float, default=12.0, help="seconds the reader holds ACCESS SHARE (12)")
    parser.add_argument("--rows", type=int, default=100000, help="rows of table t (100000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tme-bench-lock-") as tmp:
        scratch = Path(tmp)
        with private_server(scratch, ("bench_engine", "bench_plain")) as server:
            results = {
                "tme.migrations": one_run(server, "bench_engine", scratch, migrate_with_engine, args.hold, args.rows),
                "plain ALTER": one_run(server, "bench_plain", scratch, migrate_plain, args.hold, args.rows),
            }
    print(
        f"P4 lock safety: {CLIENTS} pgbench clients ({RATE} tx/s in all) reading t by id; a session holds "
        f"ACCESS SHARE on t for {args.hold:g}s; the migration adds a column meanwhile"
    )
    print(f"{'':16} {'worst latency':>14} {'tx > 100 ms':>12} {'transactions':>13}  migration")
    for name, r in results.items():
        done = f"started {r['migration_start']:.1f}s, done {r['migration_done']:.1f}s"
        done += f" (holder {r['held'][0]:.1f}s-{r['held'][1]:.1f}s)"
        if r["error"]:
            done += f"; FAILED: {r['error'].splitlines()[-1][:200]}"
        print(f"{name:16} {r['worst']:>11.1f} ms {r['slow']:>12} {r['transactions']:>13}  {done}")
    engine = results["tme.migrations"]
    met = engine["worst"] <= GOAL_WORST_MS and engine["error"] is None and engine["migration_done"] >= engine["held"][1]
    print(
        f"goal: worst latency at most {GOAL_WORST_MS:g} ms while the migration waits, and the migration completes "
        f"after the holder leaves: {'met' if met else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
