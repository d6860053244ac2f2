# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure logic: files that once crashed the reader end in an error naming file and line (no database)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ansible_collections.tme.migrations.plugins.module_utils._model import MigrationError
from ansible_collections.tme.migrations.plugins.plugin_utils import _files, _lint, _sqlparse
from ansible_collections.tme.migrations.plugins.plugin_utils._discover import discover

ROLLBACK = "\n-- ROLLBACK\n-- SELECT 1;\n"


@pytest.fixture(autouse=True)
def _no_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TME_MIGRATIONS_CACHE", "off")


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


DEEP = {
    "sum": "SELECT " + "+".join(["1"] * 500) + ";",
    "subqueries": "SELECT " + "(SELECT " * 300 + "1" + ")" * 300 + ";",
    "do_ifs": "DO $$BEGIN " + "IF true THEN " * 400 + "ALTER TABLE t DROP COLUMN c;" + " END IF;" * 400 + " END$$;",
}


@pytest.mark.parametrize("name", sorted(DEEP))
def test_deep_expressions_parse_and_classify(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, "001_deep.sql", "-- Type: SAFE\n\n" + DEEP[name] + ROLLBACK)
    (m,) = _files.load_path(str(path))
    assert [s.line for s in m.forward.statements] == [3]
    assert m.classification == ("BREAKING" if name == "do_ifs" else "SAFE")


def test_deeper_than_postgresql_parses_is_an_error_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "001_deep.sql", "SELECT 1;\n\n" + "SELECT " + "+".join(["1"] * 40_000) + ";" + ROLLBACK)
    with pytest.raises(MigrationError) as exc:
        _files.load_path(str(path))
    assert (exc.value.path, exc.value.line) == (str(path), 3)
    assert "nested too deeply" in exc.value.message


def test_iterative_json_matches_json() -> None:
    text = _sqlparse._pg.parse_sql_json("SELECT 'a\\\"é', 1.5e3, -2, true, null, ARRAY[1,2] FROM t WHERE x = $1;")
    assert _sqlparse._loads_iterative(text) == json.loads(text)
    deep = _sqlparse.loads_tree('{"a": ' * 5000 + '"x"' + "}" * 5000)  # json.loads alone: RecursionError
    for _level in range(5000):
        deep = deep["a"]
    assert deep == "x"


def test_parse_error_without_location_names_the_statement_line(tmp_path: Path) -> None:
    path = write(tmp_path, "001_eoi.sql", "SELECT 1;\n\nCREATE TABLE t (\n  id int,\n")
    with pytest.raises(MigrationError) as exc:
        _files.load_path(str(path))
    assert (exc.value.path, exc.value.line) == (str(path), 3)
    assert "end of input" in exc.value.message


@pytest.mark.parametrize("meta", ["\\i other.sql", "\\gexec", "\\set x 1", "\\! ls", "\\connect db", "\\c db"])
def test_psql_meta_commands_are_named(meta: str) -> None:
    with pytest.raises(MigrationError) as exc:
        _sqlparse.parse_statements(f"SELECT 1;\n\n{meta}\nSELECT 2;\n", "001.sql")
    name = meta.split()[0]
    assert exc.value.line == 3
    assert exc.value.message == (
        f"psql meta-command {name} is not SQL; migrations run through the driver, not psql: inline the SQL"
    )


def test_meta_command_after_a_statement(tmp_path: Path) -> None:
    path = write(tmp_path, "001_x.sql", "SELECT 'x'\n\\gexec\n" + ROLLBACK)
    with pytest.raises(MigrationError, match=r"001_x\.sql line 2: psql meta-command \\gexec is not SQL"):
        _files.load_path(str(path))


def test_fifo_is_not_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "001_x.sql")  # opening it for reading would wait for a writer forever
    with pytest.raises(MigrationError) as exc:
        _files.load_path(str(tmp_path))
    assert exc.value.path == str(tmp_path / "001_x.sql")
    assert "FIFO" in exc.value.message
    with pytest.raises(MigrationError, match="FIFO"):
        _files.read_bytes(str(tmp_path / "001_x.sql"))


def test_link_to_a_device_is_not_read(tmp_path: Path) -> None:
    (tmp_path / "001_x.sql").symlink_to("/dev/zero")
    with pytest.raises(MigrationError) as exc:
        _files.load_path(str(tmp_path))
    assert exc.value.path == str(tmp_path / "001_x.sql")
    assert "outside the migrations directory" in exc.value.message
    with pytest.raises(MigrationError, match="character device"):
        _files.read_bytes(str(tmp_path / "001_x.sql"))


