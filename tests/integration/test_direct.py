# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Direct execution (plugins/plugin_utils/_direct.py): a module run in the controller's worker returns
what the same module shipped through AnsiballZ returns, on real PostgreSQL, through ansible-runner.

Each scenario runs twice on two fresh databases of the test server: once as the collection runs it
on the controller (direct) and once with ``tme_migrations_direct: false`` (the shipped module). The
results are compared after the names that differ by construction (database, ms, timestamps) are
evened out. And -vvv says which way a task ran, so a test sees that each way really was taken.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..conftest import REPO, Database
from .test_modules import APPLY, INFO, hostvars

BAD = """-- Migration: 016_bad.sql
-- Type: SAFE
BEGIN;
ALTER TABLE clients ADD COLUMN IF NOT EXISTS region TEXT;
UPDATE clients SET region = nope;
COMMIT;
-- ROLLBACK
-- ALTER TABLE clients DROP COLUMN IF EXISTS region;
"""

VARYING = ("ms", "execution_ms", "duration_ms", "applied_at", "started_at", "finished_at", "elapsed_ms", "_phase")


def even(value: Any, db: Database) -> Any:
    """The result with what differs by construction evened out: the database's name, times."""
    if isinstance(value, dict):
        return {k: ("<varies>" if k in VARYING else even(v, db)) for k, v in value.items()}
    if isinstance(value, list):
        return [even(v, db) for v in value]
    if isinstance(value, str):
        return value.replace(db.name, "<db>")
    return value


def both_ways(playbook: Any, play: str, db: Database, db2: Database, migrations: Path, **kw: Any) -> list[Any]:
    """The play's results on db (direct) and on db2 (shipped module), evened out."""
    direct = playbook(play, hostvars(db, migrations), **kw)
    shipped = playbook(play, hostvars(db2, migrations, tme_migrations_direct=False), **kw)
    assert direct.rc == shipped.rc, (direct.stdout, shipped.stdout)
    return [
        {task: even(res, d) for (_host, task), res in run.results.items()} for run, d in ((direct, db), (shipped, db2))
    ]


def test_same_results_both_ways(playbook: Any, db: Database, db2: Database, migrations_dir: Path) -> None:
    # A status before anything, a plan in check mode with diff, the apply, a no-op rerun, a status.
    steps = ((INFO, {}), (APPLY, {"check": True, "diff": True}), (APPLY, {"diff": True}), (APPLY, {}), (INFO, {}))
    for play, kw in steps:
        direct, shipped = both_ways(playbook, play, db, db2, migrations_dir, **kw)
        assert direct == shipped, _diff(direct, shipped)
    assert db.versions() == db2.versions() and len(db.versions()) == 15

    # A failing migration: the same message (file and line first), the same nothing-committed state.
    (migrations_dir / "016_bad.sql").write_text(BAD)
    direct, shipped = both_ways(playbook, APPLY, db, db2, migrations_dir)
    assert direct == shipped, _diff(direct, shipped)
    failed = direct["Apply migrations"]
    assert failed["failed"] and failed["msg"].startswith("016_bad.sql line 5: ERROR:"), failed["msg"]
    assert "region" not in [c for (c,) in db.query("SELECT column_name FROM information_schema.columns")]
    (migrations_dir / "016_bad.sql").unlink()

    # A row no file accounts for: a warning, kept in the result both ways (where the action redacts it).
    for d in (db, db2):
        d.query("INSERT INTO schema_migrations (version) VALUES ('999_by_hand') RETURNING version")
    direct, shipped = both_ways(playbook, APPLY, db, db2, migrations_dir, extravars={"state": "tracked"})
    assert direct == shipped, _diff(direct, shipped)
    assert any("999_by_hand" in w for w in direct["Apply migrations"].get("warnings", [])), direct
    for d in (db, db2):
        d.query("DELETE FROM schema_migrations WHERE version = '999_by_hand' RETURNING version")

    # A rollback of one step, and a wrong argument (the argument spec's own message).
    direct, shipped = both_ways(playbook, APPLY, db, db2, migrations_dir, extravars={"state": "rolled_back"})
    assert direct == shipped, _diff(direct, shipped)
    assert len(db.versions()) == 14 and db.versions() == db2.versions()
    direct, shipped = both_ways(playbook, APPLY, db, db2, migrations_dir, extravars={"state": "sideways"})
    assert direct == shipped, _diff(direct, shipped)
    assert "value of state must be one of" in direct["Apply migrations"]["msg"]
    # The password (a no_log option) is in no result either way.
    assert db.params["login_password"] not in repr(direct) + repr(shipped)


