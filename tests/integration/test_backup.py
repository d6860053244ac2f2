# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""tme.migrations.backup and restore on a real server: never beside a running pg_dump, check mode
writes nothing, and a restore that fails half way leaves the database exactly as it was."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.tme.migrations.plugins.module_utils._backup import BackupError, make_backup
from ansible_collections.tme.migrations.plugins.module_utils._pgtools import PgTools, ToolError
from ansible_collections.tme.migrations.plugins.module_utils._restore import restore

from ..conftest import Database
from .test_modules import CONNECTION

PLAY = (
    """
- name: Backup
  hosts: db
  gather_facts: false
  tasks:
    - name: Back up
      tme.migrations.backup:
"""
    + CONNECTION
    + """\
        pg_bin_dir: "{{ bindir }}"
        dest: "{{ dest }}"
      register: made

    - name: Restore
      tme.migrations.restore:
"""
    + CONNECTION
    + """\
        pg_bin_dir: "{{ bindir }}"
        src: "{{ made.path if not ansible_check_mode else existing }}"
"""
)


def tools(db: Database) -> PgTools:
    kw = db.kwargs
    return PgTools(kw["dbname"], kw["user"], kw["password"], kw["host"], kw["port"], str(db.server.bindir))


def test_never_beside_a_running_pg_dump(db: Database, tmp_path: Path) -> None:
    with db.connect(application_name="pg_dump") as other:  # a cron backup-daily.sh, say
        other.execute("SELECT 1")
        with pytest.raises(BackupError, match="another pg_dump is still running after 1s"):
            make_backup(tools(db), str(tmp_path), "db", wait_timeout=1)
    assert list(tmp_path.glob("*.sql.gz*")) == []
    made = make_backup(tools(db), str(tmp_path), "db", wait_timeout=5)
    assert Path(made.path).exists() and made.waited_s < 5


def test_check_mode_writes_nothing_then_real_run(db: Database, tmp_path: Path, playbook: Any) -> None:
    db.query("CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2)")
    existing = make_backup(tools(db), str(tmp_path / "seed"), "db").path
    p = db.params
    hostvars = {
        "db": {
            "h": p["login_host"],
            "p": p["login_port"],
            "u": p["login_user"],
            "pw": p["login_password"],
            "d": p["login_db"],
            "bindir": str(db.server.bindir),
            "dest": str(tmp_path / "backups"),
            "existing": existing,
        }
    }
    db.query("INSERT INTO t VALUES (3)")
    check = playbook(PLAY, hostvars, check=True)
    assert check.rc == 0, check.stdout
    assert check.result("Back up")["changed"] is True and not (tmp_path / "backups").exists()
    assert check.result("Restore")["changed"] is True and "closing line present" in check.result("Restore")["verified"]
    assert db.scalar("SELECT count(*) FROM t") == 3  # untouched
    assert p["login_password"] not in check.stdout

    real = playbook(PLAY, hostvars)
    assert real.rc == 0, real.stdout
    assert Path(real.result("Back up")["path"]).exists()
    assert db.scalar("SELECT count(*) FROM t") == 3  # restored from the backup just taken


def test_a_restore_that_fails_half_way_changes_nothing(db: Database, tmp_path: Path) -> None:
    db.query("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2)")
    made = make_backup(tools(db), str(tmp_path), "db").path
    db.query("INSERT INTO t VALUES (3); CREATE TABLE later (x int)")
    text = gzip.decompress(Path(made).read_bytes()).decode()
    broken = text.replace("COPY public.t (id) FROM stdin;\n1\n2\n", "COPY public.t (id) FROM stdin;\n1\n1\n")
    assert broken != text
    bad = tmp_path / "duplicate_key.sql.gz"
    bad.write_bytes(gzip.compress(broken.encode()))
    with pytest.raises(ToolError, match="rolled back") as info:
        restore(tools(db), str(bad))
    assert "is duplicated" in str(info.value) and db.kwargs["password"] not in str(info.value)
    assert db.scalar("SELECT count(*) FROM t") == 3 and "later" in db.tables()  # exactly as it was


def test_custom_format_verified_and_restored(db: Database, tmp_path: Path) -> None:
    db.query("CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2)")
    made = make_backup(tools(db), str(tmp_path), "db", fmt="custom")
    assert made.path.endswith(".dump") and made.verified.startswith("pg_restore --list read")
    db.query("DELETE FROM t")
    assert restore(tools(db), made.path).format == "custom"
    assert db.scalar("SELECT count(*) FROM t") == 2
    damaged = tmp_path / "damaged.dump"
    damaged.write_bytes(Path(made.path).read_bytes()[:300])
    with pytest.raises(BackupError, match="pg_restore --list cannot read it"):
        restore(tools(db), str(damaged), min_size=16)
    assert db.scalar("SELECT count(*) FROM t") == 2
