# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The transactional hot path: BEGIN and the transaction's settings share the first statement's round
trip (N + 1 round trips for N statements), and an error still names the statement's own line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ansible_collections.tme.migrations.plugins.module_utils._engine import Engine, EngineError, Options
from ansible_collections.tme.migrations.plugins.plugin_utils import _files

from ..conftest import Database, write


def migration(body: str, header: str = "") -> str:
    """The guide's template: the body starts on line 3 (line 4 with a header)."""
    return f"-- Type: SAFE\n{header}BEGIN;\n{body}\nCOMMIT;\n-- ROLLBACK\n-- SELECT 1;\n"


def apply(db: Database, directory: Path) -> Any:
    with Engine(db.kwargs, Options()) as engine:
        return engine.apply(_files.load_directory(str(directory)))


# The failing column sits on the third line of a statement that goes on for several lines after it:
# an error position counted without the opening sent before the first statement lands lines lower.
_SELECT = "SELECT 1 AS id,\n       {column} AS b,\n" + "".join(f"       {i} AS c{i},\n" for i in range(8))
_FIRST = migration("CREATE TABLE x AS\n" + _SELECT.format(column="nope") + "       0 AS z;")
_LATER = migration("CREATE TABLE y (id int);\nCREATE TABLE x AS\n" + _SELECT.format(column="nope") + "       0 AS z;")


@pytest.mark.parametrize(("text", "line"), [(_FIRST, 5), (_LATER, 6)], ids=["first statement", "later statement"])
def test_an_error_names_the_statements_own_line(db: Database, tmp_path: Path, text: str, line: int) -> None:
    d = tmp_path / "m"
    write(d, "001_ok.sql", migration("CREATE TABLE ok (id int);"))
    write(d, "016_x.sql", text)
    with pytest.raises(EngineError) as failure:
        apply(db, d)
    headline = failure.value.message.splitlines()[0]
    assert headline == f'016_x.sql line {line}: ERROR: column "nope" does not exist (SQLSTATE 42703)'
    assert db.versions() == ["001_ok"] and "x" not in db.tables() and "y" not in db.tables()
    error = db.scalar("SELECT error FROM schema_migrations_audit WHERE version = '016_x' AND outcome = 'failed'")
    assert error.splitlines()[0] == headline


class _Recorder:
    """The engine's connection, with the text of every query it sends kept."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.sent: list[str] = []

    def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        self.sent.append(query if isinstance(query, str) else query.as_string(self.conn))
        return self.conn.execute(query, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


def test_n_statements_take_n_plus_one_round_trips_the_last_commit_durable(db: Database, tmp_path: Path) -> None:
    d = tmp_path / "m"
    write(d, "001_a.sql", migration("CREATE TABLE a (id int);"))
    body = "CREATE TABLE b (id int);\nSET lock_timeout = 0;\nSELECT 1;"
    write(d, "002_b.sql", migration(body, header="-- Allow: override-timeout\n"))
    with Engine(db.kwargs, Options()) as engine:
        migrations = _files.load_directory(str(d))
        recorder = _Recorder(engine.conn)
        engine.conn = engine.executor.conn = recorder
        report = engine.apply(migrations)
    assert [e["version"] for e in report.applied] == ["001_a", "002_b"]
    guard = "SET LOCAL lock_timeout = '100ms'; SET LOCAL statement_timeout = '0ms'"
    sent = [q for q in recorder.sent if guard in q]  # the migrations' round trips, not the planning's reads
    runs = [sent[:2], sent[2:]]
    assert [len(r) for r in runs] == [2, 4], sent
    for run, durable in zip(runs, ("off", "on")):
        assert run[0].startswith(f"BEGIN; {guard}; SET LOCAL synchronous_commit = '{durable}';\nCREATE TABLE ")
        assert all(q.endswith("\n;" + guard) for q in run[:-1])  # the migration's SET never reaches its next one
        assert run[-1].startswith("RESET SESSION AUTHORIZATION;") and run[-1].endswith("; COMMIT")
        assert f"{guard}; SET LOCAL synchronous_commit = '{durable}'; WITH audit AS" in run[-1]
    assert db.versions() == ["001_a", "002_b"]
