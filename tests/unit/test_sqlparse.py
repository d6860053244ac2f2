# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure logic: splitting a script into statements with their first lines (no database)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import SupportsIndex

import pytest

from ansible_collections.tme.migrations.plugins.module_utils._model import MigrationError
from ansible_collections.tme.migrations.plugins.plugin_utils import _sqlparse
from ansible_collections.tme.migrations.plugins.plugin_utils._sqlparse import parse_statements

# Comments before statements (line and nested block comments), blank lines, multi-line statements,
# a dollar-quoted body with semicolons and newlines in it, and non-ASCII text before, inside and
# between statements (the parser's byte offsets then differ from character offsets).
SCRIPT = """-- Migration: 001 — «initial» schema
-- Author: Zoë Ångström

/* a block comment
   /* nested */ over lines; with a semicolon */
CREATE TABLE café (
    id bigint PRIMARY KEY,
    name text NOT NULL DEFAULT 'naïve'
);


-- the body has semicolons, newlines and non-ASCII in it
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
    NEW.name := 'résumé; ünïcödé';
    RETURN NEW;
END;
$body$;
BEGIN; INSERT INTO café (id) VALUES (1);
   /* 日本語 */ -- before the next one
COMMIT;

SELECT '多
行
文字列' AS multi
  , 2;
SELECT 3
"""

# The first token of every statement, in order: each occurs once in SCRIPT.
FIRST_TOKENS = (
    "CREATE TABLE café",
    "CREATE FUNCTION touch()",
    "BEGIN; INSERT",
    "INSERT INTO café",
    "COMMIT;",
    "SELECT '多",
    "SELECT 3",
)


def expected_lines(text: str, first_tokens: tuple[str, ...]) -> list[int]:
    """The old algorithm, independently: newlines before the statement's first token, plus one."""
    lines = []
    for token in first_tokens:
        assert text.count(token) == 1, token
        lines.append(text.count("\n", 0, text.index(token)) + 1)
    return lines


def test_lines_are_those_of_each_first_token() -> None:
    parsed = parse_statements(SCRIPT, "001.sql")
    assert [p.kind for p in parsed] == [
        "CreateStmt",
        "CreateFunctionStmt",
        "TransactionStmt",
        "InsertStmt",
        "TransactionStmt",
        "SelectStmt",
        "SelectStmt",
    ]
    assert [p.line for p in parsed] == expected_lines(SCRIPT, FIRST_TOKENS)
    assert [p.line for p in parsed] == [6, 13, 19, 19, 21, 23, 27]
    for p, token in zip(parsed, FIRST_TOKENS):
        assert p.start == SCRIPT.index(token)
        assert SCRIPT[p.start : p.stop] == p.sql
        assert p.sql.startswith(token.split(";")[0])


def test_lines_in_an_ascii_script() -> None:
    text = "\n\n-- one\nSELECT 1;\n\n\n/* two */ SELECT\n 2;SELECT 3;\n\n  SELECT $$\n;\n$$;\n"
    parsed = parse_statements(text, "a.sql")
    assert [p.line for p in parsed] == expected_lines(text, ("SELECT 1", "SELECT\n 2", "SELECT 3", "SELECT $$"))
    assert [p.line for p in parsed] == [4, 7, 8, 10]


def test_forty_thousand_statements() -> None:
    # Every other statement has a comment before it; the second half has non-ASCII text in it.
    first = "-- comment\nSELECT 1;\n" * 10_000 + "SELECT\n  2;\n" * 10_000
    second = "/* é */ SELECT 'ü';\n" * 20_000
    text = first + second + "SELECT 'last'"
    parsed = parse_statements(text, "big.sql")
    assert len(parsed) == 40_001
    assert parsed[0].line == 2
    assert parsed[9_999].line == 20_000
    assert parsed[10_000].line == 20_001
    assert parsed[19_999].line == 40_000 - 1
    assert parsed[20_000].line == 40_001
    assert parsed[-2].line == 60_000
    assert parsed[-1].line == 60_001
    assert parsed[-1].sql == "SELECT 'last'"
    assert text[parsed[-1].start :] == "SELECT 'last'"
    assert parsed[-2].sql == "SELECT 'ü'"


class CountingText(str):
    """A script that adds up how many characters ``count`` scans in it."""

    scanned = 0

    def count(self, sub: str, start: SupportsIndex | None = None, end: SupportsIndex | None = None) -> int:
        first, last, _step = slice(start, end).indices(len(self))
        CountingText.scanned += max(last - first, 0)
        return super().count(sub, start, end)


@pytest.mark.parametrize(("unit", "last_line"), [("-- c\nSELECT 1;\n", 4_000), ("/* é */ SELECT 'ü';\n", 2_000)])
def test_line_numbers_scan_the_script_once(monkeypatch: pytest.MonkeyPatch, unit: str, last_line: int) -> None:
    # Work, not time: counting newlines from the start of the script for every statement scans
    # about statements * length / 2 characters (quadratic); walking forward scans the script once.
    parser = _sqlparse._pg  # the Cython parser takes an exact str only
    monkeypatch.setattr(
        _sqlparse,
        "_pg",
        SimpleNamespace(parse_sql_json=lambda query: parser.parse_sql_json(str(query)), ParseError=parser.ParseError),
    )
    text = CountingText(unit * 2_000)
    CountingText.scanned = 0
    parsed = parse_statements(text, "many.sql")
    assert len(parsed) == 2_000
    assert (parsed[0].line, parsed[-1].line) == (last_line // 2_000, last_line)
    assert CountingText.scanned <= len(text)


def test_syntax_error_names_its_line() -> None:
    with pytest.raises(MigrationError) as exc:
        parse_statements("SELECT 1;\n\nSELEC 2;\n", "bad.sql")
    assert exc.value.line == 3
