# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure logic: reading migration files (no database)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.tme.migrations.plugins.module_utils._model import Migration, MigrationError
from ansible_collections.tme.migrations.plugins.module_utils._versions import parse_version, sort_key
from ansible_collections.tme.migrations.plugins.plugin_utils import _files

# The guide's template, word for word (Migration Workflow Guide, "Migration Template").
GUIDE_TEMPLATE = """-- Migration: 016_add_feature_x.sql
-- Date: 2025-09-15
-- Author: Your Name
-- Type: [SAFE|BREAKING] - Can deploy before code?
-- Description: Add support for feature X

-- ============================================
-- SAFETY CHECK
-- ============================================
-- Safe to run before code deploy: YES/NO
-- Rollback included: YES
-- Tested on: tme_portal_test
-- ============================================

BEGIN;

-- Forward Migration
ALTER TABLE users ADD COLUMN IF NOT EXISTS feature_x BOOLEAN DEFAULT false;
CREATE INDEX IF NOT EXISTS idx_users_feature_x ON users(feature_x);

-- Migration tracking
INSERT INTO schema_migrations (version, description)
VALUES ('016_add_feature_x', 'Add support for feature X')
ON CONFLICT (version) DO NOTHING;

COMMIT;

-- ============================================
-- ROLLBACK (Save this separately)
-- ============================================
-- BEGIN;
-- ALTER TABLE users DROP COLUMN IF EXISTS feature_x;
-- DELETE FROM schema_migrations WHERE version = '016_add_feature_x';
-- COMMIT;
""".replace("(version, description)\nVALUES", "(version, description) \nVALUES")  # the guide's trailing blank


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_guide_template_is_read_as_written(tmp_path: Path) -> None:
    path = write(tmp_path, "016_add_feature_x.sql", GUIDE_TEMPLATE)
    (m,) = _files.load_path(str(path))
    assert m.version == "016_add_feature_x"
    assert m.description == "Add support for feature X"
    assert m.declared_type is None  # the template's "[SAFE|BREAKING]" declares nothing
    assert [s.sql.split()[0] for s in m.forward.statements] == ["ALTER", "CREATE", "INSERT"]
    assert [s.line for s in m.forward.statements] == [18, 19, 22]
    assert m.forward.statements[2].tracking and not m.forward.statements[0].tracking
    assert m.transactional
    assert m.rollback is not None
    assert [s.sql.split()[0] for s in m.rollback.statements] == ["ALTER", "DELETE"]
    assert m.rollback.statements[0].line == 32  # the line of the commented statement in the file


def test_declared_type_and_headers(tmp_path: Path) -> None:
    text = GUIDE_TEMPLATE.replace("[SAFE|BREAKING]", "BREAKING")
    (m,) = _files.load_path(str(write(tmp_path, "016_add_feature_x.sql", text)))
    assert m.declared_type == "BREAKING"
    assert m.headers["author"] == "Your Name"
    assert _files.declared_type({"type": "SAFE - Can deploy before code? YES"}) == "SAFE"


def test_separate_rollback_file_wins_and_banner_not_needed(tmp_path: Path) -> None:
    write(tmp_path, "001_a.sql", "CREATE TABLE a (id int);\n")
    write(tmp_path, "001_a.rollback.sql", "BEGIN;\nDROP TABLE a;\nCOMMIT;\n")
    (m,) = _files.load_directory(str(tmp_path))
    assert m.rollback is not None and m.rollback.path.endswith("001_a.rollback.sql")
    assert [s.sql for s in m.rollback.statements] == ["DROP TABLE a"]


def test_missing_rollback_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "001_a.sql", "CREATE TABLE a (id int);\n")
    with pytest.raises(MigrationError, match=r"001_a\.sql: no rollback SQL"):
        _files.load_directory(str(tmp_path))
    (m,) = _files.load_path(str(path), require_rollback=False)
    assert m.rollback is None


def test_empty_rollback_file_is_a_deliberate_noop(tmp_path: Path) -> None:
    write(tmp_path, "001_a.up.sql", "UPDATE t SET x = 1;\n")
    write(tmp_path, "001_a.down.sql", "-- nothing to undo\n")
    (m,) = _files.load_directory(str(tmp_path))
    assert m.rollback is not None and m.rollback.statements == ()


def test_uncommented_sql_after_banner_is_refused(tmp_path: Path) -> None:
    text = "CREATE TABLE a (id int);\n-- ROLLBACK\nDROP TABLE a;\n"
    with pytest.raises(MigrationError, match=r"001_a\.sql line 3: SQL after the ROLLBACK banner"):
        _files.load_path(str(write(tmp_path, "001_a.sql", text)))