def test_link_outside_the_directory_is_not_followed(tmp_path: Path) -> None:
    secret = write(tmp_path, "secret.sql", "SELECT 'not for the report' FROM nowhere WHERE;")
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "001_x.sql").symlink_to(secret)
    with pytest.raises(MigrationError) as exc:
        _files.load_path(str(migrations))
    assert "outside the migrations directory" in exc.value.message
    assert "not for the report" not in str(exc.value)
    report = _lint.lint_path(str(migrations))
    assert "not for the report" not in json.dumps(report)


def test_link_inside_the_directory_is_read(tmp_path: Path) -> None:
    write(tmp_path, "shared.txt", "SELECT 1;" + ROLLBACK)
    (tmp_path / "001_x.sql").symlink_to("shared.txt")
    (m,) = _files.load_path(str(tmp_path))
    assert m.forward.statements[0].sql == "SELECT 1"


def test_directory_named_like_a_file(tmp_path: Path) -> None:
    (tmp_path / "001_x.sql").mkdir()
    with pytest.raises(MigrationError, match="a directory named like a migration file") as exc:
        discover(str(tmp_path))
    assert exc.value.path == str(tmp_path / "001_x.sql")


def test_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "001_x.sql", "SELECT 1;\n" * 200 + ROLLBACK)
    monkeypatch.setenv("TME_MIGRATIONS_MAX_FILE_SIZE", "1000")
    with pytest.raises(MigrationError, match="larger than the limit of 1000 bytes") as exc:
        _files.load_path(str(path))
    assert exc.value.path == str(path)
    monkeypatch.delenv("TME_MIGRATIONS_MAX_FILE_SIZE")
    assert _files.max_file_size() == 64 * 1024 * 1024
    assert len(_files.load_path(str(path))[0].forward.statements) == 200


def test_lint_keeps_every_other_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "001_ok.sql", "CREATE TABLE a (id int);" + ROLLBACK)
    write(tmp_path, "002_deep.sql", DEEP["sum"] + ROLLBACK)
    write(tmp_path, "003_eoi.sql", "SELECT (" + ROLLBACK)
    write(tmp_path, "004_meta.sql", "\\i x.sql\n" + ROLLBACK)
    os.mkfifo(tmp_path / "005_fifo.sql")
    write(tmp_path, "006_ok.sql", "CREATE TABLE b (id int);" + ROLLBACK)
    report = _lint.lint_path(str(tmp_path))
    entries = {e["version"]: e for e in report["migrations"]}
    assert set(entries) == {"001_ok", "002_deep", "003_eoi", "004_meta", "005_fifo", "006_ok"}
    assert [entries[v]["classification"] for v in ("001_ok", "002_deep", "006_ok")] == ["SAFE"] * 3
    for version, line in (("003_eoi", 1), ("004_meta", 1), ("005_fifo", 0)):
        (finding,) = entries[version]["findings"]
        assert finding["severity"] == "error" and finding["path"].endswith(version + ".sql")
        assert finding["line"] == line
    # anything else the reader raises is still one file's error, never the whole report's
    real = _files.load_source

    def broken(source: _files.Source, *args: object, **kwargs: object) -> object:
        if source.version == "001_ok":
            raise TypeError("boom")
        return real(source, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_lint, "load_source", broken)
    monkeypatch.setattr("ansible_collections.tme.migrations.plugins.plugin_utils._parse_cache.load_source", broken)
    entries = {e["version"]: e for e in _lint.lint_path(str(tmp_path))["migrations"]}
    assert "TypeError: boom" in entries["001_ok"]["findings"][0]["message"]
    assert entries["006_ok"]["classification"] == "SAFE"


def test_a_few_megabytes_with_right_lines(tmp_path: Path) -> None:
    # Non-ASCII text throughout: pglast's own offset mapping made this quadratic.
    block = (
        "-- «bloc» {i}\nCREATE TABLE t_{i} (\n  name text DEFAULT 'naïve; x'\n);\nINSERT INTO t_{i} VALUES ('é');\n\n"
    )
    count = 12_000  # about 1 MB
    text = "BEGIN;\n" + "".join(block.format(i=i) for i in range(count)) + "COMMIT;\n" + ROLLBACK
    path = write(tmp_path, "001_big.sql", text)
    (m,) = _files.load_path(str(path))
    statements = m.forward.statements
    assert len(statements) == 2 * count
    assert [s.line for s in statements[:2]] == [3, 6]
    assert statements[-1].line == 1 + 6 * (count - 1) + 5
    assert statements[-1].sql.split() == ["INSERT", "INTO", f"t_{count - 1}", "VALUES", "('é')"]
    assert m.checksum == _files.checksum(text.split("\n-- ROLLBACK", maxsplit=1)[0] + "\n-- a comment\n")
