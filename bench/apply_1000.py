# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Apply 1000 generated migrations, each tool on its own fresh database, and print the figures.

Migrations cycle through: create table, add column, create index, small backfill, create view.
Compared, on a private bundled PostgreSQL server on 127.0.0.1 (nothing else is touched):

* tme.migrations  ansible-playbook (connection local), one `tme.migrations.migration` task
* no-op rerun     the same playbook again over the 1000 applied migrations
* ansible         a trivial one-task playbook: Ansible's own start-up cost
* psql per file   the guide's way: one `psql -f` per file (each file with its tracking INSERT)
* dbmate          dbmate on PATH (or --dbmate), else the npm package `dbmate` installed in a temporary
                  directory; skipped with the reason (and how to get it) when neither works
* floor           one `psql -1` over all forward SQL: no tracking at all

Figures are printed, never asserted.  Usage: python bench/apply_1000.py [--count N] [--dbmate PATH]
bench/ratios.py gives the same comparisons as paired, repeated ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from _common import (
    DBMATE_HOWTO,
    ansible_env,
    ansible_playbook_argv,
    dbmate_env,
    dbmate_up_argv,
    find_dbmate,
    generate_apply,
    private_server,
    run,
    timed,
    write_apply_playbook,
    write_trivial_playbook,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--dbmate", help="dbmate binary (default: on PATH, else npm install into a temporary dir)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tmebench-"))
    figures: list[tuple[str, str]] = []
    try:
        with private_server(root, ("b_tme", "b_psql", "b_dbmate", "b_floor")) as server:
            dirs = generate_apply(root, args.count)
            password = server.password()
            env = ansible_env(password)
            psql = str(server.bindir / "psql")
            conn = ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(server.port), "-U", "tme_user"]
            version = server.version()

            playbook = write_apply_playbook(root / "apply.yml", dirs["tme"], server.port, "b_tme")
            trivial = write_trivial_playbook(root / "trivial.yml")

            startup = timed(lambda: run(ansible_playbook_argv(trivial), env))
            figures.append(("ansible start-up (trivial one-task playbook)", f"{startup:.2f} s"))
            apply_s = timed(lambda: run(ansible_playbook_argv(playbook), env))
            figures.append((f"tme.migrations via ansible-playbook, {args.count} migrations", f"{apply_s:.2f} s"))
            noop = timed(lambda: run(ansible_playbook_argv(playbook), env))
            figures.append(("tme.migrations no-op rerun over the applied ones", f"{noop:.2f} s"))

            run(
                [
                    psql,
                    *conn,
                    "-d",
                    "b_psql",
                    "-c",
                    "CREATE TABLE schema_migrations (version VARCHAR(255) PRIMARY KEY, description TEXT,"
                    " applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, applied_by VARCHAR(100) DEFAULT CURRENT_USER)",
                ],
                env,
            )

            def psql_per_file() -> None:
                for path in sorted(dirs["psql"].iterdir()):
                    run([psql, *conn, "-d", "b_psql", "-f", str(path)], env)

            per_file = timed(psql_per_file)
            figures.append((f"psql, one call per file ({args.count})", f"{per_file:.2f} s"))

            floor = timed(lambda: run([psql, *conn, "-d", "b_floor", "-1", "-f", str(root / "floor.sql")], env))
            figures.append(("floor: one psql -1 over all forward SQL", f"{floor:.2f} s"))

            binary, why = find_dbmate(root, args.dbmate)
            if binary is None:
                figures.append(("dbmate", f"skipped: {why}"))
                print(DBMATE_HOWTO, file=sys.stderr)
            else:
                dbenv = dbmate_env(env, server, password, "b_dbmate")
                dbmate = timed(lambda: run(dbmate_up_argv(binary, dirs["dbmate"]), dbenv))
                figures.append((f"dbmate up ({args.count})", f"{dbmate:.2f} s"))
                figures.append(("target: tme.migrations <= dbmate + ansible start-up", f"{dbmate + startup:.2f} s"))
            figures.append(("tme.migrations minus ansible start-up", f"{apply_s - startup:.2f} s"))
            figures.append(("no-op rerun minus ansible start-up (target <= 0.5 s)", f"{noop - startup:.2f} s"))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    width = max(len(figure[0]) for figure in figures)
    print(f"Benchmark: {args.count} migrations, {version}, {os.cpu_count()} cores")
    for name, value in figures:
        print(f"  {name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