def _verbose_run(tmp_path: Path, db: Database, migrations: Path, **host: Any) -> str:
    inventory = tmp_path / "inv.yml"
    lines = ["all:", "  hosts:", "    db:"]
    lines += [f"      {k}: {v}" for k, v in {"ansible_connection": "local", **host}.items()]
    inventory.write_text("\n".join(lines) + "\n")
    play = tmp_path / "info.yml"
    play.write_text(INFO)
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-vvv", "-i", str(inventory), str(play)]
    for key, value in hostvars(db, migrations)["db"].items():
        argv += ["-e", f"{key}={value}"]
    proc = subprocess.run(
        argv,
        env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg")),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_which_way_it_runs(tmp_path: Path, db: Database, migrations_dir: Path) -> None:
    here = _verbose_run(tmp_path, db, migrations_dir, ansible_python_interpreter=sys.executable)
    assert "migration_info: runs in this worker (direct)" in here
    assert "AnsiballZ_migration_info.py" not in here

    off = _verbose_run(
        tmp_path, db, migrations_dir, ansible_python_interpreter=sys.executable, tme_migrations_direct="false"
    )
    assert "runs as a shipped module (tme_migrations_direct is false)" in off
    assert "AnsiballZ_migration_info.py" in off

    # Another interpreter (here a wrapper of the same Python, as a different virtualenv would be):
    # the module must run in that interpreter, so it is shipped.
    wrapper = tmp_path / "python3"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    other = _verbose_run(tmp_path, db, migrations_dir, ansible_python_interpreter=str(wrapper))
    assert "not the Python running the playbook" in other and "AnsiballZ_migration_info.py" in other


def _diff(a: Any, b: Any, where: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k, "<missing>"), b.get(k, "<missing>"), f"{where}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _diff(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def test_delegated_and_templated(tmp_path: Path, db: Database, migrations_dir: Path) -> None:
    """Under delegate_to, the delegated host's interpreter decides (as for a shipped module), and a
    templated tme_migrations_direct is read as templated."""
    inventory = tmp_path / "inv.yml"
    inventory.write_text(
        "all:\n  hosts:\n"
        "    app:\n"  # a host never connected to: the task is delegated
        "      ansible_connection: ssh\n      ansible_host: 127.0.0.1\n      ansible_port: 1\n"
        "      ansible_python_interpreter: /nonexistent/python3\n"
        "    localhost:\n      ansible_connection: local\n"
        f"      ansible_python_interpreter: {sys.executable}\n"
    )
    play = tmp_path / "info.yml"
    play.write_text(
        INFO.replace("hosts: db", "hosts: app").replace(
            "      tme.migrations.migration_info:", "      delegate_to: localhost\n      tme.migrations.migration_info:"
        )
    )
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-vvv", "-i", str(inventory), str(play)]
    for key, value in hostvars(db, migrations_dir)["db"].items():
        argv += ["-e", f"{key}={value}"]
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))

    def ran(*extra: str) -> str:
        done = subprocess.run([*argv, *extra], env=env, capture_output=True, text=True, check=False, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    assert "migration_info: runs in this worker (direct)" in ran()
    templated = ("-e", "tme_migrations_direct={{ want }}")
    assert "runs as a shipped module (tme_migrations_direct is false)" in ran("-e", "want=false", *templated)
    assert "runs in this worker (direct)" in ran("-e", "want=true", *templated)
