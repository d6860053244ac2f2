# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the benchmarks share: generated migrations, the tools compared, a private server, timing.

Not a benchmark itself. Imported by apply_1000.py, classify_1000.py and ratios.py (run as
`python bench/<script>.py`, so bench/ is on sys.path).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))

from localpg import LocalPostgres, free_port  # noqa: E402

VENV_BIN = Path(sys.executable).parent

DBMATE_HOWTO = (
    "dbmate is needed for this figure: put it on PATH (`npm install -g dbmate`, or a release binary from"
    " https://github.com/amacneil/dbmate/releases), or pass --dbmate /path/to/dbmate; without either the"
    " benchmark runs `npm install --prefix <its temporary directory> dbmate`, which needs npm and the npm registry"
)
SQUAWK_HOWTO = "squawk is needed for this figure: .venv/bin/python -m pip install squawk-cli (or `make` installs it)"


# -- timing and processes -------------------------------------------------------------------------
def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(argv: list[str], env: dict[str, str] | None = None, ok: tuple[int, ...] = (0,)) -> None:
    """Run a command that must exit with one of `ok`; its output is kept only to explain a failure."""
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if result.returncode not in ok:
        raise RuntimeError(f"{argv[0]} failed ({result.returncode}): {result.stdout[-800:]}{result.stderr[-800:]}")


# -- the apply benchmark's migrations -------------------------------------------------------------
def forward_and_rollback(i: int) -> tuple[str, str]:
    """Create table, add column, create index, small backfill, create view: in turn."""
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


def generate_apply(root: Path, count: int) -> dict[str, Path]:
    """The same `count` migrations for each tool, in its own format: root/{tme,psql,dbmate}/, root/floor.sql."""
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


# -- the classification benchmark's migrations ----------------------------------------------------
LINT_STATEMENTS = (
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


def generate_lint(directory: Path, count: int) -> None:
    """Small files in the guide's template, one statement each; every sixth a declared BREAKING drop."""
    directory.mkdir(parents=True)
    for i in range(count):
        forward, rollback = LINT_STATEMENTS[i % len(LINT_STATEMENTS)]
        base = i - i % len(LINT_STATEMENTS)
        version = f"{i + 1:04d}_step_{i + 1}"
        declared = "BREAKING" if i % len(LINT_STATEMENTS) == 5 else "SAFE"
        (directory / f"{version}.sql").write_text(
            f"-- Migration: {version}\n-- Type: {declared}\n-- Description: step {i + 1}\n\nBEGIN;\n\n"
            f"{forward.format(n=i, b=base)}\n\n"
            f"INSERT INTO schema_migrations (version, description) VALUES ('{version}', 'step');\n\nCOMMIT;\n\n"
            "-- ============================================\n-- ROLLBACK (if needed):\n"
            f"-- ============================================\n-- {rollback.format(n=i, b=base)}\n"
        )


def lint_argv(directory: Path) -> list[str]:
    """tools/lint.py in a new interpreter: its start-up is part of what is measured."""
    return [sys.executable, str(REPO / "tools" / "lint.py"), str(directory)]


# -- the tools compared ---------------------------------------------------------------------------
def find_squawk() -> str | None:
    squawk = shutil.which("squawk") or str(VENV_BIN / "squawk")
    return squawk if Path(squawk).exists() else None


def find_dbmate(scratch: Path, explicit: str | None = None) -> tuple[Path | None, str]:
    """dbmate: the one given, else on PATH, else the npm package installed under `scratch`. (binary, why not)."""
    if explicit:
        path = Path(explicit)
        return (path, "") if path.exists() else (None, f"--dbmate {explicit}: no such file")
    on_path = shutil.which("dbmate")
    if on_path:
        return Path(on_path), ""
    if shutil.which("npm") is None:
        return None, "not on PATH, and npm not found to install it"
    prefix = scratch / "npm"
    result = subprocess.run(
        ["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "dbmate"],
        capture_output=True,
        text=True,
        check=False,
    )
    binary = prefix / "node_modules" / ".bin" / "dbmate"
    if result.returncode != 0 or not binary.exists():
        return None, "not on PATH, and npm install dbmate failed: " + (result.stderr.strip().splitlines() or ["?"])[-1]
    return binary, ""


def version_of(argv: list[str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    return (result.stdout.strip() or result.stderr.strip() or "?").splitlines()[0]


def dbmate_env(env: dict[str, str], server: LocalPostgres, password: str, database: str) -> dict[str, str]:
    url = f"postgres://tme_user:{password}@127.0.0.1:{server.port}/{database}?sslmode=disable"
    return dict(env, DATABASE_URL=url)


def dbmate_up_argv(binary: Path, directory: Path) -> list[str]:
    return [str(binary), "--no-dump-schema", "--migrations-dir", str(directory), "up"]


# -- Ansible --------------------------------------------------------------------------------------
def bytecode_note() -> str:
    """What the header says of Python's bytecode cache in the tools' environment (see tool_env)."""
    if "PYTHONDONTWRITEBYTECODE" in os.environ:
        return "Python bytecode cache on for the tools measured (PYTHONDONTWRITEBYTECODE of this shell dropped)"
    return "Python bytecode cache on (Python's default)"


def tool_env() -> dict[str, str]:
    """The environment of the tools measured: the repository's ansible.cfg (collection from the checkout),
    and no PYTHONDONTWRITEBYTECODE: they run as on a user's machine, where Python keeps the bytecode of
    what it imports (the warm-up round writes it); a shell that sets it would make every run compile
    tools/lint.py's imports again. Ansible's collection loader compiles the collection's plugins at every
    start either way."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def ansible_env(password: str) -> dict[str, str]:
    """tool_env, and PGPASSWORD for the modules."""
    return dict(tool_env(), PGPASSWORD=password)


def ansible_playbook_argv(playbook: Path) -> list[str]:
    return [
        str(VENV_BIN / "ansible-playbook"),
        "-i",
        "localhost,",
        "-c",
        "local",
        "-e",
        f"ansible_python_interpreter={sys.executable}",
        str(playbook),
    ]


def write_trivial_playbook(path: Path) -> Path:
    """One debug task: what Ansible costs before any module of ours runs."""
    path.write_text(
        "- name: Trivial\n  hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - name: Nothing\n      ansible.builtin.debug:\n        msg: hello\n"
    )
    return path


def write_apply_playbook(path: Path, migrations: Path, port: int, database: str) -> Path:
    """One `tme.migrations.migration` task over `migrations` into `database` on 127.0.0.1."""
    path.write_text(
        "- name: Apply\n  hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - name: Apply migrations\n      tme.migrations.migration:\n"
        f"        path: {migrations}\n        login_host: 127.0.0.1\n        login_port: {port}\n"
        f"        login_user: tme_user\n        login_db: {database}\n"
    )
    return path


# -- the private server ---------------------------------------------------------------------------
@contextmanager
def private_server(root: Path, databases: tuple[str, ...] = ()) -> Iterator[LocalPostgres]:
    """A bundled PostgreSQL in root/pg on a free port of 127.0.0.1, stopped and removed on exit."""
    root.chmod(0o755)  # the server may run as another system user (tools/localpg.py)
    server = LocalPostgres(root / "pg", free_port())
    try:
        server.start()
        server.wait_ready()
        server.ensure_databases(databases)
        yield server
    finally:
        server.destroy()
