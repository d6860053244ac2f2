# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Apply and roll back migrations on one database.

* One connection for the migrations, one for the runner lock (and for writing a failure's audit
  row when the migration connection is broken).
* A transactional migration runs with its tracking row and audit row in ONE transaction, under
  lock_timeout and statement_timeout, retried with backoff on lock_not_available: a short
  lock_timeout (100 ms) and many retries with growing sleeps (0.1 s doubling up to 5 s, about 78 s
  in all by default), so that the queries queued behind a waiting ALTER never wait long, and the
  migration still gets its lock when the blocker leaves (GitLab's "lock retries").
* Each migration starts from a clean session and its tracking rows are written by the login role
  with the server's settings: ``_executor.CLEAN`` runs after its statements, in its transaction
  (a stepwise migration's settings carry from step to step; its progress rows are written as the
  login role, ``_executor.AS_LOGIN``).
* A migration with statements that cannot run in a transaction (CREATE INDEX CONCURRENTLY, ...)
  records its progress in schema_migrations_progress after every step, so an interruption is
  visible and the next run resumes; an invalid index left by an interrupted build is dropped
  and rebuilt.
* All but the last migration of a batch commit with synchronous_commit off; the last one, or
  the audit row of a failure, is a synchronous commit that makes everything before it durable.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable

from ansible_collections.tme.migrations.plugins.module_utils import _connection
from ansible_collections.tme.migrations.plugins.module_utils._executor import (
    Executor,
    StatementFailed,
    steps,
    waits_harmlessly,
)
from ansible_collections.tme.migrations.plugins.module_utils._model import (
    SAFE,
    Migration,
    MigrationError,
    Script,
    Statement,
    refusal_message,
)
from ansible_collections.tme.migrations.plugins.module_utils._tracking import (
    AppliedRow,
    RunnerLock,
    Tracking,
    statements_hash,
)
from ansible_collections.tme.migrations.plugins.module_utils._versions import sort_key
from ansible_collections.tme.migrations.plugins.module_utils._volatility import settle

try:
    import psycopg
    from psycopg import errors as pgerrors
    from psycopg import sql
except ImportError:  # pragma: no cover - the module reports the missing library
    psycopg = None  # type: ignore[assignment]


@dataclass
class Options:
    lock_timeout_ms: int = 100
    statement_timeout_ms: int = 0
    lock_retries: int = 20
    retry_delay: float = 0.1  # the first sleep after a lock timeout; doubled each time, at most retry_delay_max
    retry_delay_max: float = 5.0
    runner_lock_timeout: float = 300.0
    allow_drift: bool = False
    accept_drift: tuple[str, ...] = ()  # versions whose edited file is accepted as applied, audited
    only_safe: bool = False
    up_to: str | None = None  # a release's last migration: later ones stay pending (report.beyond)
    tracking_schema: str = "public"
    tracking_table: str = "schema_migrations"
    backup_path: str | None = None  # the verified backup taken before this run, recorded per migration
    hide: tuple[str, ...] = ()  # the migrations' password literals (read on the controller): kept out of audit rows


@dataclass
class Report:
    """What a run did or, in check mode, would do."""

    changed: bool = False
    tracking: str | None = None  # created / adopted
    applied: list[dict[str, Any]] = field(default_factory=list)
    rolled_back: list[dict[str, Any]] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    waiting: list[dict[str, Any]] = field(default_factory=list)
    beyond: list[dict[str, Any]] = field(default_factory=list)  # pending after up_to: a later release's
    drifted: list[dict[str, Any]] = field(default_factory=list)
    drift_accepted: list[dict[str, Any]] = field(default_factory=list)
    adopted: list[dict[str, Any]] = field(default_factory=list)  # rows applied by hand, taken over
    rechecksummed: list[dict[str, Any]] = field(default_factory=list)  # earlier checksum scheme replaced
    unmatched: list[dict[str, Any]] = field(default_factory=list)  # rows no migration file accounts for
    warnings: list[str] = field(default_factory=list)
    before: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "changed": self.changed,
            "tracking": self.tracking,
            "applied": self.applied,
            "rolled_back": self.rolled_back,
            "pending": self.pending,
            "waiting": self.waiting,
            "beyond": self.beyond,
            "drifted": self.drifted,
            "drift_accepted": self.drift_accepted,
            "adopted": self.adopted,
            "rechecksummed": self.rechecksummed,
            "unmatched": self.unmatched,
        }


