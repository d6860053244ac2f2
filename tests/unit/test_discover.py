# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure logic: the guide's own names. Date-numbered files of one day, and rollbacks saved
separately under names the tool does not read (no database)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.tme.migrations.plugins.module_utils._model import MigrationError
from ansible_collections.tme.migrations.plugins.plugin_utils import _files
from ansible_collections.tme.migrations.plugins.plugin_utils._discover import (
    discover,
    discover_path,
    same_number_notes,
)
from ansible_collections.tme.migrations.plugins.plugin_utils._lint import lint_path, render
from ansible_collections.tme.migrations.plugins.plugin_utils._window import next_version

FORWARD = "BEGIN;\nCREATE TABLE IF NOT EXISTS {table} (id int);\nCOMMIT;\n-- ROLLBACK\n-- DROP TABLE {table};\n"
ROLLBACK = "DROP TABLE IF EXISTS feature_x;\n"
EXPECTED = "the tool reads it only as 016_add_feature_x.rollback.sql (or .down.sql): rename it"


def write(directory: Path, name: str, text: str | None = None) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text is not None else FORWARD.format(table=name.split(".")[0].lstrip("0123456789_")))
    return path


def versions(directory: Path) -> list[str]:
    return [s.version for s in discover(str(directory))]


# -- files sharing a number -------------------------------------------------------------------------
def test_files_of_one_day_run_in_name_order(tmp_path: Path) -> None:
    for name in ("20250915_add_b.sql", "20250916_add_c.sql", "20250915_add_a.sql", "20250914_add_z.sql"):
        write(tmp_path, name)
    assert versions(tmp_path) == ["20250914_add_z", "20250915_add_a", "20250915_add_b", "20250916_add_c"]
    loaded = [m.version for m in _files.load_directory(str(tmp_path))]
    assert loaded == ["20250914_add_z", "20250915_add_a", "20250915_add_b", "20250916_add_c"]


def test_files_of_one_number_with_their_rollback_files(tmp_path: Path) -> None:
    write(tmp_path, "20250915_add_b.sql", "CREATE TABLE b (id int);\n")
    write(tmp_path, "20250915_add_b.rollback.sql", "DROP TABLE b;\n")
    write(tmp_path, "20250915_add_a.sql", "CREATE TABLE a (id int);\n")
    write(tmp_path, "20250915_add_a.down.sql", "DROP TABLE a;\n")
    sources = discover(str(tmp_path))
    assert [(s.version, Path(s.rollback or "").name) for s in sources] == [
        ("20250915_add_a", "20250915_add_a.down.sql"),
        ("20250915_add_b", "20250915_add_b.rollback.sql"),
    ]


def test_the_same_version_twice_is_still_an_error(tmp_path: Path) -> None:
    write(tmp_path, "0001_create.sql")
    write(tmp_path, "0001_create.up.sql")
    with pytest.raises(
        MigrationError, match=r"0001_create\.up\.sql: duplicate version 0001_create: also .*0001_create\.sql"
    ):
        discover(str(tmp_path))


def test_the_same_version_as_file_and_diesel_directory_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "0001_create.sql")
    write(tmp_path, "0001_create/up.sql", "CREATE TABLE a (id int);\n")
    with pytest.raises(MigrationError, match="duplicate version 0001_create"):
        discover(str(tmp_path))


def test_same_number_notes_name_the_others_and_the_order(tmp_path: Path) -> None:
    for name in ("20250915_add_b.sql", "20250915_add_a.sql", "20250916_add_c.sql"):
        write(tmp_path, name)
    notes = same_number_notes(discover(str(tmp_path)))
    assert set(notes) == {"20250915_add_a", "20250915_add_b"}
    assert notes["20250915_add_a"] == (
        "shares its number with 20250915_add_b: migrations of one number run in name order"
        " (20250915_add_a, then 20250915_add_b)"
    )
    assert notes["20250915_add_b"].startswith("shares its number with 20250915_add_a:")


