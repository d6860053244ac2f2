# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Each migration starts from a clean session, and the engine's timeouts hold for every statement.

One connection serves a whole batch: what a migration sets for the session (SET ROLE, SET SESSION
AUTHORIZATION, search_path, lock_timeout) must not reach the next migration nor the tracking rows.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from ansible_collections.tme.migrations.plugins.module_utils._engine import Engine, EngineError, Options
from ansible_collections.tme.migrations.plugins.plugin_utils import _files

from ..conftest import Database, write


def migration(body: str, rollback: str = "SELECT 1;") -> str:
    return f"BEGIN;\n{body}\nCOMMIT;\n-- ROLLBACK\n" + "".join(f"-- {line}\n" for line in rollback.splitlines())


def run(kwargs: dict[str, Any], directory: Path, **options: Any) -> Any:
    with Engine(kwargs, Options(**options)) as engine:
        return engine.apply(_files.load_directory(str(directory)))


def owner(db: Database, table: str) -> str:
    return str(db.scalar("SELECT tableowner FROM pg_tables WHERE schemaname = 'public' AND tablename = %s", (table,)))


def tracked_by(db: Database) -> dict[str, tuple[str, str]]:
    """version -> (applied_by of schema_migrations, actor of its succeeded audit row), read as the superuser."""
    with db.connect(admin=True) as conn:
        rows = conn.execute(
            "SELECT m.version, m.applied_by, a.actor FROM schema_migrations m"
            " JOIN schema_migrations_audit a ON a.version = m.version AND a.outcome = 'succeeded' ORDER BY 1"
        ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


@pytest.fixture
def other_role(db: Database) -> Iterator[str]:
    """A role the login role is a member of, allowed to create in public; dropped afterwards."""
    name = "other_" + uuid.uuid4().hex[:8]
    login = db.kwargs["user"]
    with db.connect(admin=True) as admin:
        admin.execute(f'CREATE ROLE "{name}" NOLOGIN')
        admin.execute(f'GRANT "{name}" TO "{login}"')
        admin.execute(f'GRANT CREATE, USAGE ON SCHEMA public TO "{name}"')
    try:
        yield name
    finally:
        with db.connect(admin=True) as admin:
            admin.execute(f'REASSIGN OWNED BY "{name}" TO "{login}"')
            admin.execute(f'DROP OWNED BY "{name}"')
            admin.execute(f'DROP ROLE "{name}"')


def test_set_role_and_search_path_stay_in_their_migration(db: Database, tmp_path: Path, other_role: str) -> None:
    d = tmp_path / "m"
    write(d, "001_a.sql", migration(f'SET ROLE "{other_role}";\nCREATE TABLE a (id int);\nSET search_path = nowhere;'))
    write(d, "002_b.sql", migration("CREATE TABLE b (id int);"))
    write(d, "003_c.sql", migration(f"SELECT set_config('role', '{other_role}', false);"))
    report = run(db.kwargs, d)
    login = db.kwargs["user"]
    assert [e["version"] for e in report.applied] == ["001_a", "002_b", "003_c"]
    assert owner(db, "a") == other_role  # within its migration, SET ROLE holds
    assert owner(db, "b") == login  # the next migration starts as the login role, on the usual search_path
    assert tracked_by(db) == {v: (login, login) for v in ("001_a", "002_b", "003_c")}


def test_set_session_authorization_stays_in_its_migration(db: Database, tmp_path: Path, other_role: str) -> None:
    """Only a superuser may change the session's user: the engine logs in as one here."""
    admin = db.server.admin_kwargs(db.name)
    d = tmp_path / "m"
    write(d, "001_a.sql", migration(f'SET SESSION AUTHORIZATION "{other_role}";\nCREATE TABLE a (id int);'))
    write(d, "002_b.sql", migration("CREATE TABLE b (id int);"))
    run(admin, d)
    assert owner(db, "a") == other_role
    assert owner(db, "b") == admin["user"]
    assert tracked_by(db) == {v: (admin["user"], admin["user"]) for v in ("001_a", "002_b")}


def test_a_stepwise_migration_keeps_its_settings_across_steps_not_beyond(
    db: Database, tmp_path: Path, other_role: str
) -> None:
    """Its steps run like psql -f runs the file (SET ROLE holds from one to the next); its progress
    and tracking rows are written by the login role; the next migration starts clean."""
    d = tmp_path / "m"
    write(
        d,
        "001_a.sql",
        f'SET ROLE "{other_role}";\nCREATE TABLE a (id int);\nCREATE INDEX CONCURRENTLY a_id ON a (id);\n'
        "CREATE TABLE a2 (id int);\nSET search_path = nowhere;\n-- ROLLBACK\n-- DROP TABLE a2, a;\n",
    )
    write(d, "002_b.sql", migration("CREATE TABLE b (id int);"))
    report = run(db.kwargs, d)
    login = db.kwargs["user"]
    assert [(e["version"], e["transactional"]) for e in report.applied] == [("001_a", False), ("002_b", True)]
    assert (owner(db, "a"), owner(db, "a2"), owner(db, "b")) == (other_role, other_role, login)
    assert tracked_by(db) == {v: (login, login) for v in ("001_a", "002_b")}
    assert db.scalar("SELECT count(*) FROM schema_migrations_progress") == 0


def test_a_rollback_does_not_leak_its_role(db: Database, tmp_path: Path, other_role: str) -> None:
    d = tmp_path / "m"
    write(d, "001_a.sql", migration("CREATE TABLE a (id int);", f'DROP TABLE a;\nSET ROLE "{other_role}";'))
    write(d, "002_b.sql", migration("CREATE TABLE b (id int);", "DROP TABLE b;"))
    run(db.kwargs, d)
    with Engine(db.kwargs, Options()) as engine:
        migrations = _files.load_directory(str(d))
        engine.rollback(migrations, steps=2)
        engine.apply(migrations)  # on the same connection, after the rollback's SET ROLE
    login = db.kwargs["user"]
    assert owner(db, "a") == login and owner(db, "b") == login
    rows = db.query("SELECT version, actor FROM schema_migrations_audit WHERE action = 'rollback' ORDER BY id")
    assert rows == [("002_b", login), ("001_a", login)]


# A migration that turns the engine's lock_timeout off, each in its own way. Such a file is refused unless
# its header accepts it (tests/integration/test_refusal.py): accepted here, the engine's timeouts still hold.
ALLOW_TIMEOUT = "-- Allow: override-timeout\n"
_TIMEOUT_OFF = (
    "SET lock_timeout = 0;",
    "SET LOCAL lock_timeout = 0;",
    "RESET ALL;",
    "SELECT set_config('lock_timeout', '0', false);",
)


@pytest.mark.parametrize("turn_off", _TIMEOUT_OFF)
def test_a_migration_cannot_turn_off_the_lock_timeout(db: Database, tmp_path: Path, turn_off: str) -> None:
    db.query("CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
    d = tmp_path / "m"
    write(d, "001_alter.sql", ALLOW_TIMEOUT + migration(f"{turn_off}\nALTER TABLE t ADD COLUMN note text;"))
    holder = db.connect(application_name="holder")
    holder.autocommit = False
    holder.execute("SELECT count(*) FROM t").fetchone()  # ACCESS SHARE until it ends
    outcome: list[Any] = []

    def migrate() -> None:
        try:
            outcome.append(run(db.kwargs, d, lock_timeout_ms=200, lock_retries=1, retry_delay=0.1))
        except Exception as exc:  # the failure is what this test checks
            outcome.append(exc)

    start = time.monotonic()
    runner = threading.Thread(target=migrate)
    runner.start()
    runner.join(timeout=30)
    waited = time.monotonic() - start
    holder.rollback()  # lets a migration that waits without a timeout finish, so the test ends
    holder.close()
    runner.join()
    assert waited < 30, "the migration waited for its lock without a lock_timeout"
    assert isinstance(outcome[0], EngineError), outcome
    assert "lock timeout" in outcome[0].message and "line 4" in outcome[0].message
    assert db.versions() == []


def test_a_migration_cannot_turn_off_the_statement_timeout(db: Database, tmp_path: Path) -> None:
    d = tmp_path / "m"
    write(d, "001_slow.sql", ALLOW_TIMEOUT + migration("SET statement_timeout = 0;\nSELECT pg_sleep(20);"))
    start = time.monotonic()
    with pytest.raises(EngineError) as failure:
        run(db.kwargs, d, statement_timeout_ms=300)
    assert time.monotonic() - start < 15
    assert "statement timeout" in failure.value.message and "line 4" in failure.value.message


def test_a_migrations_advisory_lock_ends_with_it_the_runners_lock_stays(db: Database, tmp_path: Path) -> None:
    """The clean session releases the session advisory locks a migration took on the engine's connection;
    the runner's own lock is held by another connection and stays for the whole batch."""
    d = tmp_path / "m"
    write(d, "001_a.sql", migration("SELECT pg_advisory_lock(4242);\nCREATE TABLE a (id int);"))
    check = (
        "DO $$ BEGIN\n"
        "IF EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) THEN\n"
        "  RAISE EXCEPTION 'the advisory lock of 001_a is still held';\nEND IF;\n"
        "IF NOT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
        " AND pid <> pg_backend_pid()) THEN\n  RAISE EXCEPTION 'the runner lock is gone';\nEND IF;\nEND $$;"
    )
    write(d, "002_b.sql", migration(check))
    report = run(db.kwargs, d)
    assert [e["version"] for e in report.applied] == ["001_a", "002_b"]
