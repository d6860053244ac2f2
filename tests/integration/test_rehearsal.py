# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Rollback rehearsal on a real server: correct rollbacks pass, wrong ones are named precisely,
the source database is never touched and scratch databases never outlive the run."""

from __future__ import annotations

from pathlib import Path

from ansible_collections.tme.migrations.plugins.module_utils._engine import Engine, Options
from ansible_collections.tme.migrations.plugins.module_utils._pgtools import PgTools
from ansible_collections.tme.migrations.plugins.module_utils._rehearsal import rehearse
from ansible_collections.tme.migrations.plugins.module_utils._schema import snapshot
from ansible_collections.tme.migrations.plugins.plugin_utils._files import load_directory

from ..conftest import Database, run_playbook
from .test_modules import CONNECTION, hostvars


def tools_of(db: Database) -> PgTools:
    """The source's client programs, as the module builds them from its connection options."""
    return PgTools.from_params({**db.params, "pg_bin_dir": str(db.server.bindir)})


def scratch_databases(db: Database) -> list[str]:
    return [r[0] for r in db.query("SELECT datname FROM pg_database WHERE datname LIKE 'tme_rehearsal%'")]


def write(directory: Path, name: str, forward: str, rollback: str) -> None:
    (directory / f"{name}.sql").write_text(forward)
    (directory / f"{name}.rollback.sql").write_text(rollback)


def apply_first(db: Database, directory: Path, count: int) -> None:
    migrations = load_directory(str(directory))
    with Engine(db.kwargs, Options()) as engine:
        for m in migrations[:count]:
            engine.apply(migrations, m.version)


def test_examples_whole_history_passes(db: Database, migrations_dir: Path) -> None:
    migrations = load_directory(str(migrations_dir))
    name, outcomes = rehearse(db.kwargs, migrations)
    assert [o.version for o in outcomes if not o.passed] == [], [o.error for o in outcomes]
    assert len(outcomes) == 15
    assert name.startswith("tme_rehearsal_")
    assert scratch_databases(db) == []


def test_pending_on_a_copy_of_the_schema_and_source_untouched(db: Database, migrations_dir: Path) -> None:
    apply_first(db, migrations_dir, 10)
    before = (snapshot(db.connect()), db.versions())
    migrations = load_directory(str(migrations_dir))
    pending = migrations[10:]
    _name, outcomes = rehearse(db.kwargs, pending, tools_of(db))
    assert [(o.version, o.passed) for o in outcomes] == [(m.version, True) for m in pending]
    assert (snapshot(db.connect()), db.versions()) == before
    assert scratch_databases(db) == []


def test_rollback_that_forgets_an_index(db: Database, tmp_path: Path) -> None:
    write(tmp_path, "001_t", "CREATE TABLE t (id int, due date);", "DROP TABLE t;")
    write(
        tmp_path,
        "002_idx",
        "CREATE INDEX idx_t_due ON t (due);\nALTER TABLE t ADD COLUMN note text;",
        "ALTER TABLE t DROP COLUMN note;",
    )
    _name, outcomes = rehearse(db.kwargs, load_directory(str(tmp_path)))
    assert [o.passed for o in outcomes] == [True, False]
    bad = outcomes[1]
    assert bad.step == "compare"
    assert [d["object"] for d in bad.differences] == ["index public.idx_t_due"]
    assert "index public.idx_t_due is left over after the rollback" in str(bad.error)
    assert scratch_databases(db) == []


def test_rollback_that_restores_a_column_with_the_wrong_type(db: Database, tmp_path: Path) -> None:
    write(tmp_path, "001_t", "CREATE TABLE t (id int, amount numeric(10,2) NOT NULL DEFAULT 0);", "DROP TABLE t;")
    write(
        tmp_path,
        "002_drop_amount",
        "ALTER TABLE t DROP COLUMN amount;",
        "ALTER TABLE t ADD COLUMN amount integer NOT NULL DEFAULT 0;",
    )
    _name, outcomes = rehearse(db.kwargs, load_directory(str(tmp_path)))
    bad = outcomes[1]
    assert not bad.passed
    (difference,) = bad.differences
    assert difference["object"] == "column public.t.amount"
    assert difference["expected"] == "type numeric(10,2), NOT NULL, default 0"
    assert difference["found"] == "type integer, NOT NULL, default 0"


def test_rollback_that_fails_names_file_and_line_and_later_ones_still_run(db: Database, tmp_path: Path) -> None:
    write(tmp_path, "001_t", "CREATE TABLE t (id int);", "DROP TABLE t;")
    write(tmp_path, "002_c", "ALTER TABLE t ADD COLUMN c int;", "\n\nALTER TABLE t DROP COLUMN nope;")
    write(tmp_path, "003_d", "ALTER TABLE t ADD COLUMN d int;", "ALTER TABLE t DROP COLUMN d;")
    _name, outcomes = rehearse(db.kwargs, load_directory(str(tmp_path)))
    assert [(o.version, o.passed) for o in outcomes] == [("001_t", True), ("002_c", False), ("003_d", True)]
    assert outcomes[1].step == "rollback"
    assert "002_c.rollback.sql line 3" in str(outcomes[1].error)
    assert 'column "nope"' in str(outcomes[1].error)


def test_forward_failure_stops_and_scratch_is_dropped(db: Database, tmp_path: Path) -> None:
    write(tmp_path, "001_t", "CREATE TABLE t (id int);\nINSERT INTO nope VALUES (1);", "DROP TABLE t;")
    write(tmp_path, "002_c", "ALTER TABLE t ADD COLUMN c int;", "ALTER TABLE t DROP COLUMN c;")
    _name, outcomes = rehearse(db.kwargs, load_directory(str(tmp_path)))
    assert [(o.version, o.passed, o.step) for o in outcomes] == [("001_t", False, "forward")]
    assert scratch_databases(db) == []


REHEARSE = (
    """
- name: Rehearse
  hosts: db
  gather_facts: false
  tasks:
    - name: Rehearse pending migrations
      tme.migrations.migration_rehearsal:
        path: "{{ migrations }}"
        pg_bin_dir: "{{ bindir }}"
"""
    + CONNECTION
)


def test_module_through_ansible_runner(db: Database, tmp_path: Path) -> None:
    directory = tmp_path / "m"
    directory.mkdir()
    write(directory, "001_t", "CREATE TABLE t (id int);", "DROP TABLE t;")
    apply_first(db, directory, 1)
    write(directory, "002_idx", "CREATE INDEX idx_t_id ON t (id);", "SELECT 1;")
    run = run_playbook(tmp_path, REHEARSE, hostvars(db, directory, bindir=str(db.server.bindir)))
    result = run.result("Rehearse pending migrations")
    assert run.rc != 0 and result["failed"]
    assert result["failed_versions"] == ["002_idx"]
    assert "rollback rehearsal failed for 002_idx (compare)" in result["msg"]
    assert "index public.idx_t_id is left over" in result["msg"]
    assert result["changed"] is False
    assert db.versions() == ["001_t"] and scratch_databases(db) == []
    (directory / "002_idx.rollback.sql").write_text("DROP INDEX idx_t_id;")
    run = run_playbook(tmp_path, REHEARSE, hostvars(db, directory, bindir=str(db.server.bindir)))
    result = run.result("Rehearse pending migrations")
    assert run.rc == 0, result.get("msg")
    assert result["passed_versions"] == ["002_idx"]
    assert db.kwargs["password"] not in run.stdout
