# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The guide's own names through real ansible-playbook runs on a real PostgreSQL: two files of one
day (Step 1's ``$(date +%Y%m%d)_name.sql``) apply in name order, a rollback saved separately under
another name is refused before anything runs, and new-migration.yml refuses what would break the
header it writes."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from ansible_collections.tme.migrations.plugins.plugin_utils import _files

from ..conftest import REPO, Database
from .test_modules import APPLY, hostvars

NEW_MIGRATION = REPO / "playbooks" / "new-migration.yml"

LINT = """
- name: Lint
  hosts: db
  gather_facts: false
  tasks:
    - name: Lint migrations
      tme.migrations.migration_lint:
        path: "{{ migrations }}"
"""


def guide_file(version: str, description: str, forward: str, rollback: str) -> str:
    """A migration in the guide's template, its rollback in the commented block after the banner."""
    return f"""-- Migration: {version}.sql
-- Date: 2025-09-15
-- Author: TME Portal team
-- Type: SAFE - Can deploy before code? YES
-- Description: {description}

-- ============================================
-- SAFETY CHECK
-- ============================================
-- Safe to run before code deploy: YES
-- Rollback included: YES
-- Tested on: tme_portal_test
-- ============================================

BEGIN;

-- Forward Migration
{forward}

-- Migration tracking
INSERT INTO schema_migrations (version, description)
VALUES ('{version}', '{description}')
ON CONFLICT (version) DO NOTHING;

COMMIT;

-- ============================================
-- ROLLBACK (Save this separately)
-- ============================================
-- BEGIN;
-- {rollback}
-- DELETE FROM schema_migrations WHERE version = '{version}';
-- COMMIT;
"""  # noqa: S608 - a test's migration file from constants, not a query


def one_day(directory: Path) -> None:
    """Two files of 2025-09-15; the second needs the first (the table it indexes)."""
    directory.mkdir()
    (directory / "20250915_index_reports.sql").write_text(
        guide_file(
            "20250915_index_reports",
            "Index reports by day",
            "CREATE INDEX IF NOT EXISTS idx_reports_day ON reports (day);",
            "DROP INDEX IF EXISTS idx_reports_day;",
        )
    )
    (directory / "20250915_create_reports.sql").write_text(
        guide_file(
            "20250915_create_reports",
            "Reports table",
            "CREATE TABLE IF NOT EXISTS reports (id SERIAL PRIMARY KEY, day DATE NOT NULL);",
            "DROP TABLE IF EXISTS reports;",
        )
    )


def audit(db: Database) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in db.query("SELECT version, action FROM schema_migrations_audit ORDER BY id")]


def test_two_files_of_one_day_apply_in_name_order(tmp_path: Path, db: Database, playbook: Any) -> None:
    migrations = tmp_path / "migrations"
    one_day(migrations)

    lint = playbook(LINT, hostvars(db, migrations))
    assert lint.rc == 0, lint.stdout
    lines = lint.result("Lint migrations")["summary_lines"]
    assert any("[same-number] shares its number with 20250915_index_reports" in line for line in lines), lines

    run = playbook(APPLY, hostvars(db, migrations))
    assert run.rc == 0, run.stdout
    assert [a["version"] for a in run.result("Apply migrations")["applied"]] == [
        "20250915_create_reports",
        "20250915_index_reports",
    ]
    assert audit(db) == [("20250915_create_reports", "apply"), ("20250915_index_reports", "apply")]
    assert db.versions() == ["20250915_create_reports", "20250915_index_reports"]
    assert db.scalar("SELECT count(*) FROM pg_indexes WHERE indexname = 'idx_reports_day'") == 1

    back = playbook(APPLY, hostvars(db, migrations, state="rolled_back", steps=2))
    assert back.rc == 0, back.stdout
    assert audit(db)[2:] == [("20250915_index_reports", "rollback"), ("20250915_create_reports", "rollback")]
    assert db.versions() == [] and "reports" not in db.tables()


def test_a_rollback_saved_under_another_name_is_refused_before_anything_runs(
    tmp_path: Path, db: Database, playbook: Any
) -> None:
    migrations = tmp_path / "migrations"
    one_day(migrations)
    (migrations / "20250915_create_reports_rollback.sql").write_text("DROP TABLE IF EXISTS reports;\n")
    run = playbook(APPLY, hostvars(db, migrations))
    assert run.rc != 0
    msg = run.result("Apply migrations")["msg"]
    assert "20250915_create_reports_rollback.sql" in msg, msg
    assert "the tool reads it only as 20250915_create_reports.rollback.sql (or .down.sql): rename it" in msg
    assert db.tables() == []  # nothing applied, not even the tracking table


def new_migration(playbook: Any, directory: Path, **extra: Any) -> Any:
    return playbook(NEW_MIGRATION, {}, extravars={"tme_migrations_dir": str(directory), **extra})


def test_new_migration_refuses_line_breaks_and_writes_a_readable_file(tmp_path: Path, playbook: Any) -> None:
    directory = tmp_path / "migrations"
    directory.mkdir()
    refused = [
        ({"name": "add_feature_x\n"}, "no line break"),
        ({"name": "add_feature_x", "description": "Feature X\nDROP TABLE users;"}, "without line breaks"),
        ({"name": "add_feature_x", "description": "Feature\tX"}, "control characters"),
        ({"name": "add_feature_x", "author": "ops\nDROP TABLE users;"}, "without line breaks"),
    ]
    for extra, message in refused:
        run = new_migration(playbook, directory, **extra)
        assert run.rc != 0, extra
        assert message in run.stdout, run.stdout[-2000:]
        assert list(directory.iterdir()) == [], extra

    made = new_migration(playbook, directory, name="add_feature_x", description="Feature X's flag", author="Ann")
    assert made.rc == 0, made.stdout[-2000:]
    (migration,) = _files.load_directory(str(directory))
    assert (migration.version, migration.description, migration.declared_type) == (
        "001_add_feature_x",
        "Feature X's flag",
        "SAFE",
    )
    text = (directory / "001_add_feature_x.sql").read_text()
    assert "-- Author: Ann\n" in text and "VALUES ('001_add_feature_x', 'Feature X''s flag')" in text


def test_new_migration_numbered_by_date_twice_in_one_day(tmp_path: Path, playbook: Any) -> None:
    directory = tmp_path / "migrations"
    directory.mkdir()
    day = date.today().strftime("%Y%m%d")
    for name in ("add_a", "add_b"):
        run = new_migration(playbook, directory, name=name, numbering="date")
        assert run.rc == 0, run.stdout[-2000:]
    assert sorted(p.name for p in directory.iterdir()) == [f"{day}_add_a.sql", f"{day}_add_b.sql"]
    assert [m.version for m in _files.load_directory(str(directory))] == [f"{day}_add_a", f"{day}_add_b"]
    late = new_migration(playbook, directory, name="add_0", numbering="date")
    assert late.rc != 0 and "run in name order" in late.stdout
    assert len(list(directory.iterdir())) == 2
