# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The parse cache: the same migrations as a fresh read, each file parsed only when it changed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.tme.migrations.plugins.module_utils._model import MigrationError
from ansible_collections.tme.migrations.plugins.plugin_utils import _files, _parse_cache
from ansible_collections.tme.migrations.plugins.plugin_utils._lint import lint_path

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "migrations"


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """Every file parsed, by version; the cache in a directory of this test."""
    monkeypatch.setenv("TME_MIGRATIONS_CACHE", str(tmp_path / "cache"))
    parsed: list[str] = []
    real = _files.load_source

    def spy(source: Any, *args: Any, **kwargs: Any) -> Any:
        parsed.append(source.version)
        return real(source, *args, **kwargs)

    monkeypatch.setattr(_parse_cache, "load_source", spy)
    return parsed


def copy_examples(tmp_path: Path) -> Path:
    target = tmp_path / "m"
    shutil.copytree(EXAMPLES, target)
    return target


def touch_later(path: Path, text: str) -> None:
    before = path.stat().st_mtime_ns
    path.write_text(text)
    os.utime(path, ns=(before + 10**9, before + 10**9))  # a later modification time, as an editor gives


def test_second_read_parses_nothing_and_equals_a_fresh_read(tmp_path: Path, counted: list[str]) -> None:
    d = copy_examples(tmp_path)
    first = _parse_cache.load_path_cached(str(d))
    assert len(counted) == 15
    counted.clear()
    second = _parse_cache.load_path_cached(str(d))
    assert counted == []
    assert (
        [m.to_dict() for m in second] == [m.to_dict() for m in first] == [m.to_dict() for m in _files.load_path(str(d))]
    )


def test_an_edited_forward_or_rollback_file_is_parsed_again(tmp_path: Path, counted: list[str]) -> None:
    d = copy_examples(tmp_path)
    _parse_cache.load_path_cached(str(d))
    counted.clear()
    forward = d / "003_add_user_fields.sql"
    touch_later(forward, forward.read_text().replace("VARCHAR(50)", "VARCHAR(60)"))
    rollback = d / "005_create_invoices.rollback.sql"
    touch_later(rollback, rollback.read_text() + "\n-- reviewed\n")
    migrations = _parse_cache.load_path_cached(str(d))
    assert sorted(counted) == ["003_add_user_fields", "005_create_invoices"]
    assert "VARCHAR(60)" in migrations[2].forward.statements[0].sql


def test_rules_of_the_task_still_apply_to_cached_parses(tmp_path: Path, counted: list[str]) -> None:
    d = tmp_path / "m"
    d.mkdir()
    (d / "001_a.sql").write_text("CREATE TABLE a (id int);\n")  # no rollback
    assert _parse_cache.load_path_cached(str(d), require_rollback=False)[0].rollback is None
    with pytest.raises(MigrationError, match="no rollback SQL"):
        _parse_cache.load_path_cached(str(d))
    assert counted == ["001_a"]  # parsed once, the second time the rule was checked on the cached parse