def test_banner_inside_a_string_is_not_a_banner(tmp_path: Path) -> None:
    text = "INSERT INTO notes VALUES ('\n-- ROLLBACK\n');\n-- ROLLBACK\n-- DELETE FROM notes;\n"
    (m,) = _files.load_path(str(write(tmp_path, "001_a.sql", text)))
    assert len(m.forward.statements) == 1 and "-- ROLLBACK" in m.forward.statements[0].sql
    assert m.rollback is not None and m.rollback.statements[0].sql == "DELETE FROM notes"


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    text = "-- c\nCREATE TABLE a (id int);\n\nALTER TABLE a ADD COLUM b int;\n-- ROLLBACK\n-- DROP TABLE a;\n"
    with pytest.raises(MigrationError, match=r"001_a\.sql line 4: syntax error"):
        _files.load_path(str(write(tmp_path, "001_a.sql", text)))


def test_broken_rollback_is_kept_as_an_error_not_raised(tmp_path: Path) -> None:
    write(tmp_path, "001_a.up.sql", "CREATE TABLE a (id int);\n")
    write(tmp_path, "001_a.down.sql", "DROP TABLE a\nDROP TABLE b;\n")
    (m,) = _files.load_directory(str(tmp_path))
    assert m.rollback_error is not None and "001_a.down.sql line 2: syntax error" in m.rollback_error


def test_rollback_statement_in_forward_is_refused(tmp_path: Path) -> None:
    text = "BEGIN;\nCREATE TABLE a (id int);\nROLLBACK;\n-- ROLLBACK\n-- DROP TABLE a;\n"
    with pytest.raises(MigrationError, match=r"line 3: ROLLBACK is not allowed"):
        _files.load_path(str(write(tmp_path, "001_a.sql", text)))


@pytest.mark.parametrize(
    ("sql", "transactional"),
    [
        ("CREATE INDEX CONCURRENTLY i ON t (a)", False),
        ("CREATE INDEX i ON t (a)", True),
        ("DROP INDEX CONCURRENTLY IF EXISTS i", False),
        ("REINDEX INDEX CONCURRENTLY i", False),
        ("REINDEX INDEX i", True),
        ("VACUUM t", False),
        ("ANALYZE t", True),
        ("ALTER TABLE p DETACH PARTITION c CONCURRENTLY", False),
        ("ALTER TYPE e ADD VALUE 'x'", True),
        ("CLUSTER", False),
        ("CLUSTER t USING i", True),
        ("ALTER SYSTEM SET work_mem = '8MB'", False),
    ],
)
def test_statements_that_cannot_run_in_a_transaction(tmp_path: Path, sql: str, transactional: bool) -> None:
    script = _files.parse_script(sql + ";\n", "x.sql")
    assert script.statements[0].transactional is transactional


def test_concurrent_index_records_name_and_schema() -> None:
    script = _files.parse_script('CREATE INDEX CONCURRENTLY "Idx" ON app.t (a);', "x.sql")
    statement = script.statements[0]
    assert (statement.index, statement.schema, statement.relations) == ("Idx", "app", ("app.t",))


def test_comments_and_quoted_identifiers_do_not_split_statements() -> None:
    text = """/* ; */ CREATE TABLE "we;ird" (a text DEFAULT ';');
CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$; -- ; COMMIT;
"""
    script = _files.parse_script(text, "x.sql")
    assert len(script.statements) == 2
    assert script.statements[1].sql.endswith("END $$")


def test_checksum_ignores_line_endings_and_trailing_blanks() -> None:
    base = "CREATE TABLE a (id int);\nSELECT 1;\n"
    assert _files.checksum(base) == _files.checksum(base.replace("\n", "\r\n"))
    assert _files.checksum(base) == _files.checksum("CREATE TABLE a (id int);   \nSELECT 1;\t\n\n\n")
    assert _files.checksum(base) != _files.checksum(base.replace("id int", "id bigint"))


def test_checksum_covers_forward_sql_not_the_rollback_block(tmp_path: Path) -> None:
    (a,) = _files.load_path(str(write(tmp_path / "a", "016_add_feature_x.sql", GUIDE_TEMPLATE)))
    edited = GUIDE_TEMPLATE.replace("-- COMMIT;\n", "-- COMMIT;\n-- (rollback tested 2025-09-16)\n")
    (b,) = _files.load_path(str(write(tmp_path / "b", "016_add_feature_x.sql", edited)))
    assert a.checksum == b.checksum