def test_lint_notes_each_file_of_a_shared_number_and_shows_it(tmp_path: Path) -> None:
    for name in ("20250915_add_b.sql", "20250915_add_a.sql", "20250916_add_c.sql"):
        write(tmp_path, name)
    report = lint_path(str(tmp_path))
    notes = {e["version"]: [f for f in e["findings"] if f["rule"] == "same-number"] for e in report["migrations"]}
    assert [len(notes[v]) for v in ("20250915_add_a", "20250915_add_b", "20250916_add_c")] == [1, 1, 0]
    note = notes["20250915_add_a"][0]
    assert note["severity"] == "info" and note["path"] == str(tmp_path / "20250915_add_a.sql")
    assert "shares its number with 20250915_add_b" in note["message"] and "name order" in note["message"]
    assert report["summary"]["errors"] == 0
    text = "\n".join(render(report))
    assert f"INFO {tmp_path / '20250915_add_b.sql'} line 0: [same-number] shares its number with 20250915_add_a" in text
    assert "lint passed" in text
    ignored = lint_path(str(tmp_path), ignore=["same-number"])
    assert not [f for e in ignored["migrations"] for f in e["findings"] if f["rule"] == "same-number"]


# -- rollbacks saved separately under other names ----------------------------------------------------
@pytest.mark.parametrize(
    "lookalike",
    [
        "016_add_feature_x_rollback.sql",
        "016_add_feature_x-rollback.sql",
        "016_add_feature_x.sql.rollback",
        "rollback_016_add_feature_x.sql",
        "016_rollback_add_feature_x.sql",
        "016_add_feature_x_down.sql",
        "016_add_feature_x.revert.sql",
        "016_add_feature_x_UNDO.sql",
        "016_add_feature_x.ROLLBACK.sql",
        "Rollback-016_add_feature_x.sql",
        "016_add_feature_x.sql.down",
    ],
)
def test_a_rollback_saved_under_another_name_is_an_error_naming_the_name_read(tmp_path: Path, lookalike: str) -> None:
    write(tmp_path, "015_create_users.sql")
    write(tmp_path, "016_add_feature_x.sql")
    write(tmp_path, lookalike, ROLLBACK)
    with pytest.raises(MigrationError) as info:
        discover(str(tmp_path))
    assert info.value.path == str(tmp_path / lookalike)
    assert info.value.message == f"looks like the rollback of 016_add_feature_x saved separately; {EXPECTED}"
    with pytest.raises(MigrationError, match=EXPECTED.replace(".", r"\.").replace("(", r"\(").replace(")", r"\)")):
        _files.load_directory(str(tmp_path))


def test_a_rollback_word_with_the_number_of_another_migration_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "016_add_feature_x.sql")
    write(tmp_path, "016_undo_feature.sql", ROLLBACK)
    with pytest.raises(MigrationError) as info:
        discover(str(tmp_path))
    assert info.value.path == str(tmp_path / "016_undo_feature.sql")
    assert info.value.message.startswith(f"looks like the rollback of 016_add_feature_x saved separately; {EXPECTED}")
    assert "leave 'undo' out of its name" in info.value.message


def test_the_lint_reports_the_separate_rollback_as_an_error(tmp_path: Path) -> None:
    write(tmp_path, "016_add_feature_x.sql")
    write(tmp_path, "016_add_feature_x_rollback.sql", ROLLBACK)
    report = lint_path(str(tmp_path))
    (entry,) = report["migrations"]
    (finding,) = entry["findings"]
    assert (finding["rule"], finding["severity"]) == ("invalid-layout", "error")
    assert finding["path"] == str(tmp_path / "016_add_feature_x_rollback.sql") and EXPECTED in finding["message"]


def test_a_single_file_beside_the_migration_it_undoes_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "016_add_feature_x.sql")
    write(tmp_path, "016_add_feature_x_rollback.sql", ROLLBACK)
    with pytest.raises(MigrationError, match="looks like the rollback of 016_add_feature_x"):
        discover_path(str(tmp_path / "016_add_feature_x_rollback.sql"))
    (source,) = discover_path(str(tmp_path / "016_add_feature_x.sql"))
    assert source.version == "016_add_feature_x"


def test_the_diesel_rollback_name_is_named_for_a_diesel_migration(tmp_path: Path) -> None:
    write(tmp_path, "0001_create/up.sql", "CREATE TABLE a (id int);\n")
    write(tmp_path, "0001_create_down.sql", "DROP TABLE a;\n")
    with pytest.raises(MigrationError, match=r"reads it only as 0001_create/down\.sql: rename it"):
        discover(str(tmp_path))