def test_a_damaged_cache_or_none_at_all(tmp_path: Path, counted: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    d = copy_examples(tmp_path)
    _parse_cache.load_path_cached(str(d))
    [cache_file] = list((tmp_path / "cache").glob("*.json"))
    cache_file.write_text("{not json")
    counted.clear()
    assert len(_parse_cache.load_path_cached(str(d))) == 15 and len(counted) == 15
    monkeypatch.setenv("TME_MIGRATIONS_CACHE", "off")
    shutil.rmtree(tmp_path / "cache")
    _parse_cache.load_path_cached(str(d))
    assert not (tmp_path / "cache").exists()


def test_a_warm_run_starts_without_the_parser(tmp_path: Path) -> None:
    """Unchanged files are read from the cache without importing pglast (its import costs more than the
    whole warm lint), their password redaction included (the examples' users table has a password_hash
    column, so its statement is scanned when parsed): the second process sees no pglast module."""
    migrations = copy_examples(tmp_path)
    probe = (
        "import sys\n"
        f"sys.path.insert(0, {str(REPO / '.collections')!r})\n"
        "from ansible_collections.tme.migrations.plugins.plugin_utils._lint import lint_path\n"
        "from ansible_collections.tme.migrations.plugins.plugin_utils._parse_cache import load_path_cached\n"
        "from ansible_collections.tme.migrations.plugins.plugin_utils._redact import Redactor\n"
        f"report = lint_path({str(migrations)!r})\n"
        "redactions = []\n"
        f"load_path_cached({str(migrations)!r}, redactions=redactions)\n"  # as the action plugins read them
        "Redactor.merged(redactions)\n"
        "print(len(report['migrations']), 'pglast' in sys.modules)\n"
    )
    env = dict(os.environ, TME_MIGRATIONS_CACHE=str(tmp_path / "cache"))
    cold = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    warm = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert cold.stdout.split() == ["15", "True"]
    assert warm.stdout.split() == ["15", "False"]


def test_the_lint_reads_the_same_from_the_cache(counted: list[str], tmp_path: Path) -> None:
    """The lint takes cached migrations without their statements: its report is the fresh read's."""
    migrations = copy_examples(tmp_path)
    (migrations / "016_idx.sql").write_text(
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_x ON users (email);\n"
        "-- ROLLBACK\n-- DROP INDEX CONCURRENTLY idx_x;\n"
    )
    cold = lint_path(str(migrations))
    assert len(counted) == 16
    warm = lint_path(str(migrations))
    assert len(counted) == 16  # nothing parsed again
    assert warm == cold
    assert [e["transactional"] for e in warm["migrations"]][-1] is False


def test_a_listing_as_before_skips_discovery_and_a_change_of_names_does_not(
    tmp_path: Path, counted: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory of plain files listed exactly as before holds the same migrations: no discovery. A new,
    renamed or removed file, or any entry that is not a plain file, means discovering it again."""
    d = copy_examples(tmp_path)
    first = _parse_cache.read_path(str(d), statements=False)
    discovered: list[str] = []
    real = _parse_cache.discover_path

    def spy(path: str, *args: Any) -> Any:
        discovered.append(path)
        return real(path, *args)

    monkeypatch.setattr(_parse_cache, "discover_path", spy)
    again = _parse_cache.read_path(str(d), statements=False)
    assert discovered == [] and [m.to_dict() for m in again.migrations] == [m.to_dict() for m in first.migrations]
    (d / "016_add_x.sql").write_text("CREATE TABLE x (id int);\n-- ROLLBACK\n-- DROP TABLE x;\n")
    assert [m.version for m in _parse_cache.read_path(str(d)).migrations][-1] == "016_add_x"
    assert len(discovered) == 1
    (d / "016_add_x.sql").rename(d / "016_add_y.sql")
    assert [m.version for m in _parse_cache.read_path(str(d)).migrations][-1] == "016_add_y"
    (d / "notes").mkdir()  # not a plain file: discovered afresh every time, with its rules
    _parse_cache.read_path(str(d))
    _parse_cache.read_path(str(d))
    assert len(discovered) == 4
    (d / "notes").rmdir()
    (d / "016_add_y.sql").rename(d / "011_add_y.sql")  # a shared sequence number: discovery's rule still applies
    with pytest.raises(MigrationError, match="duplicate version number 11"):
        _parse_cache.read_path(str(d))
    assert counted.count("016_add_x") == 1 and counted.count("016_add_y") == 1  # a rename parses once more


def test_statements_come_from_their_own_file_or_are_parsed_again(tmp_path: Path, counted: list[str]) -> None:
    """A read without statements does not decode the statements file; one with them, or with_statements,
    does, and parses a file again when that file lacks them (a concurrent writer, a damaged file)."""
    d = copy_examples(tmp_path)
    full = [m.to_dict() for m in _parse_cache.read_path(str(d)).migrations]
    counted.clear()
    [statements] = list((tmp_path / "cache").glob("*.statements"))
    light = _parse_cache.read_path(str(d), statements=False)
    assert light.cache._scripts is None and all(m.sent_light for m in light.migrations)
    assert [m.to_dict() for m in light.with_statements()] == full and counted == []
    statements.write_text("{not json")
    again = _parse_cache.read_path(str(d), statements=False)
    assert [m.to_dict() for m in again.with_statements({"003_add_user_fields"})][2] == full[2]
    assert counted == ["003_add_user_fields"]
    counted.clear()
    assert [m.to_dict() for m in _parse_cache.read_path(str(d)).migrations] == full
    assert len(counted) == 14  # the others, parsed again once; the pair is whole again
    counted.clear()
    assert [m.to_dict() for m in _parse_cache.read_path(str(d)).migrations] == full and counted == []


@pytest.mark.parametrize("damage", ["123", '"not json"', '"{}"', "cut"])
def test_statements_that_are_not_the_entrys_own_are_parsed_again(
    tmp_path: Path, counted: list[str], damage: str
) -> None:
    """A statements file whose text for one migration is damaged, empty or cut (one statement of three)
    never lends it statements: that migration is parsed again, with a full read and with_statements alike."""
    import json

    d = copy_examples(tmp_path)
    full = [m.to_dict() for m in _parse_cache.read_path(str(d)).migrations]
    [statements] = list((tmp_path / "cache").glob("*.statements"))
    data = json.loads(statements.read_text())
    version = "003_add_user_fields"
    if damage == "cut":
        scripts = json.loads(data["scripts"][version])
        assert len(scripts["forward"]) > 1
        scripts["forward"] = scripts["forward"][:1]
        data["scripts"][version] = json.dumps(scripts)
    else:
        data["scripts"][version] = json.loads(damage)
    statements.write_text(json.dumps(data))
    counted.clear()
    light = _parse_cache.read_path(str(d), statements=False)
    assert [m.to_dict() for m in light.with_statements({version})][2] == full[2]
    assert counted == [version]
    counted.clear()
    assert [m.to_dict() for m in _parse_cache.read_path(str(d)).migrations] == full and counted == []


def test_a_relative_and_an_absolute_name_of_one_directory_each_stay_warm(
    tmp_path: Path, counted: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lint in a pre-commit hook names the directory relatively, the playbooks absolutely: neither
    makes the other parse again."""
    d = copy_examples(tmp_path)
    monkeypatch.chdir(tmp_path)
    for name in ("m", str(d), "m", str(d)):
        _parse_cache.read_path(name)
    assert len(counted) == 30  # each name parsed once
