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
* a failure names the statement (file and line come from it).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from ansible_collections.tme.migrations.plugins.module_utils._model import Script, Statement

try:
    import psycopg
    from psycopg import sql
except ImportError:  # pragma: no cover - the module reports the missing library
    psycopg = None  # type: ignore[assignment]


class StatementFailed(Exception):
    """PostgreSQL refused a statement (or the tracking writes or COMMIT around it: statement None)."""

    def __init__(self, exc: Exception, statement: Statement | None) -> None:
        super().__init__(str(exc))
        self.exc = exc
        self.statement = statement


def ms_setting(value: int) -> str:
    return f"{int(value)}ms"


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

    def __init__(self, conn: Any, lock_timeout_ms: int = 5000, statement_timeout_ms: int = 0) -> None:
        self.conn = conn
        self.lock_timeout_ms = lock_timeout_ms
        self.statement_timeout_ms = statement_timeout_ms

    def begin(self, durable: bool) -> Any:
        """BEGIN and the settings of one transaction, as one query (one round trip)."""
        return sql.SQL(
            "BEGIN; SET LOCAL lock_timeout = {}; SET LOCAL statement_timeout = {}; SET LOCAL synchronous_commit = {}"
        ).format(
            sql.Literal(ms_setting(self.lock_timeout_ms)),
            sql.Literal(ms_setting(self.statement_timeout_ms)),
            sql.Literal("on" if durable else "off"),
        )

    def settings(self, local: bool, durable: bool = True) -> None:
        """The timeouts (and commit durability) for the transaction (local) or the session."""
        self.conn.execute(
            "SELECT set_config('lock_timeout', %s, %s), set_config('statement_timeout', %s, %s),"
            " set_config('synchronous_commit', %s, %s)",
            (
                ms_setting(self.lock_timeout_ms),
                local,
                ms_setting(self.statement_timeout_ms),
                local,
                "on" if durable else "off",
                local,
            ),
        )

    def reset(self) -> None:
        """The session's timeouts back to the server's after statements that ran outside a transaction."""
        if not self.conn.closed:
            self.conn.execute("RESET lock_timeout; RESET statement_timeout; RESET synchronous_commit")

    def run(self, statements: Sequence[Statement]) -> None:
        for statement in statements:
            try:
                self.conn.execute(statement.sql)
            except psycopg.Error as exc:
                raise StatementFailed(exc, statement) from exc

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

    def in_transaction(self, statements: Sequence[Statement], then: Callable[[], Any] | None = None) -> None:
        """The statements, then ``then`` (tracking writes), in one transaction under the timeouts."""

        def body() -> None:
            self.settings(local=True)
            self.run(statements)
            if then is not None:
                then()

        self.transaction(body)

    def outside_transaction(self, statement: Statement) -> None:
        """One statement that cannot run in a transaction, under the session's timeouts."""
        try:
            self.settings(local=False)
        except psycopg.Error as exc:
            raise StatementFailed(exc, statement) from exc
        self.run([statement])

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
                    self.in_transaction(step)
                else:
                    self.outside_transaction(step[0])
                committed += len(step)
                if done is not None:
                    done(committed)
        finally:
            self.reset()
