# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Rollback rehearsal: prove each pending migration's rollback restores the schema, on a scratch copy.

For each migration, in order, on a scratch database (never the source itself): snapshot the
schema, apply forward, apply the rollback, compare with the snapshot, apply forward again and
compare with the first forward. The scratch database starts as a copy of the source's schema
(pg_dump --schema-only, pg_restore) or empty, and is always dropped, also on failure.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ansible_collections.tme.migrations.plugins.module_utils import _connection
from ansible_collections.tme.migrations.plugins.module_utils._engine import describe_error
from ansible_collections.tme.migrations.plugins.module_utils._executor import Executor, StatementFailed
from ansible_collections.tme.migrations.plugins.module_utils._model import Migration, Script, refusal_message
from ansible_collections.tme.migrations.plugins.module_utils._pgtools import PgTools, ToolError
from ansible_collections.tme.migrations.plugins.module_utils._schema import Snapshot, compare, snapshot

try:
    import psycopg
    from psycopg import sql
except ImportError:  # pragma: no cover - reported by the module
    pass


class RehearsalError(Exception):
    """The rehearsal could not run at all (no scratch database, no copy of the schema)."""


@dataclass
class Outcome:
    version: str
    passed: bool = False
    step: str = ""  # where it stopped: forward, rollback, compare, forward again
    error: str | None = None
    differences: list[dict[str, Any]] = field(default_factory=list)
    timings_ms: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "passed": self.passed,
            "failed_step": None if self.passed else self.step,
            "error": self.error,
            "differences": self.differences,
            "timings_ms": self.timings_ms,
        }


