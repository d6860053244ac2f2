# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Backup and restore of a database of some size, and print the figures.

On a private bundled PostgreSQL server on 127.0.0.1 (nothing else is touched), a database with a
table of --rows rows (an index, text and numbers) is:

* guide backup    `pg_dump | gzip -6 > file` (what backup-daily.sh does), no verification
* tme backup      tme.migrations' backup: pg_dump, gzip in Python, fsync, verification, rename
* tme verify      the verification alone (the whole gzip stream read, closing line, sha256)
* guide restore   `zcat file | psql` into a fresh database (no transaction, no ON_ERROR_STOP)
* tme restore     tme.migrations' restore: verification, then one transaction with ON_ERROR_STOP

Best of --repeat runs. Figures are printed, never asserted.
Usage: python bench/backup_restore.py [--rows N] [--repeat K]
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
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(REPO / ".collections"))

from localpg import LocalPostgres, free_port  # noqa: E402

from ansible_collections.tme.migrations.plugins.module_utils._backup import make_backup, verify  # noqa: E402
from ansible_collections.tme.migrations.plugins.module_utils._pgtools import PgTools  # noqa: E402
from ansible_collections.tme.migrations.plugins.module_utils._restore import restore  # noqa: E402


def best(repeat: int, action: Callable[[], object]) -> float:
    times = []
    for _run in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    import psycopg

    root = Path(tempfile.mkdtemp(prefix="tme-bench-backup-"))
    out = Path(tempfile.mkdtemp(prefix="tme-bench-files-"))
    server = LocalPostgres(root, free_port())  # the root becomes 0755: the server's user traverses it
    server.start()
    server.wait_ready()
    try:
        server.ensure_databases(("bench_src", "bench_guide", "bench_tme"))
        kwargs = server.app_kwargs("bench_src")
        with psycopg.connect(**kwargs, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE clients (id bigint PRIMARY KEY, legal_name text NOT NULL, email text, balance numeric)"
            )
            conn.execute(
                "INSERT INTO clients SELECT g, 'Client ' || g, 'c' || g || '@example.com', g * 1.5"
                " FROM generate_series(1, %s) g",
                (args.rows,),
            )
            size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()
        env = {**os.environ, "PGPASSWORD": kwargs["password"]}
        conn_args = ["-h", "127.0.0.1", "-p", str(server.port), "-U", kwargs["user"], "-w"]
        bindir = server.bindir
        guide_file = out / "guide.sql.gz"

        def guide_backup() -> None:
            with open(guide_file, "wb") as handle:
                dump = subprocess.Popen(
                    [str(bindir / "pg_dump"), *conn_args, "-d", "bench_src"], stdout=subprocess.PIPE, env=env
                )
                subprocess.run(["gzip", "-6"], stdin=dump.stdout, stdout=handle, check=True)
                dump.wait()

        def tools_for(dbname: str) -> PgTools:
            return PgTools(dbname, kwargs["user"], kwargs["password"], "127.0.0.1", server.port, str(bindir))

        tools = tools_for("bench_src")
        made: list[str] = []

        def tme_backup() -> None:
            made.append(make_backup(tools, str(out / "tme"), "bench_src", keep=1).path)

        def guide_restore() -> None:
            with psycopg.connect(**server.admin_kwargs(), autocommit=True) as conn:
                conn.execute("DROP DATABASE IF EXISTS bench_guide WITH (FORCE)")
                conn.execute("CREATE DATABASE bench_guide OWNER tme_user")
            zcat = subprocess.Popen(["zcat", str(guide_file)], stdout=subprocess.PIPE)
            subprocess.run(
                [str(bindir / "psql"), *conn_args, "-q", "-d", "bench_guide"],
                stdin=zcat.stdout,
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            zcat.wait()

        target = tools_for("bench_tme")

        figures = [
            ("guide backup: pg_dump | gzip -6", best(args.repeat, guide_backup)),
            ("tme backup: dump, gzip, fsync, verify, rename", best(args.repeat, tme_backup)),
            ("tme verify alone", best(args.repeat, lambda: verify(made[-1]))),
            ("guide restore: zcat | psql (fresh database)", best(args.repeat, guide_restore)),
            ("tme restore: verify, one transaction, clean", best(args.repeat, lambda: restore(target, made[-1]))),
        ]
        print(f"{args.rows} rows, database {size[0] if size else '?'}, {server.version()}, best of {args.repeat}")
        sizes = guide_file.stat().st_size / 1e6, Path(made[-1]).stat().st_size / 1e6
        print(f"backup file: guide {sizes[0]:.1f} MB, tme {sizes[1]:.1f} MB")
        for name, seconds in figures:
            print(f"  {name:<48} {seconds:7.2f} s")
    finally:
        server.destroy()
        shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
