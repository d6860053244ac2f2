# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The modules through real ansible-playbook runs (ansible-runner), as the community collections
test theirs: check mode (changed, and the database verified untouched), real run, second run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..conftest import REPO, Database

# The connection options of every test task, from the host's variables (see hostvars()).
CONNECTION = """\
        login_host: "{{ h }}"
        login_port: "{{ p }}"
        login_user: "{{ u }}"
        login_password: "{{ pw }}"
        login_db: "{{ d }}"
"""

APPLY = (
    """
- name: Apply
  hosts: db
  gather_facts: false
  tasks:
    - name: Apply migrations
      tme.migrations.migration:
        path: "{{ migrations }}"
"""
    + CONNECTION
    + """\
        state: "{{ state | default('applied') }}"
        steps: "{{ steps | default(1) }}"
"""
)

INFO = (
    """
- name: Info
  hosts: db
  gather_facts: false
  tasks:
    - name: Read status
      tme.migrations.migration_info:
        path: "{{ migrations }}"
"""
    + CONNECTION
    + """\
        reference: "{{ reference | default(omit) }}"
"""
)


def hostvars(db: Database, migrations: Path, **extra: Any) -> dict[str, dict[str, Any]]:
    p = db.params
    return {
        "db": {
            "migrations": str(migrations),
            "h": p["login_host"],
            "p": p["login_port"],
            "u": p["login_user"],
            "pw": p["login_password"],
            "d": p["login_db"],
            **extra,
        }
    }


def test_apply_check_mode_then_real_then_idempotent(db: Database, migrations_dir: Path, playbook: Any) -> None:
    total = len(list(migrations_dir.glob("[0-9]*_*.sql"))) - len(list(migrations_dir.glob("*.rollback.sql")))
    check = playbook(APPLY, hostvars(db, migrations_dir), check=True, diff=True)
    assert check.rc == 0, check.stdout
    result = check.result("Apply migrations")
    assert result["changed"] is True and len(result["applied"]) == total
    assert "008_add_clients_email_index" in result["diff"]["after"] and result["diff"]["before"] == ""
    assert db.tables() == []  # checked independently: nothing written, not even the tracking table

    real = playbook(APPLY, hostvars(db, migrations_dir), diff=True)
    assert real.rc == 0, real.stdout
    result = real.result("Apply migrations")
    assert result["changed"] is True and result["tracking"] == "created"
    assert [a["version"] for a in result["applied"]] == db.versions()
    assert all(isinstance(a["execution_ms"], int) and a["statements"] for a in result["applied"])
    assert len(db.versions()) == total

    again = playbook(APPLY, hostvars(db, migrations_dir))
    assert again.rc == 0 and again.result("Apply migrations")["changed"] is False
    assert again.result("Apply migrations")["applied"] == []


def test_rollback_check_mode_then_real_then_idempotent(db: Database, migrations_dir: Path, playbook: Any) -> None:
    assert playbook(APPLY, hostvars(db, migrations_dir)).rc == 0
    before = db.versions()
    vars_ = hostvars(db, migrations_dir, state="rolled_back", steps=2)
    check = playbook(APPLY, vars_, check=True)
    result = check.result("Apply migrations")
    assert check.rc == 0 and result["changed"] is True
    assert [r["version"] for r in result["rolled_back"]] == before[-1:-3:-1]
    assert db.versions() == before

    real = playbook(APPLY, vars_)
    assert real.rc == 0 and real.result("Apply migrations")["changed"] is True
    assert db.versions() == before[:-2]
    assert "user_preferences" not in db.tables()

    vars_one = hostvars(db, migrations_dir, state="rolled_back")
    vars_one["db"]["version"] = before[-1]
    pb = APPLY.replace('steps: "{{ steps | default(1) }}"', 'version: "{{ version }}"')
    again = playbook(pb, vars_one)
    assert again.rc == 0 and again.result("Apply migrations")["changed"] is False

    # The files did not change (all parsed before): the apply plans without statements, then sends
    # the statements of the two it runs, and only those.
    reapplied = playbook(APPLY, hostvars(db, migrations_dir)).result("Apply migrations")
    assert [e["version"] for e in reapplied["applied"]] == before[-2:]
    assert all(e["statements"] for e in reapplied["applied"]) and db.versions() == before
    assert "user_preferences" in db.tables()