def scratch_name(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"


def clone_schema(tools: PgTools, scratch: str) -> None:
    """pg_dump --schema-only of the source, restored into the (empty) scratch database, with the client
    programs of the one client layer: on the host, or inside the database container (docker exec)."""
    options = ["--no-owner", "--no-privileges"]
    try:
        dump = tools.capture("pg_dump", ["--schema-only", "--format=custom", *options])
    except ToolError as exc:
        raise RehearsalError(f"copying the schema failed: {exc}") from None
    try:
        tools.on(scratch).capture("pg_restore", [*options, "--exit-on-error"], data=dump)
    except ToolError as exc:
        raise RehearsalError(f"restoring the schema into the scratch database failed: {exc}") from None


# The scratch database is private: no application query queues behind a rehearsed statement, so
# it may wait longer than the engine's 100 ms; and autovacuum, which PostgreSQL cancels for a
# conflicting lock only after deadlock_timeout (1 s by default), never makes it fail.
LOCK_TIMEOUT_MS = 5000


def _execute(conn: Any, script: Script) -> None:
    """Run a script through the engine's executor: in one transaction, or step by step when it can't be.

    Temporary tables a script leaves behind are discarded first, as if each script had a session of its
    own; the executor also leaves a clean session after each script (its SET ROLE, search_path, ...).
    """
    conn.execute("DISCARD TEMP")
    committed = [0]
    try:
        Executor(conn, LOCK_TIMEOUT_MS).run_script(script, done=lambda count: committed.__setitem__(0, count))
    except StatementFailed as failed:
        raise _Failed(
            describe_error(failed.exc, failed.statement, script.path, failed.offset), partial=committed[0] > 0
        ) from None


class _Failed(Exception):
    def __init__(self, message: str, partial: bool) -> None:
        super().__init__(message)
        self.message = message
        self.partial = partial  # some statements of a non-transactional script ran


class Rehearsal:
    """Runs forward / rollback / forward for each migration on one scratch database."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def _timed(self, outcome: Outcome, step: str, action: Callable[[], Any]) -> Any:
        outcome.step = step
        start = time.monotonic()
        try:
            return action()
        finally:
            outcome.timings_ms[step] = int(round((time.monotonic() - start) * 1000))

    def one(self, m: Migration) -> tuple[Outcome, bool]:
        """The outcome, and whether later migrations can still be rehearsed on this database.

        A transactional migration makes its round trip inside one transaction that is then rolled
        back, and is applied once more for real: a bad rollback cannot spoil the later migrations.
        Not so a migration that adds an enum value: a new value cannot be used before its
        transaction commits, so the round trip runs as the engine would run it, step by step.
        """
        outcome = Outcome(m.version)
        scripts = [m.forward] + ([m.rollback] if m.rollback else [])
        isolated = all(s.transactional for s in scripts) and not any(
            st.kind == "AlterEnumStmt" for s in scripts for st in s.statements
        )
        if not isolated:
            return outcome, self._round_trip(m, outcome)
        with self.conn.transaction(force_rollback=True):
            self._round_trip(m, outcome)
        if outcome.step == "forward" and not outcome.passed:
            return outcome, False
        try:
            _execute(self.conn, m.forward)
        except _Failed as exc:  # pragma: no cover - it just ran in the round trip
            outcome.passed, outcome.error = False, exc.message
            return outcome, False
        return outcome, True

    def _round_trip(self, m: Migration, outcome: Outcome) -> bool:
        """Forward, rollback, forward again with snapshots; whether the database is left after forward."""
        before = snapshot(self.conn)
        try:
            self._timed(outcome, "forward", lambda: _execute(self.conn, m.forward))
        except _Failed as exc:
            outcome.error = exc.message
            return False
        after = snapshot(self.conn)
        if m.rollback_error or m.rollback is None:
            outcome.step = "rollback"
            outcome.error = m.rollback_error or f"{m.path}: no rollback SQL"
            return True
        rollback = m.rollback
        try:
            self._timed(outcome, "rollback", lambda: _execute(self.conn, rollback))
        except _Failed as exc:
            outcome.error = exc.message
            return not exc.partial
        restored = snapshot(self.conn)
        outcome.differences = compare(before, restored, "after the rollback")
        again_error = None
        try:
            self._timed(outcome, "forward again", lambda: _execute(self.conn, m.forward))
        except _Failed as exc:
            again_error = "the migration does not apply again after its rollback: " + exc.message
        if again_error is None:
            outcome.differences += compare(after, snapshot(self.conn), "after applying the migration again")
        if outcome.differences:
            outcome.step = "compare"
            first = outcome.differences[0]["message"]
            more = len(outcome.differences) - 1
            outcome.error = f"the rollback does not restore the schema: {first}" + (
                f" (and {more} more difference{'s' if more > 1 else ''})" if more else ""
            )
            if again_error:
                outcome.error += "; " + again_error
        elif again_error:
            outcome.error = again_error
        else:
            outcome.passed = True
        # After a failed second forward the database is not where later migrations start.
        return again_error is None

    def run(self, migrations: list[Migration]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for m in migrations:
            outcome, go_on = self.one(m)
            outcomes.append(outcome)
            if not go_on:
                break
        return outcomes


def rehearse(
    source: dict[str, Any],
    migrations: list[Migration],
    tools: PgTools | None = None,
    prefix: str = "tme_rehearsal",
) -> tuple[str, list[Outcome]]:
    """``tools`` (the source's client programs) copies its schema into the scratch database; without
    them the scratch database starts empty (the whole history is rehearsed)."""
    """Create the scratch database, copy the source's schema into it, rehearse, drop it whatever happens."""
    # Error findings the file's "-- Allow:" header does not accept are refused first: the scratch database
    # shares the real server, and a cluster-wide statement (ALTER SYSTEM, CREATE ROLE, ...) would change it.
    refused = refusal_message(migrations, "refused, nothing was rehearsed")
    if refused:
        raise RehearsalError(refused)
    name = scratch_name(prefix)
    scratch = dict(source, dbname=name)
    try:
        with _connection.connect(source) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise RehearsalError(f"cannot create the scratch database {name}: {str(exc).strip()}") from None
    try:
        if tools is not None:
            clone_schema(tools, name)
        with _connection.connect(scratch) as conn:
            return name, Rehearsal(conn).run(migrations)
    finally:
        with _connection.connect(source) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def snapshot_of(kwargs: dict[str, Any]) -> Snapshot:
    """The schema snapshot of a database (for tests and reports)."""
    with _connection.connect(kwargs) as conn:
        return snapshot(conn)