class EngineError(Exception):
    """A refusal or failure; the report says what was committed before it.

    ``located``: the message's first line is the file, the line and PostgreSQL's message (a statement
    failed, or a rollback does not parse); whoever adds where the run went puts it after that line."""

    def __init__(self, message: str, report: Report | None = None, located: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.report = report
        self.located = located


def _elapsed_ms(start: float) -> int:
    return int(round((time.monotonic() - start) * 1000))


def retry_sleeps(options: Options) -> list[float]:
    """The sleeps between attempts after a lock timeout: retry_delay, doubling, at most retry_delay_max."""
    first, cap = max(options.retry_delay, 0.0), max(options.retry_delay_max, options.retry_delay, 0.0)
    return [min(first * 2**i, cap) for i in range(max(options.lock_retries, 0))]


def retry_budget_ms(options: Options) -> int:
    """How long the retries of one step can take in all: every attempt's lock_timeout and every sleep.

    A CONCURRENTLY statement (``_executor.waits_harmlessly``) waits that long in one attempt instead:
    its wait queues no application query, and a lock timeout would waste its work."""
    return int(options.lock_timeout_ms * (max(options.lock_retries, 0) + 1) + 1000 * sum(retry_sleeps(options)))


def _blocker_query(query: str | None) -> str:
    """A blocking session's (last) query for the message, on one line; hidden when it may hold a password."""
    text = " ".join((query or "").split())
    if not text:
        return "unknown"
    if "password" in text.lower() or "secret" in text.lower():
        return "(not shown: it mentions a password or secret)"
    return repr(text[:200])


def _error_line(exc: Exception, statement: Statement | None, offset: int = 0) -> int | None:
    """The file's line of the error: the statement's first line, moved to PostgreSQL's error position
    (counted from the start of the query, ``offset`` characters before the statement: StatementFailed)."""
    diag = getattr(exc, "diag", None)
    line = statement.line if statement else None
    if statement is not None and diag is not None and diag.statement_position:
        position = int(diag.statement_position) - offset
        line = statement.line + statement.sql[: max(position - 1, 0)].count("\n")
    return line


def _error_details(exc: Exception, statement: Statement | None) -> list[str]:
    """PostgreSQL's DETAIL and HINT, and the statement's first line."""
    diag = getattr(exc, "diag", None)
    parts = []
    if diag is not None:
        if diag.message_detail:
            parts.append("DETAIL: " + diag.message_detail)
        if diag.message_hint:
            parts.append("HINT: " + diag.message_hint)
    if statement is not None:
        first = statement.sql.strip().splitlines()[0] if statement.sql.strip() else ""
        parts.append("statement: " + (first[:200] + (" ..." if len(statement.sql.strip()) > len(first) else "")))
    return parts


def _primary(exc: Exception) -> str:
    diag = getattr(exc, "diag", None)
    return (diag.message_primary if diag else None) or str(exc).strip() or type(exc).__name__


def describe_error(exc: Exception, statement: Statement | None, path: str, offset: int = 0) -> str:
    """File, line and PostgreSQL's message (with SQLSTATE, detail and hint); ``offset``: StatementFailed's."""
    parts = [str(MigrationError(_primary(exc), path, _error_line(exc, statement, offset)))]
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate:
        parts[0] += f" (SQLSTATE {sqlstate})"
    return "\n".join(parts + _error_details(exc, statement))


def failure_headline(exc: Exception, statement: Statement | None, path: str, offset: int = 0) -> str:
    """The first line of a failure, as an operator reads it: file name, line, then PostgreSQL's
    severity and message, e.g. ``013_rename.sql line 4: ERROR: column "x" does not exist (SQLSTATE 42703)``;
    ``offset``: StatementFailed's."""
    diag = getattr(exc, "diag", None)
    severity = (diag.severity_nonlocalized or diag.severity if diag else None) or "ERROR"
    line = _error_line(exc, statement, offset)
    text = f"{os.path.basename(path)}{f' line {line}' if line else ''}: {severity}: {_primary(exc)}"
    sqlstate = getattr(exc, "sqlstate", None)
    return text + (f" (SQLSTATE {sqlstate})" if sqlstate else "")


class Engine:
    """One run against one database."""

    def __init__(
        self,
        conn_kwargs: dict[str, Any],
        options: Options,
        check_mode: bool = False,
        host: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.conn_kwargs = conn_kwargs
        self.options = options
        self.check_mode = check_mode
        self.host = host or socket.gethostname()
        self.sleep = sleep
        self.tracking = Tracking(options.tracking_schema, options.tracking_table).hiding(options.hide)
        self.stepwise_committed: tuple[int, int] | None = None  # (statements committed, all) in a stepwise apply
        self.conn: Any = None
        self.executor: Executor = Executor(None)
        self.lock_conn: Any = None
        self.lock: RunnerLock | None = None
        self.report = Report()
        self.lock_wait = ""  # how the lock retries of the failing step ended, for its error
        self.settled: dict[str, list[str]] = {}  # per version: default volatilities read from pg_proc

    # -- session -----------------------------------------------------------------------------
    def __enter__(self) -> Engine:
        try:
            self.conn = _connection.connect(self.conn_kwargs)
            self.executor = Executor(
                self.conn,
                self.options.lock_timeout_ms,
                self.options.statement_timeout_ms,
                concurrent_lock_timeout_ms=retry_budget_ms(self.options),
            )
            if not self.check_mode:
                self.lock_conn = _connection.connect(self.conn_kwargs)
                self.lock = RunnerLock(self.lock_conn, self.tracking.lock_key)
                self.lock.acquire(self.options.runner_lock_timeout)
                self.report.tracking = self.tracking.ensure(self.conn)
                self.report.changed = self.report.tracking is not None
        except BaseException:
            self.__exit__(None, None, None)  # __exit__ is not called when __enter__ fails
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        for conn in (self.conn, self.lock_conn):
            if conn is not None:
                try:
                    if conn is self.lock_conn and self.lock is not None:
                        self.lock.release()
                finally:
                    conn.close()

    @property
    def pid(self) -> int:
        return int(self.conn.info.backend_pid)

    def setup(self, migrations: list[Migration] | None = None) -> Report:
        """The guide's one-time setup: the tracking tables created or completed on entry and, given the
        files, every row applied by hand (no checksum) adopted with its file's checksum; check mode
        says what it would do."""
        if self.check_mode:
            self.report.tracking = self.tracking.setup_needed(self.conn)
            self.report.changed = self.report.tracking is not None
        applied = self.applied_rows()
        if migrations is not None:
            self._take_over(migrations, applied)
        self.report.before = self.report.after = sorted(applied, key=sort_key)
        return self.report

    def _take_over(self, migrations: list[Migration], applied: dict[str, AppliedRow]) -> None:
        """Adopt rows without a checksum whose file exists, move checksums of the earlier scheme to the
        current one, and report rows that no file accounts for (never accepted silently)."""
        files = {m.version: m for m in migrations}
        for version in sorted(applied, key=sort_key):
            row, m = applied[version], files.get(version)
            if m is None:
                self.report.unmatched.append(
                    {"version": version, "checksum": row.checksum, "applied_at": row.applied_at}
                )
                self.report.warnings.append(
                    f"{version} is recorded in {self.tracking.name} but no migration file has that version: "
                    "not adopted; restore its file, or remove the row after checking the schema"
                )
                continue
            if not row.checksum:
                action, detail, into = "adopt", "applied by hand, not by this tool", self.report.adopted
            elif row.checksum == m.legacy_checksum and row.checksum != m.checksum:
                action, detail, into = "rechecksum", "checksum of the earlier scheme", self.report.rechecksummed
            else:
                continue
            into.append({"version": version, "path": m.path, "checksum": m.checksum, "applied_at": row.applied_at})
            self.report.changed = True
            if not self.check_mode:
                self.tracking.take_over(
                    self.conn,
                    version,
                    action,
                    m.checksum,
                    m.classification,
                    self._rollback_copy(m),
                    self.host,
                    f"{detail}; checksum of {m.path} recorded",
                )

    # -- planning ----------------------------------------------------------------------------
    def applied_rows(self) -> dict[str, AppliedRow]:
        return self.tracking.applied(self.conn)

    def check_drift(self, migrations: list[Migration], applied: dict[str, AppliedRow]) -> None:
        accept = set(self.options.accept_drift)
        for m in migrations:
            row = applied.get(m.version)
            if row is not None and row.checksum and not m.matches(row.checksum):
                entry = {
                    "version": m.version,
                    "path": m.path,
                    "applied_checksum": row.checksum,
                    "file_checksum": m.checksum,
                }
                (self.report.drift_accepted if m.version in accept else self.report.drifted).append(entry)
        self._accept_drift(accept, {m.version: m for m in migrations})
        if self.report.drifted and not self.options.allow_drift:
            names = ", ".join(f"{d['path']} ({d['version']})" for d in self.report.drifted)
            raise EngineError(
                f"drift: applied migration files were edited afterwards: {names}. Their checksum no "
                "longer matches what this database applied. Restore the files, or, after reviewing the change, "
                "accept it: option accept_drift (playbooks: -e accept_drift=VERSION[,VERSION], no spaces) records "
                "the edited file as applied, audited.",
                self.report,
            )
        for d in self.report.drifted:
            self.report.warnings.append(f"drift accepted: {d['path']} differs from what was applied")

    def _accept_drift(self, accept: set[str], files: dict[str, Migration]) -> None:
        """Record the edited file's checksum for each drifted version named in accept_drift, audited."""
        accepted = {d["version"] for d in self.report.drift_accepted}
        unknown = sorted(accept - set(files), key=sort_key)
        if unknown:
            raise EngineError(
                f"accept_drift names {', '.join(unknown)}, which no migration file has (a typo?); nothing was accepted",
                self.report,
            )
        where = _connection.describe(self.conn_kwargs)
        for version in sorted(accept - accepted, key=sort_key):
            self.report.warnings.append(f"accept_drift: {version} has not drifted on {where}; nothing to accept there")
        for d in self.report.drift_accepted:
            m = files[d["version"]]
            self.report.changed = True
            if not self.check_mode:
                self.tracking.take_over(
                    self.conn,
                    m.version,
                    "accept_drift",
                    m.checksum,
                    m.classification,
                    self._rollback_copy(m),
                    self.host,
                    f"file edited after it was applied; accepted, checksum {d['applied_checksum'][:12]} "
                    f"-> {m.checksum[:12]}",
                )

    def plan_apply(
        self, migrations: list[Migration], version: str | None, applied: dict[str, AppliedRow]
    ) -> list[Migration]:
        pending = [m for m in migrations if m.version not in applied]
        self.report.pending = [m.version for m in pending]
        # Rows that no file accounts for (reported by setup-tracking and status) do not make every
        # pending migration "out of order".
        files = {m.version for m in migrations}
        latest = max((sort_key(v) for v in applied if v in files), default=None)
        for m in pending:
            if latest is not None and sort_key(m.version) < latest:
                self.report.warnings.append(
                    f"{m.version} is pending but sorts before the newest applied migration: applied out of order"
                )
        if version is not None:
            chosen = [m for m in migrations if m.version == version]
            if not chosen:
                raise EngineError(f"no migration {version} among the files given", self.report)
            if version in applied:
                return []
            before = [m.version for m in pending if sort_key(m.version) < sort_key(version)]
            if before:
                raise EngineError(
                    f"{version} cannot be applied before the pending migrations that precede it: " + ", ".join(before),
                    self.report,
                )
            pending = chosen
        if self.options.up_to is not None:
            if self.options.up_to not in files:
                raise EngineError(f"up_to: no migration {self.options.up_to} among the files given", self.report)
            limit = sort_key(self.options.up_to)
            self.report.beyond = [
                {
                    "version": m.version,
                    "classification": m.classification or "unknown",
                    "path": m.path,
                    "reasons": m.breaking_reasons,
                }
                for m in pending
                if sort_key(m.version) > limit
            ]
            pending = [m for m in pending if sort_key(m.version) <= limit]
        # What the controller could not tell offline (a column default's function), read from pg_proc here.
        pending, self.settled = settle(self.conn, pending)
        if self.options.only_safe:
            for index, m in enumerate(pending):
                if m.classification != SAFE:
                    self.report.waiting = [
                        {
                            "version": w.version,
                            "classification": w.classification or "unknown",
                            "declared": w.declared_type,
                            "path": w.path,
                            "reasons": w.breaking_reasons,
                            "blocked_by": None if w is m else m.version,
                        }
                        for w in pending[index:]
                    ]
                    pending = pending[:index]
                    break
        for m in pending:
            if m.rollback_error:
                raise EngineError(
                    f"{m.rollback_error}\n{m.version} is not applied because its rollback does not parse",
                    self.report,
                    located=True,
                )
        # Error findings (cluster-wide statements, password literals, ...) the file's "-- Allow:" header
        # does not accept: the whole run is refused before anything of it is applied (check mode too).
        refused = refusal_message(pending, "refused, nothing was applied")
        if refused:
            raise EngineError(refused, self.report, located=True)
        return pending

    def gate(self, plan: list[Migration], reference_kwargs: dict[str, Any]) -> None:
        """Promotion gate: every planned migration must be applied on the reference with the same checksum."""
        with _connection.connect(reference_kwargs) as ref:
            rows = self.tracking.applied(ref)
        where = _connection.describe(reference_kwargs)
        refused = []
        for m in plan:
            row = rows.get(m.version)
            if row is None and self.check_mode:
                # A dry run of a whole workflow: the reference's own apply was only simulated too.
                self.report.warnings.append(
                    f"check mode: {m.version} is not applied on the reference {where} yet; "
                    "a real run applies it here only after the reference has"
                )
            elif row is None:
                refused.append(f"{m.version} ({m.path}): not applied on the reference {where}")
            elif not row.checksum:
                refused.append(
                    f"{m.version} ({m.path}): the reference has it applied by hand and not adopted (no checksum); "
                    "run playbooks/setup-tracking.yml, which records its file's checksum there, then run again"
                )
            elif not m.matches(row.checksum):
                refused.append(
                    f"{m.version} ({m.path}): the reference applied another version of this file "
                    f"(checksum {row.checksum[:12]} there, {m.checksum[:12]} here)"
                )
        if refused:
            raise EngineError("promotion gate: refused, nothing applied. " + "; ".join(refused), self.report)

    # -- apply -------------------------------------------------------------------------------
    def apply(
        self,
        migrations: list[Migration],
        version: str | None = None,
        reference_kwargs: dict[str, Any] | None = None,
    ) -> Report:
        applied = self.applied_rows()
        self.report.before = sorted(applied, key=sort_key)
        self.check_drift(migrations, applied)
        plan = self.plan_apply(migrations, version, applied)
        if plan and reference_kwargs:
            self.gate(plan, reference_kwargs)
        progress = self.tracking.progress(self.conn) if plan else {}  # an interrupted one resumes; none: no query
        if self.check_mode:
            for m in plan:
                entry = self._entry(m, 0)
                if m.version in progress:
                    entry["resumes"] = progress[m.version].to_dict()
                self.report.applied.append(entry)
            self.report.changed = self.report.changed or bool(plan)
            self.report.after = sorted(self.report.before + [m.version for m in plan], key=sort_key)
            return self.report
        unsent = [m.version for m in plan if m.sent_light]
        if unsent:
            raise EngineError(
                "the statements of " + ", ".join(unsent) + " were not sent: the database changed between the "
                "plan and the run (another runner?); run again",
                self.report,
            )
        for index, m in enumerate(plan):
            durable = index == len(plan) - 1
            try:
                if m.transactional:
                    entry = self._apply_transactional(m, durable)
                else:
                    entry = self._apply_stepwise(m, progress.get(m.version))
            except EngineError as exc:
                exc.report = self.report
                self.report.after = sorted(self.applied_rows_safe(), key=sort_key)
                raise
            self.report.applied.append(entry)
            self.report.changed = True
        self.report.after = sorted(self.report.before + [e["version"] for e in self.report.applied], key=sort_key)
        return self.report

    def applied_rows_safe(self) -> list[str]:
        try:
            return list(self.tracking.applied(self.lock_conn))
        except Exception:  # the report stays useful without it
            return self.report.before + [e["version"] for e in self.report.applied]

    def _entry(self, m: Migration, ms: int, repaired: list[str] | None = None) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "version": m.version,
            "path": m.path,
            "classification": m.classification,
            "transactional": m.transactional,
            "execution_ms": ms,
            "statements": [s.sql for s in m.forward.statements],
        }
        if m.version in self.settled:
            entry["settled"] = self.settled[m.version]
        if repaired:
            entry["repaired"] = repaired
        return entry

    def _with_lock_retries(
        self, attempt: Callable[[], Any], m: Migration, action: str, statement: Statement | None = None
    ) -> Any:
        """Run `attempt` (a whole transactional migration, or one step of a stepwise one), retrying on
        lock_not_available after the sleeps of `retry_sleeps`: each attempt keeps the queries queued
        behind it waiting at most lock_timeout; one warning says how long the lock took.

        A step of one CONCURRENTLY `statement` is not retried: it waited the whole retry time already."""
        sleeps = [] if statement is not None and waits_harmlessly(statement) else retry_sleeps(self.options)
        start = time.monotonic()
        tries = 0
        lines: set[str] = set()
        while True:
            try:
                result = attempt()
            except StatementFailed as failed:
                if not isinstance(failed.exc, pgerrors.LockNotAvailable) or tries >= len(sleeps):
                    if sleeps:
                        self.lock_wait = (
                            f"gave up after {tries} retries with lock_timeout {self.options.lock_timeout_ms} ms "
                            f"({time.monotonic() - start:.1f}s in all)"
                        )
                    else:
                        self.lock_wait = (
                            f"gave up after waiting {time.monotonic() - start:.1f}s for the lock in one attempt "
                            "(a CONCURRENTLY statement blocks no application query while it waits)"
                        )
                    self._fail(m, action, failed)
                lines.add(str(failed.statement.line) if failed.statement else "?")
                self.sleep(sleeps[tries])
                tries += 1
                continue
            if tries:
                self.report.warnings.append(
                    f"{m.version}: waited for a lock at line {', '.join(sorted(lines))}: {tries} lock_timeout"
                    f"{'s' if tries > 1 else ''} of {self.options.lock_timeout_ms} ms, got it after "
                    f"{time.monotonic() - start:.1f}s"
                )
            return result

    def _fail(self, m: Migration, action: str, failed: StatementFailed) -> None:
        path = m.path
        if failed.statement is not None and m.rollback and failed.statement in m.rollback.statements:
            path = m.rollback.path
        # File, line and PostgreSQL's message first; then what was undone and what committed before it.
        lines = [failure_headline(failed.exc, failed.statement, path, failed.offset)]
        if action == "rollback":
            done = ", ".join(str(e["version"]) for e in self.report.rolled_back)
            before = f"Rolled back before it in this run: {done}." if done else "Nothing was rolled back before it."
            lines.append(f"the rollback of {m.version} failed, nothing of it committed: it stays applied. {before}")
        else:
            done = ", ".join(str(e["version"]) for e in self.report.applied)
            before = f"Committed before it in this run: {done}." if done else "Nothing was applied before it."
            if self.stepwise_committed and self.stepwise_committed[0]:  # run in steps: those before this one stay
                steps_done, steps_all = self.stepwise_committed
                lines.append(
                    f"{m.version} failed after {steps_done} of {steps_all} statements had committed; the next "
                    f"run resumes after them. {before}"
                )
            else:
                lines.append(f"{m.version} failed, nothing of it committed. {before}")
        lines += _error_details(failed.exc, failed.statement)
        if isinstance(failed.exc, pgerrors.LockNotAvailable):
            lines.append(self.lock_wait + "; " + self.describe_blockers(failed.statement))
        if isinstance(failed.exc, psycopg.OperationalError) and self.conn.closed:
            lines.append("the connection to the database was lost")
        lines.append(f"file: {path}")
        message = "\n".join(lines)
        self._audit_failure(m, action, message)
        raise EngineError(message, located=True)

    def _audit_failure(self, m: Migration, action: str, message: str) -> None:
        """Audit row outside the failed transaction; its synchronous commit makes earlier ones durable."""
        try:
            self.tracking.audit(self.lock_conn, m.version, action, "failed", m.checksum, self.host, message)
        except psycopg.Error as exc:  # the failure itself is what must be reported
            self.report.warnings.append(f"could not write the audit row: {exc}")

    def describe_blockers(self, statement: Statement | None) -> str:
        names = sorted({r.split(".")[-1] for r in (statement.relations if statement else ())})
        rows = self.lock_conn.execute(
            "SELECT DISTINCT a.pid, a.application_name, a.usename, a.state, a.xact_start, l.mode, c.relname,"
            " left(a.query, 200)"
            " FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.granted AND l.pid <> ALL(%s) AND (cardinality(%s::text[]) = 0 OR c.relname = ANY(%s))"
            " AND l.mode IN ('AccessExclusiveLock', 'ExclusiveLock', 'ShareRowExclusiveLock', 'ShareLock',"
            " 'ShareUpdateExclusiveLock', 'RowExclusiveLock', 'RowShareLock', 'AccessShareLock')"
            " AND c.relkind IN ('r', 'p', 'v', 'm', 'i', 'S')"
            " ORDER BY a.xact_start NULLS LAST",
            ([self.pid, self.lock_conn.info.backend_pid], names, names),
        ).fetchall()
        if not rows:
            return "no blocking session is left now (it may have finished)"
        blockers = [
            f"pid {pid} (application_name {app!r}, user {user}, state {state}, transaction open since "
            f"{since}, query {_blocker_query(query)}) holds {mode} on {rel}"
            for pid, app, user, state, since, mode, rel, query in rows
        ]
        return "blocked by " + "; ".join(blockers)

    def _abort(self) -> None:
        if not self.conn.closed and self.conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            try:
                self.conn.execute("ROLLBACK")
            except psycopg.Error:
                pass  # the connection is gone; the server rolled back

    def _apply_transactional(self, m: Migration, durable: bool) -> dict[str, Any]:
        """The hot path, N + 1 round trips: BEGIN + settings with the first statement, the others, then
        the clean session + tracking + audit + COMMIT."""

        def attempt() -> int:
            try:
                start = time.monotonic()
                self.executor.begin_and_run(m.forward.statements, durable)
                ms = _elapsed_ms(start)
                record = self.tracking.applied_sql(m, ms, self.host, self._rollback_copy(m), self.options.backup_path)
                # The clean session first: the rows are written by the login role, under the engine's settings.
                clean = sql.SQL(self.executor.clean(durable))
                self.conn.execute(sql.Composed([clean, sql.SQL("; "), record, sql.SQL("; COMMIT")]))
                return ms
            except StatementFailed:
                self._abort()
                raise
            except psycopg.Error as exc:
                self._abort()
                raise StatementFailed(exc, None) from exc

        ms = self._with_lock_retries(attempt, m, "apply")
        return self._entry(m, ms)

    @staticmethod
    def _rollback_copy(m: Migration) -> Script | None:
        if m.rollback is None or m.rollback_error or m.sent_light:
            return None  # a migration sent without statements never overwrites the stored copy
        return m.rollback

    # -- statements outside a transaction ----------------------------------------------------
    def _apply_stepwise(self, m: Migration, progress: Any) -> dict[str, Any]:
        """Run a migration that contains statements which cannot run in a transaction."""
        statements = [s for s in m.forward.statements if not s.tracking]
        tracking_statements = [s for s in m.forward.statements if s.tracking]
        done = 0
        if progress is not None and progress.action == "apply":
            expected = statements_hash([s.sql for s in statements[: progress.statements_done]])
            if progress.done_hash != expected:
                raise EngineError(
                    f"{m.version} ({m.path}) was interrupted after {progress.statements_done} statements "
                    "and the file changed in those statements since; repair by hand, then delete its row "
                    f"from {self.tracking.name}_progress",
                    self.report,
                )
            done = progress.statements_done
        self.tracking.start_progress(self.conn, m, "apply", self.pid, self.host)
        repaired: list[str] = []
        start = time.monotonic()
        resuming = progress is not None
        try:
            for group in steps(statements[done:]):
                self.stepwise_committed = (done, len(statements))  # what a failure of this step leaves
                end = done + len(group)
                new_hash = statements_hash([s.sql for s in statements[:end]])

                step = partial(self._step, m, group, end, new_hash, resuming, repaired)
                self._with_lock_retries(step, m, "apply", group[0])
                done = end
            ms = _elapsed_ms(start)
            self.stepwise_committed = (done, len(statements))

            def finish() -> None:
                self.executor.in_transaction(tracking_statements, lambda: self._finish_stepwise(m, ms))

            self._with_lock_retries(finish, m, "apply")
        except EngineError as exc:
            # Steps before the failing one are committed (and recorded in the progress table).
            self.report.changed = True
            try:
                self.tracking.fail_progress(self.lock_conn, m.version, exc.message)
            except psycopg.Error:
                pass
            raise
        finally:
            self.stepwise_committed = None
            self.executor.reset()
        return self._entry(m, ms, repaired)

    def _step(
        self,
        m: Migration,
        group: list[Statement],
        end: int,
        new_hash: str,
        resuming: bool,
        repaired: list[str],
    ) -> None:
        """One step of a migration run outside a transaction: a group of transactional statements in one
        transaction, or one statement that cannot run in a transaction; then its progress."""
        if group[0].transactional:
            self.executor.in_transaction(
                group, lambda: self.tracking.advance_progress(self.conn, m.version, end, new_hash), last=False
            )
            return
        statement = group[0]
        try:
            self.executor.settings(local=False, lock_timeout_ms=self.executor.lock_timeout_for(statement))
            if not (statement.index and self._prepare_index(statement, resuming, repaired)):
                self.executor.run(group, guarded=False)
            # The progress row as the login role; the script's settings carry on to its next step.
            self.executor.as_login(lambda: self.tracking.advance_progress(self.conn, m.version, end, new_hash))
        except psycopg.Error as exc:
            raise StatementFailed(exc, statement) from exc

    def _finish_stepwise(self, m: Migration, ms: int) -> None:
        self.tracking.record_applied(self.conn, m, ms, self.host, self._rollback_copy(m), self.options.backup_path)
        self.tracking.finish_progress(self.conn, m.version)

    def _prepare_index(self, statement: Statement, resuming: bool, repaired: list[str]) -> bool:
        """Before CREATE INDEX CONCURRENTLY: drop an invalid leftover of an interrupted build.

        Returns True when the statement has nothing left to do (a resumed run finds the index built).
        """
        row = self.conn.execute(
            "SELECT n.nspname, i.indisvalid FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relname = %s AND (%s::text IS NULL AND n.nspname = ANY(current_schemas(false))"
            " OR n.nspname = %s) ORDER BY array_position(current_schemas(false), n.nspname::text) LIMIT 1",
            (statement.index, statement.schema, statement.schema),
        ).fetchone()
        if row is None:
            return False
        schema, valid = str(row[0]), bool(row[1])
        index = str(statement.index)
        if valid:
            return resuming
        try:
            self.conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(schema, index)))
        except psycopg.Error as exc:
            raise StatementFailed(exc, statement) from exc
        repaired.append(f"dropped invalid index {schema}.{statement.index} left by an interrupted build")
        return False

    # -- roll back ---------------------------------------------------------------------------
    def rollback(self, migrations: list[Migration], version: str | None = None, steps: int | None = None) -> Report:
        applied = self.applied_rows()
        self.report.before = sorted(applied, key=sort_key)
        by_version = {m.version: m for m in migrations}
        if version is not None:
            targets = [version] if version in applied else []
        else:
            targets = sorted(applied, key=sort_key, reverse=True)[: steps or 1]
        plan: list[tuple[str, Script, str, str | None]] = []
        for target in targets:
            script, source = self._rollback_script(target, by_version.get(target), applied[target])
            plan.append((target, script, source, applied[target].checksum))
        for target, script, source, _checksum in plan:
            entry = {
                "version": target,
                "rollback_source": source,
                "classification": applied[target].classification,  # as recorded when it was applied
                "execution_ms": 0,
                "statements": [s.sql for s in script.statements],
            }
            if not self.check_mode:
                entry["execution_ms"] = self._rollback_one(target, script, by_version.get(target))
            self.report.rolled_back.append(entry)
            self.report.changed = True
        rolled = {e["version"] for e in self.report.rolled_back}
        self.report.after = [v for v in self.report.before if v not in rolled]
        return self.report

    def _rollback_script(self, version: str, m: Migration | None, row: AppliedRow) -> tuple[Script, str]:
        matches = m is not None and (row.checksum is None or m.matches(row.checksum))
        if m is not None and m.rollback is not None and matches and not m.rollback_error:
            return m.rollback, m.rollback.path
        stored = self.tracking.stored_rollback(self.conn, version)
        if stored is not None:
            if m is not None and not matches:
                self.report.warnings.append(
                    f"{version}: the file changed since it was applied; the rollback stored at apply time is used"
                )
            return stored, "stored copy"
        if m is None:
            raise EngineError(
                f"cannot roll back {version}: no migration file for it and no rollback stored in {self.tracking.name}",
                self.report,
            )
        if m.rollback_error:
            raise EngineError(f"cannot roll back {version}: {m.rollback_error}", self.report)
        if m.rollback is not None and self.options.allow_drift:
            self.report.warnings.append(f"{version}: drift accepted, the file's rollback is used")
            return m.rollback, m.rollback.path
        raise EngineError(
            f"cannot roll back {version}: {m.path} changed since it was applied and no rollback is stored; "
            "after reviewing it, set allow_drift (rollback.yml: -e allow_drift=true) to use the file's rollback",
            self.report,
        )

    def _rollback_one(self, version: str, script: Script, m: Migration | None) -> int:
        target = m or Migration(version, script.path, script, script, checksum="")
        checksum = m.checksum if m else None
        if script.transactional:

            def body() -> int:
                self.executor.settings(local=True)
                start = time.monotonic()
                self.executor.run(script.statements)
                ms = _elapsed_ms(start)
                self.conn.execute(self.executor.clean())
                self.tracking.record_rolled_back(self.conn, version, checksum, ms, self.host)
                return ms

            def attempt() -> int:
                return int(self.executor.transaction(body))

            return int(self._with_lock_retries(attempt, target, "rollback"))
        start = time.monotonic()
        done = 0
        try:
            for step in steps(script.statements):
                if step[0].transactional:
                    self._with_lock_retries(partial(self.executor.in_transaction, step, last=False), target, "rollback")
                else:
                    self._with_lock_retries(
                        partial(self.executor.outside_transaction, step[0]), target, "rollback", step[0]
                    )
                done += len(step)
        except EngineError as exc:
            exc.message += (
                f"\n{done} of {len(script.statements)} rollback statements ran before the failure; "
                f"{version} stays recorded as applied"
            )
            raise EngineError(exc.message, self.report, located=exc.located) from None
        finally:
            self.executor.reset()
        ms = _elapsed_ms(start)
        self.executor.in_transaction(
            [], lambda: self.tracking.record_rolled_back(self.conn, version, checksum, ms, self.host)
        )
        return ms