def test_checksum_is_the_statements_not_the_comments(tmp_path: Path) -> None:
    (a,) = _files.load_path(str(write(tmp_path / "a", "016_add_feature_x.sql", GUIDE_TEMPLATE)))
    header = GUIDE_TEMPLATE.replace("-- Tested on: tme_portal_test", "-- Tested on: tme_portal_test (again)")
    spaced = GUIDE_TEMPLATE.replace("ADD COLUMN IF NOT EXISTS", "ADD COLUMN  IF NOT EXISTS\n   ")
    statement = GUIDE_TEMPLATE.replace("DEFAULT false", "DEFAULT true")
    literal = GUIDE_TEMPLATE.replace("'Add support for feature X'", "'Add support for  feature X'")
    (b,) = _files.load_path(str(write(tmp_path / "b", "016_add_feature_x.sql", header)))
    (c,) = _files.load_path(str(write(tmp_path / "c", "016_add_feature_x.sql", spaced)))
    (d,) = _files.load_path(str(write(tmp_path / "d", "016_add_feature_x.sql", statement)))
    (e,) = _files.load_path(str(write(tmp_path / "e", "016_add_feature_x.sql", literal)))
    assert a.checksum == b.checksum == c.checksum
    assert len({a.checksum, d.checksum, e.checksum}) == 3
    # A checksum of the earlier scheme, recorded before the upgrade, still identifies the file.
    assert a.legacy_checksum != a.checksum and a.matches(a.legacy_checksum) and a.matches(a.checksum)
    assert not b.matches(a.legacy_checksum) and not d.matches(a.checksum) and not a.matches(None)


def test_directory_order_duplicates_and_stray_files(tmp_path: Path) -> None:
    for name in ("010_c.sql", "002_b.sql", "20250915_d.sql", "001_a.sql"):
        write(tmp_path, name, "SELECT 1;\n-- ROLLBACK\n-- SELECT 2;\n")
    write(tmp_path, "PENDING_MIGRATIONS.md", "# Pending\n")
    versions = [m.version for m in _files.load_directory(str(tmp_path))]
    assert versions == ["001_a", "002_b", "010_c", "20250915_d"]
    # The guide's date names: two files of one day share a number and run in name order.
    write(tmp_path, "20250915_c.sql", "SELECT 1;\n-- ROLLBACK\n-- SELECT 2;\n")
    versions = [m.version for m in _files.load_directory(str(tmp_path))]
    assert versions == ["001_a", "002_b", "010_c", "20250915_c", "20250915_d"]
    (tmp_path / "20250915_c.sql").unlink()
    write(tmp_path, "002_other.sql", "SELECT 1;\n-- ROLLBACK\n-- SELECT 2;\n")  # a sequence number is not
    with pytest.raises(MigrationError, match="duplicate version number 2"):
        _files.load_directory(str(tmp_path))
    (tmp_path / "002_other.sql").unlink()
    write(tmp_path, "002_b.up.sql", "SELECT 1;\n")  # one version twice stays an error
    with pytest.raises(MigrationError, match="duplicate version 002_b"):
        _files.load_directory(str(tmp_path))
    (tmp_path / "002_b.up.sql").unlink()
    write(tmp_path, "seed.sql", "SELECT 1;\n")
    with pytest.raises(MigrationError, match=r"seed\.sql: not a migration name"):
        _files.load_directory(str(tmp_path))


def test_diesel_layout_with_metadata(tmp_path: Path) -> None:
    write(tmp_path, "0001_create/up.sql", "CREATE TABLE a (id int);")
    write(tmp_path, "0001_create/down.sql", "DROP TABLE a;")
    write(tmp_path, "0002_index/up.sql", "CREATE INDEX CONCURRENTLY i ON a (id);")
    write(tmp_path, "0002_index/down.sql", "DROP INDEX CONCURRENTLY i;")
    write(tmp_path, "0002_index/metadata.toml", "run_in_transaction = false\n")
    first, second = _files.load_directory(str(tmp_path))
    assert (first.version, first.transactional, second.transactional) == ("0001_create", True, False)


def test_versions() -> None:
    assert parse_version("016_add_feature_x") == (16, "add_feature_x")
    assert parse_version("2019-01-01-000000_x") == (20190101000000, "x")
    assert parse_version("seed") is None
    assert sorted(["10_b", "9_a", "0100_c"], key=sort_key) == ["9_a", "10_b", "0100_c"]


def test_round_trip_through_module_arguments(tmp_path: Path) -> None:
    (m,) = _files.load_path(str(write(tmp_path, "016_add_feature_x.sql", GUIDE_TEMPLATE)))
    assert Migration.from_dict(m.to_dict()) == m


def test_example_migrations_all_read() -> None:
    examples = Path(__file__).resolve().parents[2] / "examples" / "migrations"
    migrations = _files.load_directory(str(examples))
    assert len(migrations) >= 15
    assert {m.declared_type for m in migrations} == {"SAFE", "BREAKING"}
    assert any(not m.transactional for m in migrations)
    assert all(m.rollback is not None and not m.rollback_error for m in migrations)