def test_failing_migration_message_names_file_line_and_postgres(
    db: Database, migrations_dir: Path, playbook: Any
) -> None:
    bad = migrations_dir / "016_broken.sql"
    bad.write_text(
        "BEGIN;\nALTER TABLE clients\n  ADD COLUMN x int REFERENCES nowhere(id);\nCOMMIT;\n-- ROLLBACK\n-- SELECT 1;\n"
    )
    run = playbook(APPLY, hostvars(db, migrations_dir))
    assert run.rc != 0
    result = run.result("Apply migrations")
    assert result["failed"] is True and result["changed"] is True
    assert (
        str(bad) in result["msg"] and "line 2" in result["msg"] and 'relation "nowhere" does not exist' in result["msg"]
    )
    assert "016_broken" not in db.versions() and "015_create_user_preferences" in db.versions()


def test_failure_after_committed_steps_says_so_and_is_changed(tmp_path: Path, db: Database, playbook: Any) -> None:
    """A migration run outside a transaction that fails at its third step: the first two are committed,
    the result says how many and reports changed, and the next run resumes after them."""
    d = tmp_path / "m"
    d.mkdir()
    (d / "001_t.sql").write_text("CREATE TABLE t (id int);\n-- ROLLBACK\n-- DROP TABLE t;\n")
    (d / "002_steps.sql").write_text(
        "INSERT INTO t VALUES (1);\nCREATE INDEX CONCURRENTLY t_id ON t (id);\nINSERT INTO nowhere VALUES (1);\n"
        "-- ROLLBACK\n-- DROP INDEX CONCURRENTLY t_id;\n"
    )
    assert playbook(APPLY, hostvars(db, d / "001_t.sql")).rc == 0
    run = playbook(APPLY, hostvars(db, d))
    result = run.result("Apply migrations")
    assert result["failed"] is True and result["changed"] is True
    assert "002_steps failed after 2 of 3 statements had committed" in result["msg"]
    assert "nothing of it committed" not in result["msg"]
    assert db.query("SELECT count(*) FROM t") == [(1,)]
    # The audit row says the same as the result, not "nothing of it committed".
    (audit,) = db.query("SELECT error FROM schema_migrations_audit WHERE version = '002_steps' AND outcome = 'failed'")
    assert "002_steps failed after 2 of 3 statements had committed" in audit[0], audit
    (d / "002_steps.sql").write_text(
        "INSERT INTO t VALUES (1);\nCREATE INDEX CONCURRENTLY t_id ON t (id);\nINSERT INTO t VALUES (2);\n"
        "-- ROLLBACK\n-- DROP INDEX CONCURRENTLY t_id;\n"
    )
    assert playbook(APPLY, hostvars(db, d)).rc == 0  # resumes after the two committed steps
    assert db.query("SELECT id FROM t ORDER BY id") == [(1,), (2,)]


def test_info_reports_pending_drift_missing_and_reference(
    db: Database, db2: Database, migrations_dir: Path, playbook: Any
) -> None:
    assert playbook(APPLY, hostvars(db, migrations_dir)).rc == 0
    # production: only the first five
    subset = migrations_dir.parent / "subset"
    subset.mkdir()
    for path in sorted(migrations_dir.iterdir()):
        if path.name < "006":
            (subset / path.name).write_text(path.read_text())
    assert playbook(APPLY, hostvars(db2, subset)).rc == 0
    edited = migrations_dir / "002_create_clients.sql"
    edited.write_text(edited.read_text().replace("phone VARCHAR(50)", "phone VARCHAR(60)"))
    p = db.params
    reference = {k: p[k] for k in ("login_host", "login_port", "login_user", "login_password", "login_db")}
    run = playbook(INFO, hostvars(db2, migrations_dir, reference=reference), check=True)
    assert run.rc == 0, run.stdout
    info = run.result("Read status")
    assert info["changed"] is False and info["tracking_table_exists"] is True
    assert info["drifted"] == ["002_create_clients"]
    assert info["pending"][0].startswith("006_") and len(info["applied"]) == 4
    assert info["reference"]["lacks"] == info["pending"]
    assert info["reference"]["promotable"] == info["pending"]
    (migrations_dir / "015_create_user_preferences.sql").unlink()
    info = playbook(INFO, hostvars(db, migrations_dir)).result("Read status")
    assert info["missing"] == ["015_create_user_preferences"]


