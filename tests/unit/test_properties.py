# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Property tests of the reader: migration files generated from a grammar of statement fragments.

200 examples per property by default (``TME_HYPOTHESIS_EXAMPLES=5000`` runs more), no deadline.
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.tme.migrations.plugins.module_utils._model import MigrationError
from ansible_collections.tme.migrations.plugins.plugin_utils import _files
from ansible_collections.tme.migrations.plugins.plugin_utils._sqlparse import parse_statements, scan_bytes

settings.register_profile(
    "tme",
    max_examples=int(os.environ.get("TME_HYPOTHESIS_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile("tme")

IDENT = st.sampled_from(["users", "orders", "t1", "café", "x_y", '"Mixed Case"'])
# Text for comments and string literals: any unicode but NUL and surrogates.
FREE = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=12)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _dollar(text: str) -> str:
    return "$b$" + text.replace("$b$", "") + "$b$"


STATEMENT = st.one_of(
    st.builds(lambda t, c: f"CREATE TABLE {t} (id bigint PRIMARY KEY, {c} text)", IDENT, IDENT),
    st.builds(lambda t, c: f"ALTER TABLE {t} ADD COLUMN {c} integer", IDENT, IDENT),
    st.builds(lambda t, c: f"ALTER TABLE {t} DROP COLUMN {c}", IDENT, IDENT),
    st.builds(lambda t, c: f"CREATE INDEX ON {t} ({c})", IDENT, IDENT),
    st.builds(lambda t, s: f"INSERT INTO {t} VALUES ({_literal(s + '; x')})", IDENT, FREE),  # noqa: S608
    st.builds(lambda s: f"SELECT {_literal(s)}", FREE),
    st.builds(lambda s: f"CREATE FUNCTION f() RETURNS text LANGUAGE sql AS {_dollar(s + ';')}", FREE),
    st.builds(lambda s: f"DO {_dollar('BEGIN PERFORM 1; END;')} /* {s.replace('*/', '')} */", FREE),
)
SEPARATOR = st.one_of(
    st.just("\n"),
    st.just("\n\n\n"),
    st.builds(lambda s: f"\n-- {s.splitlines()[0] if s.splitlines() else ''}\n", FREE),
    st.builds(lambda s: f" /* {s.replace('*/', '').replace('/*', '')} */ ", FREE),
)


def assemble(statements: list[str], separators: list[str]) -> tuple[str, list[tuple[str, int]]]:
    """A script of the statements between the separators, and each statement with its first line."""
    text, expected = separators[0], []
    for statement, separator in zip(statements, separators[1:]):
        expected.append((statement, text.count("\n") + 1))
        text += statement + ";" + separator
    return text, expected


STATEMENTS = st.lists(STATEMENT, min_size=1, max_size=8)
SEPARATORS = st.lists(SEPARATOR, min_size=9, max_size=9)


@st.composite
def scripts(draw: st.DrawFn) -> tuple[str, list[tuple[str, int]]]:
    """A script and, for each statement, its text and the line of its first token."""
    return assemble(draw(STATEMENTS), draw(SEPARATORS))


def _tokens(text: str) -> list[bytes]:
    raw, tokens = scan_bytes(text)
    return [raw[a:b] for a, b, name in tokens if name not in ("SQL_COMMENT", "C_COMMENT")]


@given(scripts())
def test_statements_split_back_with_their_lines(script: tuple[str, list[tuple[str, int]]]) -> None:
    text, expected = script
    parsed = parse_statements(text, "p.sql")
    assert [p.line for p in parsed] == [line for _sql, line in expected]
    assert [_tokens(p.sql) for p in parsed] == [_tokens(sql) for sql, _line in expected]
    for p in parsed:
        assert text[p.start : p.stop] == p.sql


@given(STATEMENTS, SEPARATORS, SEPARATORS)
def test_checksum_ignores_comments_and_whitespace(statements: list[str], one: list[str], other: list[str]) -> None:
    assert _files.checksum(assemble(statements, one)[0]) == _files.checksum(assemble(statements, other)[0])


@given(STATEMENTS, SEPARATORS, st.data())
def test_checksum_changes_with_a_token(statements: list[str], separators: list[str], data: st.DataObject) -> None:
    text = assemble(statements, separators)[0]
    index = data.draw(st.integers(0, len(statements)))
    altered = assemble([*statements[:index], "SELECT 42", *statements[index:]], [*separators, "\n"])[0]
    assert _files.checksum(altered) != _files.checksum(text)
    quoted = [i for i, statement in enumerate(statements) if statement.startswith(("INSERT", "SELECT"))]
    if quoted:  # a string literal's text is a token's: changing it changes the checksum
        literal = [*statements]
        literal[quoted[0]] = literal[quoted[0]].replace("'", "'z", 1)
        assert _files.checksum(assemble(literal, separators)[0]) != _files.checksum(text)


NOISE = st.lists(
    st.sampled_from(list("ab;'$/*-\n\\() é") + ["$b$", "--", "/*", "*/", "BEGIN", "\\i x"]), max_size=30
).map("".join)


@given(st.one_of(scripts().map(lambda s: s[0]), NOISE), NOISE)
def test_reader_raises_only_its_own_error(tmp_path_factory: object, body: str, tail: str) -> None:
    directory = Path(tmp_path_factory.mktemp("p"))  # type: ignore[attr-defined]
    path = directory / "001_x.sql"
    path.write_text(body + tail + "\n-- ROLLBACK\n-- SELECT 1;\n", encoding="utf-8")
    try:
        (m,) = _files.load_path(str(path))
    except MigrationError as exc:
        assert exc.path and exc.path.startswith(str(path))
        return
    assert m.classification in ("SAFE", "BREAKING")
    assert m.detected_type in ("SAFE", "BREAKING")
