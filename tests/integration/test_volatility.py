# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A column default calling a function of the application: offline its volatility is unknown (BREAKING);
with the database at hand the engine reads pg_proc.provolatile, so an apply-safe run (only_safe) applies
a stable one and holds a volatile one, naming why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ansible_collections.tme.migrations.plugins.module_utils._engine import Engine, Options
from ansible_collections.tme.migrations.plugins.plugin_utils import _files

from ..conftest import Database
from .test_modules import CONNECTION, hostvars

FUNCTIONS = """
CREATE FUNCTION stable_token() RETURNS text STABLE LANGUAGE sql AS $$ SELECT 'stable' $$;
CREATE FUNCTION volatile_token() RETURNS text VOLATILE LANGUAGE sql AS $$ SELECT md5(random()::text) $$;
CREATE SCHEMA app;
CREATE FUNCTION app.code() RETURNS text IMMUTABLE LANGUAGE sql AS $$ SELECT 'c' $$;
CREATE TABLE accounts (id int PRIMARY KEY);
INSERT INTO accounts SELECT generate_series(1, 100);
"""


def write(directory: Path, name: str, body: str, rollback: str = "SELECT 1;") -> None:
    directory.mkdir(parents=True, exist_ok=True)
    text = f"BEGIN;\n{body}\nCOMMIT;\n-- ROLLBACK\n" + "".join(f"-- {line}\n" for line in rollback.splitlines())
    (directory / name).write_text(text)


@pytest.fixture
def prepared(db: Database) -> Database:
    with db.connect() as conn:
        conn.execute(FUNCTIONS)
    return db


def relfilenode(db: Database) -> int:
    return int(db.scalar("SELECT relfilenode FROM pg_class WHERE oid = 'accounts'::regclass"))


def apply_safe(db: Database, directory: Path) -> Any:
    with Engine(db.kwargs, Options(only_safe=True)) as engine:
        return engine.apply(_files.load_directory(str(directory)))


def test_stable_default_is_applied_and_volatile_one_held(prepared: Database, tmp_path: Path) -> None:
    d = tmp_path / "m"
    write(d, "001_stable.sql", "ALTER TABLE accounts ADD COLUMN token text DEFAULT stable_token();")
    write(d, "002_qualified.sql", "ALTER TABLE accounts ADD COLUMN code text DEFAULT app.code();")
    write(d, "003_volatile.sql", "ALTER TABLE accounts ADD COLUMN salt text DEFAULT volatile_token();")
    offline = {m.version: m.classification for m in _files.load_directory(str(d))}
    assert offline == {"001_stable": "BREAKING", "002_qualified": "BREAKING", "003_volatile": "BREAKING"}
    before = relfilenode(prepared)

    report = apply_safe(prepared, d)

    assert [e["version"] for e in report.applied] == ["001_stable", "002_qualified"]
    assert [e["classification"] for e in report.applied] == ["SAFE", "SAFE"]
    assert any("stable_token() is stable in" in note for note in report.applied[0]["settled"])
    assert any("app.code() is immutable in" in note for note in report.applied[1]["settled"])
    assert relfilenode(prepared) == before  # no row was rewritten
    assert prepared.scalar("SELECT count(*) FROM accounts WHERE token = 'stable' AND code = 'c'") == 100
    [held] = report.waiting
    assert (held["version"], held["classification"], held["blocked_by"]) == ("003_volatile", "BREAKING", None)
    assert any("volatile_token() is volatile in pg_proc" in reason for reason in held["reasons"])
    assert prepared.versions() == ["001_stable", "002_qualified"]


