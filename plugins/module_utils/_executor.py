# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one way statements of a migration reach PostgreSQL, for the engine (apply, rollback, with
their tracking rows) and the rollback rehearsal alike:

* a script whose statements can all run in a transaction runs in one, under the engine's
  ``lock_timeout`` and ``statement_timeout`` (``SET LOCAL``);
* otherwise it runs in steps: transactional statements in a row share one transaction, a statement
  that cannot run in one (``CREATE INDEX CONCURRENTLY``, ``VACUUM``, ...) is a step of its own, run
  with the timeouts set for the session;
* a failure names the statement (file and line come from it);
* the engine's timeouts hold for every statement: in a transaction they are set again
  (``SET LOCAL``) in the round trip of each statement, after it, so a migration's own
  ``SET lock_timeout = 0`` or ``RESET ALL`` never reaches its next statement;
* each script leaves a clean session (:data:`CLEAN`) when it ends: its ``SET ROLE``, ``SET SESSION
  AUTHORIZATION``, ``SET search_path`` and other settings, temporary tables, cursors, LISTENs and
  session advisory locks are gone before the tracking rows are written, and the next script starts
  as if it had a session of its own. ``DISCARD ALL`` itself is not used: it cannot run in a
  transaction (the tracking row shares the migration's) and would drop psycopg's prepared
  statements. The runner's advisory lock is not on this connection (``_tracking.RunnerLock`` holds
  it on one of its own), so ``pg_advisory_unlock_all()`` here never releases it.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, Callable, NamedTuple, Sequence

from ansible_collections.tme.migrations.plugins.module_utils._model import Script, Statement

try:
    import psycopg
    from psycopg import sql
except ImportError:  # pragma: no cover - the module reports the missing library
    psycopg = None  # type: ignore[assignment]


class StatementFailed(Exception):
    """PostgreSQL refused a statement (or the tracking writes or COMMIT around it: statement None)."""

    def __init__(self, exc: Exception, statement: Statement | None, offset: int = 0) -> None:
        super().__init__(str(exc))
        self.exc = exc
        self.statement = statement
        # Characters sent before the statement in its query (the transaction's opening: begin_and_run):
        # PostgreSQL's error position counts them, the statement's line must not.
        self.offset = offset


# What a script may have changed in its session, undone; valid in a transaction and outside one.
# RESET ALL keeps the connection's own startup settings (application_name, options=-c ...): they
# are the values RESET returns to. It resets neither role nor session authorization, hence both.
CLEAN = (
    "RESET SESSION AUTHORIZATION; RESET ROLE; RESET ALL; CLOSE ALL; UNLISTEN *;"
    " SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES"
)

# Within a script that runs in steps, its settings carry from one step to the next (as with
# psql -f); its progress row in between is written as the login role, for that transaction only.
AS_LOGIN = "SET LOCAL SESSION AUTHORIZATION DEFAULT; SET LOCAL ROLE NONE; SET LOCAL search_path = pg_catalog"

# Statements outside a transaction that take only SHARE UPDATE EXCLUSIVE: waiting for it (or, for
# CREATE INDEX CONCURRENTLY, for older transactions) queues no reader or writer of the table.
_CONCURRENT_KINDS = ("IndexStmt", "DropStmt", "ReindexStmt", "AlterTableStmt")


def ms_setting(value: int) -> str:
    return f"{int(value)}ms"


def waits_harmlessly(statement: Statement) -> bool:
    """A ``CONCURRENTLY`` statement: its lock wait blocks no application query, and a short
    lock_timeout would only make it fail after its work (an invalid index to drop and rebuild)."""
    return (
        not statement.transactional and statement.kind in _CONCURRENT_KINDS and "CONCURRENTLY" in statement.sql.upper()
    )


class _Texts(NamedTuple):
    """The constant SQL of an executor, composed once and rendered for its connection."""

    guard: str
    begin: dict[bool, str]  # by durable
    clean: dict[bool, str]


def steps(statements: Sequence[Statement]) -> list[list[Statement]]:
    """Transactional statements in a row form one step; one that cannot run in a transaction is alone."""
    grouped: list[list[Statement]] = []
    for statement in statements:
        if statement.transactional and grouped and grouped[-1][0].transactional:
            grouped[-1].append(statement)
        else:
            grouped.append([statement])
    return grouped


