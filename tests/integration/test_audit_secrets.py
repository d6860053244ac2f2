# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A password literal a migration was allowed to hold (``-- Allow: password-literal``) stays out of
what the failed run writes to the database: the audit table's error and detail, the progress table's
error, the tracking rows; and out of the module's result and every ansible-runner artifact.

Three ways a failure can quote it: PostgreSQL's own message (a cast of a connection string), our
message quoting the failing statement (``statement: CREATE ROLE ... PASSWORD '...'``), in a
transaction and outside one (a migration with CREATE INDEX CONCURRENTLY writes the progress table).
And the way it must not: a later statement fails after the one with the literal ran.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
from psycopg import sql

from ansible_collections.tme.migrations.plugins.module_utils._engine import Engine, EngineError, Options
from ansible_collections.tme.migrations.plugins.plugin_utils import _files
from ansible_collections.tme.migrations.plugins.plugin_utils._migration_files import redactor_for

from ..conftest import Database
from .test_modules import APPLY, hostvars

SECRET = "S3cret-literal"


@pytest.fixture
def role(db: Database) -> Iterator[str]:
    """A role name of this test, and the application role allowed to create roles while it runs
    (roles belong to the whole server: the role is dropped, the privilege taken back, afterwards)."""
    name = "audit_x_" + uuid.uuid4().hex[:10]
    app = db.kwargs["user"]
    with db.connect(admin=True) as admin:
        admin.execute(sql.SQL("ALTER ROLE {} CREATEROLE").format(sql.Identifier(app)))
    try:
        yield name
    finally:
        with db.connect(admin=True) as admin:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
            admin.execute(sql.SQL("ALTER ROLE {} NOCREATEROLE").format(sql.Identifier(app)))


def later_statement_fails(role: str) -> str:
    return f"""\
-- Allow: password-literal, cluster-wide
CREATE TABLE audit_a (id int);
CREATE ROLE {role} LOGIN PASSWORD '{SECRET}';
SELECT 1 / 0;

-- ROLLBACK
-- DROP ROLE {role};
-- DROP TABLE audit_a;
"""


def role_statement_fails(role: str) -> str:
    return f"""\
-- Allow: password-literal, cluster-wide
CREATE TABLE audit_b (id int);
CREATE ROLE {role} LOGIN PASSWORD '{SECRET}';

-- ROLLBACK
-- DROP ROLE {role};
-- DROP TABLE audit_b;
"""


def message_quotes_it(role: str) -> str:
    del role
    return f"""\
-- Allow: password-literal, cluster-wide
CREATE TABLE audit_c (id int);
SELECT 'host=db user=app password={SECRET}'::int;

-- ROLLBACK
-- DROP TABLE audit_c;
"""


def stepwise_role_statement_fails(role: str) -> str:
    return f"""\
-- Allow: password-literal, cluster-wide
CREATE TABLE audit_d (id int);
CREATE INDEX CONCURRENTLY audit_d_id ON audit_d (id);
CREATE ROLE {role} LOGIN PASSWORD '{SECRET}';

-- ROLLBACK
-- DROP ROLE {role};
-- DROP INDEX CONCURRENTLY audit_d_id;
-- DROP TABLE audit_d;
"""


def _artifacts(run: Any) -> list[tuple[str, str]]:
    """The run's output, its results and every ansible-runner artifact (events, stdout), by name."""
    texts = [("stdout", run.stdout), ("results", repr(run.results))]
    texts.extend((str(p), p.read_text(errors="replace")) for p in run.artifacts.rglob("*") if p.is_file())
    return texts


def _rows(db: Database) -> list[tuple[str, str]]:
    """Every row of the tracking tables, as text, by table."""
    texts: list[tuple[str, str]] = []
    present = db.tables()
    with db.connect() as conn:
        for table in ("schema_migrations", "schema_migrations_audit", "schema_migrations_progress"):
            if table in present:
                query = sql.SQL("SELECT t::text FROM {} AS t").format(sql.Identifier(table))
                texts.extend((table, str(row[0])) for row in conn.execute(query).fetchall())
    return texts