def test_password_never_appears_in_output_or_artifacts(db: Database, migrations_dir: Path, playbook: Any) -> None:
    password = db.params["login_password"]
    ok = playbook(APPLY, hostvars(db, migrations_dir), diff=True)
    wrong = hostvars(db, migrations_dir)
    wrong["db"]["pw"] = password + "-wrong"
    failed = playbook(APPLY, wrong)
    assert ok.rc == 0 and failed.rc != 0
    assert "password authentication failed" in failed.result("Apply migrations")["msg"]
    for run in (ok, failed):
        assert password not in run.stdout
        for path in run.artifacts.rglob("*"):
            if path.is_file():
                assert password not in path.read_text(errors="replace"), path


def test_unreachable_database_is_a_clear_error(db: Database, migrations_dir: Path, playbook: Any) -> None:
    vars_ = hostvars(db, migrations_dir)
    vars_["db"]["p"] = 1  # nothing listens there
    run = playbook(APPLY, vars_)
    msg = run.result("Apply migrations")["msg"]
    assert run.rc != 0 and f"cannot connect to database {db.name} on 127.0.0.1:1" in msg


def test_killed_run_during_concurrent_index_is_reported_then_repaired(
    db: Database, tmp_path: Path, playbook: Any
) -> None:
    """ansible-playbook killed (SIGKILL) while CREATE INDEX CONCURRENTLY waits, its backend gone too."""
    db.query(
        "CREATE TABLE big (id int, v text); INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 20000) g"
    )
    d = tmp_path / "m"
    d.mkdir()
    (d / "001_idx.sql").write_text(
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_big_v ON big (v);\n"
        "-- ROLLBACK\n-- DROP INDEX CONCURRENTLY idx_big_v;\n"
    )
    old = db.connect(application_name="old-snapshot")
    old.autocommit = False
    old.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    old.execute("SELECT count(*) FROM big").fetchone()
    pb = tmp_path / "apply.yml"
    pb.write_text(APPLY)
    inventory = tmp_path / "inv.yml"
    inventory.write_text(
        "all:\n  hosts:\n    db:\n      ansible_connection: local\n"
        f"      ansible_python_interpreter: {sys.executable}\n"
    )
    extra = [f"{k}={v}" for k, v in hostvars(db, d)["db"].items()]
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory), str(pb)]
    for item in extra:
        argv += ["-e", item]
    proc = subprocess.Popen(
        argv,
        env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg")),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        with db.connect(admin=True) as admin:
            deadline = time.monotonic() + 60
            row = None
            while row is None and time.monotonic() < deadline:
                row = admin.execute(
                    "SELECT pid FROM pg_stat_activity WHERE query LIKE 'CREATE INDEX CONCURRENTLY%%'"
                    " AND wait_event_type = 'Lock'"
                ).fetchone()
                time.sleep(0.05)
            assert row is not None, "the index build never started"
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'tme.migrations'"
            )
    finally:
        old.rollback()
        old.close()
    time.sleep(0.5)  # the terminated backends end
    info = playbook(INFO, hostvars(db, d)).result("Read status")
    assert info["interrupted"] == ["001_idx"] and info["runner_active"] is False
    entry = info["migrations"][0]
    assert entry["progress"]["status"] == "running" and entry["progress"]["statements_done"] == 0
    assert db.scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = 'idx_big_v'::regclass") is False

    rerun = playbook(APPLY, hostvars(db, d))
    assert rerun.rc == 0, rerun.stdout
    assert rerun.result("Apply migrations")["applied"][0]["repaired"]
    assert db.scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = 'idx_big_v'::regclass") is True
    assert playbook(INFO, hostvars(db, d)).result("Read status")["applied"] == ["001_idx"]
