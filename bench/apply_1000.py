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
* dbmate          npm package `dbmate` (its binary); skipped with the reason if npm cannot install it
* floor           one `psql -1` over all forward SQL: no tracking at all

Figures are printed, never asserted.  Usage: python bench/apply_1000.py [--count N]
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

from localpg import LocalPostgres, free_port  # noqa: E402


def forward_and_rollback(i: int) -> tuple[str, str]:
    base = i - i % 5
    kind = i % 5
    if kind == 0:
        return (
            f"CREATE TABLE t_{base} (id serial PRIMARY KEY, name text, created_at timestamptz DEFAULT now());",
            f"DROP TABLE t_{base};",
        )
    if kind == 1:
        return f"ALTER TABLE t_{base} ADD COLUMN note text;", f"ALTER TABLE t_{base} DROP COLUMN note;"
    if kind == 2:
        return f"CREATE INDEX idx_t_{base}_name ON t_{base} (name);", f"DROP INDEX idx_t_{base}_name;"
    if kind == 3:
        return (
            f"INSERT INTO t_{base} (name) SELECT 'n' || g FROM generate_series(1, 20) g;\n"
            f"UPDATE t_{base} SET note = 'backfilled' WHERE id <= 10;",
            f"DELETE FROM t_{base};",
        )
    return f"CREATE VIEW v_{base} AS SELECT id, name, note FROM t_{base};", f"DROP VIEW v_{base};"


def generate(root: Path, count: int) -> dict[str, Path]:
    dirs = {name: root / name for name in ("tme", "psql", "dbmate")}
    for d in dirs.values():
        d.mkdir(parents=True)
    floor = []
    for i in range(1, count + 1):
        version = f"{i:04d}_step_{i}"
        forward, rollback = forward_and_rollback(i - 1)
        (dirs["tme"] / f"{version}.sql").write_text(
            f"-- Migration: {version}.sql\n-- Type: SAFE\nBEGIN;\n{forward}\nCOMMIT;\n"
            f"-- ============================================\n-- ROLLBACK\n"
            f"-- ============================================\n-- {rollback}\n"
        )
        (dirs["psql"] / f"{version}.sql").write_text(
            f"BEGIN;\n{forward}\nINSERT INTO schema_migrations (version, description) VALUES ('{version}', 'step')"
            " ON CONFLICT (version) DO NOTHING;\nCOMMIT;\n"
        )
        (dirs["dbmate"] / f"{i:04d}_step_{i}.sql").write_text(
            f"-- migrate:up\n{forward}\n\n-- migrate:down\n{rollback}\n"
        )
        floor.append(forward)
    (root / "floor.sql").write_text("\n".join(floor) + "\n")
    return dirs


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(argv: list[str], env: dict[str, str] | None = None) -> None:
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({result.returncode}): {result.stdout[-800:]}{result.stderr[-800:]}")


def install_dbmate(root: Path) -> tuple[Path | None, str]:
    if shutil.which("npm") is None:
        return None, "npm not found"
    prefix = root / "npm"
    result = subprocess.run(
        ["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "dbmate"],
        capture_output=True,
        text=True,
        check=False,
    )
    binary = prefix / "node_modules" / ".bin" / "dbmate"
    if result.returncode != 0 or not binary.exists():
        return None, "npm install dbmate failed: " + (result.stderr.strip().splitlines() or ["?"])[-1]
    return binary, ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tmebench-"))
    root.chmod(0o755)  # the server may run as another system user (tools/localpg.py)
    server = LocalPostgres(root / "pg", free_port())
    figures: list[tuple[str, str]] = []
    try:
        server.start()
        server.wait_ready()
        dbs = ("b_tme", "b_psql", "b_dbmate", "b_floor")
        server.ensure_databases(dbs)
        dirs = generate(root, args.count)
        password = server.password()
        env = dict(os.environ, PGPASSWORD=password, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
        venv_bin = Path(sys.executable).parent
        psql = str(server.bindir / "psql")
        conn = ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(server.port), "-U", "tme_user"]

        playbook = root / "apply.yml"
        playbook.write_text(
            "- name: Apply\n  hosts: localhost\n  gather_facts: false\n  tasks:\n"
            "    - name: Apply migrations\n      tme.migrations.migration:\n"
            f"        path: {dirs['tme']}\n        login_host: 127.0.0.1\n        login_port: {server.port}\n"
            "        login_user: tme_user\n        login_db: b_tme\n"
        )
        trivial = root / "trivial.yml"
        trivial.write_text(
            "- name: Trivial\n  hosts: localhost\n  gather_facts: false\n  tasks:\n"
            "    - name: Nothing\n      ansible.builtin.debug:\n        msg: hello\n"
        )
        ansible = [str(venv_bin / "ansible-playbook"), "-i", "localhost,", "-c", "local"]
        ansible += ["-e", f"ansible_python_interpreter={sys.executable}"]

        startup = timed(lambda: run([*ansible, str(trivial)], env))
        figures.append(("ansible start-up (trivial one-task playbook)", f"{startup:.2f} s"))
        apply_s = timed(lambda: run([*ansible, str(playbook)], env))
        figures.append((f"tme.migrations via ansible-playbook, {args.count} migrations", f"{apply_s:.2f} s"))
        noop = timed(lambda: run([*ansible, str(playbook)], env))
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

        binary, why = install_dbmate(root)
        if binary is None:
            figures.append(("dbmate", f"skipped: {why}"))
        else:
            url = f"postgres://tme_user:{password}@127.0.0.1:{server.port}/b_dbmate?sslmode=disable"
            dbenv = dict(env, DATABASE_URL=url)
            dbmate = timed(
                lambda: run([str(binary), "--no-dump-schema", "--migrations-dir", str(dirs["dbmate"]), "up"], dbenv)
            )
            figures.append((f"dbmate up ({args.count})", f"{dbmate:.2f} s"))
            figures.append(("target: tme.migrations <= dbmate + ansible start-up", f"{dbmate + startup:.2f} s"))
        figures.append(("tme.migrations minus ansible start-up", f"{apply_s - startup:.2f} s"))
        figures.append(("no-op rerun minus ansible start-up (target <= 0.5 s)", f"{noop - startup:.2f} s"))
    finally:
        server.destroy()
        shutil.rmtree(root, ignore_errors=True)
    width = max(len(figure[0]) for figure in figures)
    print(f"Benchmark: {args.count} migrations, {server.version()}, {os.cpu_count()} cores")
    for name, value in figures:
        print(f"  {name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