class Executor:
    """Runs statements on one connection (autocommit; transactions are opened here)."""

    def __init__(
        self,
        conn: Any,
        lock_timeout_ms: int = 100,
        statement_timeout_ms: int = 0,
        concurrent_lock_timeout_ms: int | None = None,
    ) -> None:
        self.conn = conn
        self.lock_timeout_ms = lock_timeout_ms
        self.statement_timeout_ms = statement_timeout_ms
        # lock_timeout of a CONCURRENTLY statement (waits_harmlessly); None: lock_timeout_ms
        self.concurrent_lock_timeout_ms = concurrent_lock_timeout_ms

    @cached_property
    def _texts(self) -> _Texts:
        """guard, begin and clean composed once (psycopg.sql, the values as literals), rendered as text for
        this executor's connection: no composition per statement."""
        guard = sql.SQL("SET LOCAL lock_timeout = {}; SET LOCAL statement_timeout = {}").format(
            sql.Literal(ms_setting(self.lock_timeout_ms)), sql.Literal(ms_setting(self.statement_timeout_ms))
        )
        commit = {durable: sql.Literal("on" if durable else "off") for durable in (True, False)}
        begin = {d: sql.SQL("BEGIN; {}; SET LOCAL synchronous_commit = {}").format(guard, c) for d, c in commit.items()}
        clean = {
            d: sql.SQL("{}; {}; SET LOCAL synchronous_commit = {}").format(sql.SQL(CLEAN), guard, c)
            for d, c in commit.items()
        }
        return _Texts(
            guard.as_string(self.conn),
            {d: q.as_string(self.conn) for d, q in begin.items()},
            {d: q.as_string(self.conn) for d, q in clean.items()},
        )

    def guard(self) -> str:
        """The engine's timeouts for the rest of the transaction, sent after each statement."""
        return self._texts.guard

    def begin(self, durable: bool) -> str:
        """BEGIN and the settings of one transaction, as one query (begin_and_run: with the first statement)."""
        return self._texts.begin[durable]

    def clean(self, durable: bool = True) -> str:
        """The clean session (CLEAN), then the engine's settings again for the rest of the transaction
        (the tracking writes): to send in one round trip with them, before COMMIT."""
        return self._texts.clean[durable]

    def settings(self, local: bool, durable: bool = True, lock_timeout_ms: int | None = None) -> None:
        """The timeouts (and commit durability) for the transaction (local) or the session."""
        lock_ms = self.lock_timeout_ms if lock_timeout_ms is None else lock_timeout_ms
        self.conn.execute(
            "SELECT set_config('lock_timeout', %s, %s), set_config('statement_timeout', %s, %s),"
            " set_config('synchronous_commit', %s, %s)",
            (
                ms_setting(lock_ms),
                local,
                ms_setting(self.statement_timeout_ms),
                local,
                "on" if durable else "off",
                local,
            ),
        )

    def reset(self) -> None:
        """A clean session (CLEAN: also the timeouts back to the server's) after statements that ran
        outside a transaction, or after a script whose committed steps may have changed it."""
        if not self.conn.closed and self.conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            self.conn.execute(CLEAN)

    def run(self, statements: Sequence[Statement], guarded: bool = True) -> None:
        """Each statement in one round trip; ``guarded`` (in a transaction): the engine's timeouts set
        again after it in the same round trip (after, not before: PostgreSQL's error position, hence
        the line reported, stays the statement's; a newline ends a trailing ``--`` comment)."""
        guard = "\n;" + self.guard() if guarded else ""
        for statement in statements:
            self._send(statement.sql + guard, statement)

    def begin_and_run(self, statements: Sequence[Statement], durable: bool) -> None:
        """BEGIN and the transaction's settings (begin), then the statements as ``run`` sends them, the
        opening in the round trip of the first one (alone when there is none): N round trips, not N + 1.
        PostgreSQL's error position counts the opening's characters: the first statement's failure
        carries them (``offset``), its line stays the statement's."""
        opening = self.begin(durable)
        if not statements:
            self._send(opening, None)
            return
        opening += ";\n"
        self._send(opening + statements[0].sql + "\n;" + self.guard(), statements[0], len(opening))
        self.run(statements[1:])

    def _send(self, query: str, statement: Statement | None, offset: int = 0) -> None:
        """One round trip (simple query protocol: the query is SQL text without parameters)."""
        try:
            self.conn.execute(query)
        except psycopg.Error as exc:
            raise StatementFailed(exc, statement, offset) from exc

    def transaction(self, body: Callable[[], Any]) -> Any:
        """Run body in one transaction; an error of the tracking writes or of COMMIT itself (a deferred
        constraint, a lost connection) is reported like a statement's."""
        try:
            with self.conn.transaction():
                return body()
        except StatementFailed:
            raise
        except psycopg.Error as exc:
            raise StatementFailed(exc, None) from exc

    def in_transaction(
        self, statements: Sequence[Statement], then: Callable[[], Any] | None = None, last: bool = True
    ) -> None:
        """The statements, then ``then`` (tracking writes), in one transaction under the timeouts.

        ``last``: the script ends here, a clean session (CLEAN) comes before ``then``; otherwise (a step
        of a script run in steps) the script's settings carry on to its next step, and ``then`` runs as
        the login role for this transaction only (AS_LOGIN)."""

        def body() -> None:
            self.settings(local=True)
            self.run(statements)
            self.conn.execute(self.clean() if last else AS_LOGIN)
            if then is not None:
                then()

        self.transaction(body)

    def as_login(self, then: Callable[[], Any]) -> Any:
        """``then`` (a progress row between two steps) in a transaction of its own, as the login role,
        the script's session settings kept for its next step."""

        def body() -> Any:
            self.conn.execute(AS_LOGIN)
            return then()

        return self.transaction(body)

    def outside_transaction(self, statement: Statement) -> None:
        """One statement that cannot run in a transaction, under the session's timeouts (alone in its
        query: PostgreSQL refuses CONCURRENTLY in a multi-statement one)."""
        try:
            self.settings(local=False, lock_timeout_ms=self.lock_timeout_for(statement))
        except psycopg.Error as exc:
            raise StatementFailed(exc, statement) from exc
        self.run([statement], guarded=False)

    def lock_timeout_for(self, statement: Statement) -> int:
        if self.concurrent_lock_timeout_ms is not None and waits_harmlessly(statement):
            return self.concurrent_lock_timeout_ms
        return self.lock_timeout_ms

    def run_script(self, script: Script, done: Callable[[int], None] | None = None) -> None:
        """A whole script as the engine runs it, without tracking: in one transaction, or step by
        step; ``done`` is told how many statements have committed after each step."""
        statements = [s for s in script.statements if not s.tracking]
        if script.transactional:
            self.in_transaction(statements)
            return
        committed = 0
        try:
            for step in steps(statements):
                if step[0].transactional:
                    self.in_transaction(step, last=False)
                else:
                    self.outside_transaction(step[0])
                committed += len(step)
                if done is not None:
                    done(committed)
        finally:
            self.reset()