def test_recognised_rollback_names_still_work(tmp_path: Path) -> None:
    write(tmp_path, "016_add_feature_x.sql", "ALTER TABLE users ADD COLUMN feature_x boolean;\n")
    write(tmp_path, "016_add_feature_x.rollback.sql", "ALTER TABLE users DROP COLUMN feature_x;\n")
    write(tmp_path, "0017_jobs.up.sql", "CREATE TABLE jobs (id int);\n")
    write(tmp_path, "0017_jobs.down.sql", "DROP TABLE jobs;\n")
    sources = discover(str(tmp_path))
    assert [(s.version, Path(s.rollback or "").name) for s in sources] == [
        ("016_add_feature_x", "016_add_feature_x.rollback.sql"),
        ("0017_jobs", "0017_jobs.down.sql"),
    ]


@pytest.mark.parametrize(
    "names",
    [
        ["017_slow_down_jobs.sql"],
        ["016_add_feature_x.sql", "017_slow_down_jobs.sql"],
        ["017_undo_button.sql", "018_revert_flag.sql", "019_rollback_log.sql"],
        ["016_add_feature_x.sql", "rollback_notes.md", "016_add_feature_x.rollback.md"],
    ],
)
def test_a_forward_with_a_rollback_word_alone_with_its_number_works(tmp_path: Path, names: list[str]) -> None:
    for name in names:
        write(tmp_path, name)
    expected = sorted(n[: -len(".sql")] for n in names if n.endswith(".sql"))
    assert versions(tmp_path) == expected
    assert [m.version for m in _files.load_directory(str(tmp_path))] == expected


def test_two_rollback_words_of_one_date_and_no_plain_migration_are_migrations(tmp_path: Path) -> None:
    write(tmp_path, "20250917_slow_down_jobs.sql")
    write(tmp_path, "20250917_undo_button.sql")
    assert versions(tmp_path) == ["20250917_slow_down_jobs", "20250917_undo_button"]


def test_a_sequence_number_belongs_to_one_migration(tmp_path: Path) -> None:
    """Two branches that each took the next number: an error, as ever; only date names share a number."""
    write(tmp_path, "011_add_client_notes.sql")
    write(tmp_path, "011_add_client_vat.sql")
    with pytest.raises(MigrationError, match="duplicate version number 11: .*renumber one"):
        discover(str(tmp_path))


def test_a_migration_whose_name_less_a_rollback_word_is_another_migration_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "016_slow_down.sql")
    write(tmp_path, "016_slow_down_rollback.sql", ROLLBACK)
    with pytest.raises(MigrationError) as info:
        discover(str(tmp_path))
    assert info.value.path == str(tmp_path / "016_slow_down_rollback.sql")
    assert "rollback of 016_slow_down saved separately" in info.value.message


# -- the version of a new migration ----------------------------------------------------------------
def test_next_version_by_date() -> None:
    assert next_version([], "add_a", numbering="date", today="2025-09-15") == "20250915_add_a"
    assert next_version(["20250915_add_a.sql"], "add_b", "date", "20250915") == "20250915_add_b"
    assert next_version(["015_x.sql", "20250914_y.sql"], "add_b", "date", "2025-09-15") == "20250915_add_b"
    with pytest.raises(ValueError, match="20250915_add_a exists already"):
        next_version(["20250915_add_a.sql"], "add_a", "date", "2025-09-15")
    with pytest.raises(ValueError, match="20250915_add_a would run before 20250915_add_b, already there"):
        next_version(["20250915_add_b.sql"], "add_a", "date", "2025-09-15")
    with pytest.raises(ValueError, match="not numbered by date"):
        next_version(["2025091500_x.sql"], "add_a", "date", "2025-09-15")
    with pytest.raises(ValueError, match="numbering 'weekly'"):
        next_version([], "add_a", "weekly")
    with pytest.raises(ValueError, match="today '2025-13-01'"):
        next_version([], "add_a", "date", "2025-13-01")
    assert next_version(["20250915_a.sql"], "b") == "20250916_b"  # the default is unchanged


def test_next_version_refuses_a_name_with_a_newline() -> None:
    with pytest.raises(ValueError, match="lower-case letters"):
        next_version([], "add_x\n")