def test_function_not_in_the_database_stays_held(prepared: Database, tmp_path: Path) -> None:
    d = tmp_path / "m"
    # 001 creates the function the next one's default calls: pg_proc does not have it yet when planning.
    write(d, "001_function.sql", "CREATE FUNCTION later_token() RETURNS text STABLE LANGUAGE sql AS $$ SELECT 'l' $$;")
    write(d, "002_later.sql", "ALTER TABLE accounts ADD COLUMN later text DEFAULT later_token();")
    write(d, "003_missing.sql", "ALTER TABLE accounts ADD COLUMN gone text DEFAULT nowhere_token();")

    report = apply_safe(prepared, d)

    assert [e["version"] for e in report.applied] == ["001_function"]
    assert [(w["version"], w["classification"]) for w in report.waiting] == [
        ("002_later", "BREAKING"),
        ("003_missing", "BREAKING"),
    ]
    assert any("cannot be told offline" in reason for reason in report.waiting[0]["reasons"])
    # Next run: the function is in pg_proc now, stable: the column is added, the unknown one still waits.
    report = apply_safe(prepared, d)
    assert [e["version"] for e in report.applied] == ["002_later"]
    [held] = report.waiting
    assert held["version"] == "003_missing" and "nowhere_token()" in " ".join(held["reasons"])


def test_a_function_the_migration_replaces_is_not_read_from_the_catalog(prepared: Database, tmp_path: Path) -> None:
    """stable_token() is stable in the database now, but the migration makes it volatile before using it."""
    d = tmp_path / "m"
    write(
        d,
        "001_replace.sql",
        "CREATE OR REPLACE FUNCTION stable_token() RETURNS text VOLATILE LANGUAGE sql AS $$ SELECT 'v' $$;\n"
        "ALTER TABLE accounts ADD COLUMN token text DEFAULT stable_token();",
    )
    report = apply_safe(prepared, d)
    assert report.applied == [] and [w["version"] for w in report.waiting] == ["001_replace"]


@pytest.mark.parametrize("same_file", [False, True], ids=["earlier-migration", "same-migration"])
def test_a_function_altered_before_the_default_is_not_read_from_the_catalog(
    prepared: Database, tmp_path: Path, same_file: bool
) -> None:
    """ALTER FUNCTION ... VOLATILE (earlier in the run, or in the same file) before the column's default:
    pg_proc still says stable, but the default will call a volatile function, so it stays held."""
    d = tmp_path / "m"
    alter = "ALTER FUNCTION stable_token() VOLATILE;"
    column = "ALTER TABLE accounts ADD COLUMN token text DEFAULT stable_token();"
    if same_file:
        write(d, "001_both.sql", f"{alter}\n{column}")
    else:
        write(d, "001_alter.sql", alter)
        write(d, "002_column.sql", column)
    report = apply_safe(prepared, d)
    held = [w["version"] for w in report.waiting]
    assert held == (["001_both"] if same_file else ["002_column"]), report.as_dict()
    assert "token" not in [c for (c,) in prepared.query("SELECT column_name FROM information_schema.columns")]


APPLY_SAFE = (
    """
- name: Apply safe
  hosts: db
  gather_facts: false
  tasks:
    - name: Apply the SAFE migrations
      tme.migrations.migration:
        path: "{{ migrations }}"
        only_safe: true
"""
    + CONNECTION
)


def test_apply_safe_module_settles_from_pg_proc(prepared: Database, tmp_path: Path, playbook: Any) -> None:
    """Through ansible-playbook: a check run first (the files are then cached, so the real run plans with
    the migrations sent without their statements, then sends those that run)."""
    d = tmp_path / "m"
    write(d, "001_stable.sql", "ALTER TABLE accounts ADD COLUMN token text DEFAULT stable_token();")
    write(d, "002_volatile.sql", "ALTER TABLE accounts ADD COLUMN salt text DEFAULT volatile_token();")
    write(d, "003_after.sql", "CREATE TABLE after_all (id int);")
    check = playbook(APPLY_SAFE, hostvars(prepared, d), check=True)
    planned = check.result("Apply the SAFE migrations")
    assert [e["version"] for e in planned["applied"]] == ["001_stable"], check.stdout
    assert prepared.versions() == []

    run = playbook(APPLY_SAFE, hostvars(prepared, d))
    result = run.result("Apply the SAFE migrations")
    assert not result["failed"], run.stdout
    assert [e["version"] for e in result["applied"]] == ["001_stable"]
    assert result["applied"][0]["settled"]
    waiting = {w["version"]: w for w in result["waiting"]}
    assert set(waiting) == {"002_volatile", "003_after"} and waiting["003_after"]["blocked_by"] == "002_volatile"
    assert any("volatile_token() is volatile in pg_proc" in r for r in waiting["002_volatile"]["reasons"])
    assert prepared.versions() == ["001_stable"]