CASES = {
    "a later statement fails": (later_statement_fails, False, "line 4", "division by zero"),
    "the statement with the literal fails": (role_statement_fails, True, "line 3", "already exists"),
    "PostgreSQL's message quotes it": (message_quotes_it, False, "line 3", "invalid input syntax"),
    "outside a transaction, the statement with it fails": (
        stepwise_role_statement_fails,
        True,
        "line 4",
        "already exists",
    ),
}


def _prepare(case: str, db: Database, role: str, tmp_path: Path) -> Path:
    """The case's migration directory; the role created first when the case's CREATE ROLE is to fail."""
    make, exists, _line, _error = CASES[case]
    if exists:
        with db.connect(admin=True) as admin:
            admin.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(role)))
    d = tmp_path / "migrations"
    d.mkdir()
    (d / "001_secret.sql").write_text(make(role))
    return d


def _check_database(case: str, db: Database, role: str) -> list[tuple[str, str]]:
    """The failure is audited where the case means it to fail, nothing of it stayed; the rows as text."""
    _make, exists, line, error = CASES[case]
    audit = db.query("SELECT outcome, error, detail FROM schema_migrations_audit ORDER BY id")
    assert [r[0] for r in audit] == ["failed"], audit
    assert f"001_secret.sql {line}" in audit[0][1] and error in audit[0][1], audit  # the row says why
    if not exists:
        with db.connect(admin=True) as admin:
            assert admin.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (role,)).fetchone() == (0,)
    return _rows(db)


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "shipped"])
@pytest.mark.parametrize("case", list(CASES))
def test_a_failed_run_writes_no_password_literal(
    case: str, direct: bool, db: Database, role: str, tmp_path: Path, playbook: Any
) -> None:
    """The whole path: the action plugin, the module, the engine."""
    d = _prepare(case, db, role, tmp_path)
    run = playbook(APPLY, hostvars(db, d, tme_migrations_direct=direct))
    assert run.rc != 0, run.stdout
    _make, _exists, line, error = CASES[case]
    msg = run.result("Apply migrations")["msg"]
    assert f"001_secret.sql {line}" in msg and error in msg, msg  # it failed where the case means to
    for name, text in _check_database(case, db, role) + _artifacts(run):
        assert SECRET not in text, f"the password literal is in {name}: {text!r}"


@pytest.mark.parametrize("case", list(CASES))
def test_the_engine_keeps_the_hidden_literals_out_of_audit_and_progress(
    case: str, db: Database, role: str, tmp_path: Path
) -> None:
    """The engine given the literals the action plugin hides (redactor_for, as it builds it)."""
    d = _prepare(case, db, role, tmp_path)
    migrations = _files.load_directory(str(d))
    hidden = [secret for secret, _mask in redactor_for(migrations).secrets]
    assert any(SECRET in text for text in hidden)
    engine = Engine(db.kwargs, Options())
    engine.tracking.hiding(hidden)
    with pytest.raises(EngineError) as info:
        with engine:
            engine.apply(migrations)
    _make, _exists, line, error = CASES[case]
    assert f"001_secret.sql {line}" in info.value.message and error in info.value.message
    rows = _check_database(case, db, role)
    if CASES[case][0] is stepwise_role_statement_fails:  # two statements committed: the progress row says so
        assert [name for name, _text in rows].count("schema_migrations_progress") == 1, rows
    for name, text in rows:
        assert SECRET not in text, f"the password literal is in {name}: {text!r}"
    if CASES[case][1]:  # the CREATE ROLE failed: its statement is quoted, masked as the module's result shows it
        audit_error = db.scalar("SELECT error FROM schema_migrations_audit")
        assert "PASSWORD '***'" in audit_error, audit_error
