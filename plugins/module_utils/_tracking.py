# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The tracking tables and the runner lock.

* ``schema_migrations``: the guide's table (version, description, applied_at, applied_by), with
  nullable columns added for what the engine knows: rows inserted by hand keep working.
  It holds only migrations that are fully applied.
* ``schema_migrations_audit``: every attempt (apply, rollback, repair; succeeded or failed).
* ``schema_migrations_progress``: a migration that runs statements outside a transaction
  (CREATE INDEX CONCURRENTLY, ...) while it is under way, or after it was interrupted or failed.
* A session-level advisory lock, taken by polling on a connection of its own: one runner per
  database at a time, and never a deadlock with CREATE INDEX CONCURRENTLY.
"""

from __future__ import annotations

import hashlib
import json
import string
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Iterable

from ansible_collections.tme.migrations.plugins.module_utils._model import Migration, Script, Statement, tool_version

try:
    from psycopg import sql
except ImportError:  # pragma: no cover - the module reports the missing library
    sql = None  # type: ignore[assignment]

# Our columns beside the guide's (version, description, applied_at, applied_by): all nullable, so rows
# inserted with psql stay valid.
EXTRA_COLUMNS = (
    ("checksum", "TEXT"),
    ("classification", "TEXT"),
    ("execution_ms", "INTEGER"),
    ("applied_host", "TEXT"),
    ("rollback_sql", "TEXT"),  # the rollback as one text, for people (psql -f)
    ("rollback_script", "TEXT"),  # the same as JSON statements, for the engine (CONCURRENTLY steps kept)
    ("tool_version", "TEXT"),
    ("backup_path", "TEXT"),  # the verified backup taken before the run that applied it
    # A row applied by hand (the guide's psql) and taken over by setup-tracking: when, by whom.
    ("adopted_at", "TIMESTAMPTZ"),
    ("adopted_by", "TEXT"),
    # An edited applied file accepted explicitly (accept_drift): when, by whom.
    ("drift_accepted_at", "TIMESTAMPTZ"),
    ("drift_accepted_by", "TEXT"),
)
# Columns of the audit table added after its first release: adopted like the ones above.
AUDIT_EXTRA_COLUMNS = (("detail", "TEXT"),)


@dataclass(frozen=True)
class AppliedRow:
    version: str
    description: str | None
    applied_at: str | None
    applied_by: str | None
    checksum: str | None = None
    classification: str | None = None
    execution_ms: int | None = None
    applied_host: str | None = None
    tool_version: str | None = None
    backup_path: str | None = None
    adopted_at: str | None = None
    adopted_by: str | None = None
    drift_accepted_at: str | None = None
    drift_accepted_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ProgressRow:
    version: str
    checksum: str | None
    action: str
    status: str
    statements_done: int
    done_hash: str | None
    started_at: str | None
    updated_at: str | None
    pid: int | None
    host: str | None
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def statements_hash(sqls: list[str]) -> str:
    digest = hashlib.sha256()
    for text in sqls:
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def _script_json(script: Script | None) -> str | None:
    if script is None:
        return None
    return json.dumps({"statements": script.to_dict()["statements"]}, separators=(",", ":"))


def _add_columns(conn: Any, table: Any, columns: list[tuple[str, str]]) -> bool:
    """Nullable columns added to an existing table (rows kept); whether there were any."""
    if columns:
        conn.execute(
            sql.SQL("ALTER TABLE {} {}").format(
                table,
                sql.SQL(", ").join(
                    sql.SQL("ADD COLUMN IF NOT EXISTS {} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in columns
                ),
            )
        )
    return bool(columns)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _mask(secret: str) -> str:
    """What replaces a hidden text: a quoted literal as the controller's redaction shows it (``'***'``),
    a bare value as ``***``."""
    return "'***'" if len(secret) > 1 and secret.endswith("'") else "***"


# Tracking.applied_sql: the tracking row and its audit row, {audit} and {table} the tables, the others values.
_APPLIED_SQL = (
    "WITH audit AS (INSERT INTO {audit} (version, action, outcome, checksum, execution_ms, host,"
    " tool_version) VALUES ({version}, 'apply', 'succeeded', {checksum}, {ms}, {host}, {tool}))"
    " INSERT INTO {table} AS t (version, description, checksum, classification, execution_ms,"
    " applied_host, rollback_sql, rollback_script, tool_version, backup_path)"
    " VALUES ({version}, {description}, {checksum}, {class}, {ms}, {host}, {rollback}, {script}, {tool},"
    " {backup})"
    " ON CONFLICT (version) DO UPDATE SET description = COALESCE(t.description, EXCLUDED.description),"
    " checksum = EXCLUDED.checksum, classification = EXCLUDED.classification,"
    " execution_ms = EXCLUDED.execution_ms, applied_host = EXCLUDED.applied_host,"
    " rollback_sql = EXCLUDED.rollback_sql, rollback_script = EXCLUDED.rollback_script,"
    " tool_version = EXCLUDED.tool_version,"
    " backup_path = EXCLUDED.backup_path"
)


class Tracking:
    """Reads and writes the tracking tables of one database."""

    def __init__(self, schema: str = "public", table: str = "schema_migrations") -> None:
        self.schema = schema
        self.table = table
        self.ident = sql.Identifier(schema, table)
        self.audit_ident = sql.Identifier(schema, table + "_audit")
        self.progress_ident = sql.Identifier(schema, table + "_progress")
        seed = f"tme.migrations:{schema}.{table}".encode()
        self.lock_key = int.from_bytes(hashlib.sha256(seed).digest()[:8], "big", signed=True)
        self.hidden: list[str] = []

    def hiding(self, secrets: Iterable[str]) -> Tracking:
        """Keep these texts out of every message written to the audit and progress tables: the
        password literals of the migrations (as written, and their content), which PostgreSQL's
        error and our own quoting of the failing statement would otherwise store. The controller
        knows them (plugin_utils/_redact.py, pglast); rollback_sql keeps them, it must stay runnable."""
        # An empty literal ('') or one or two characters would mask harmless text everywhere.
        self.hidden = sorted({str(s) for s in secrets if s is not None and len(str(s)) >= 3}, key=len, reverse=True)
        return self

    def shown(self, text: str | None) -> str | None:
        """A message as the audit and progress tables keep it: without the hidden texts (longest first,
        so that a literal goes whole before its content is looked for)."""
        if text is None:
            return None
        for secret in self.hidden:
            if secret in text:
                text = text.replace(secret, _mask(secret))
        return text

    @property
    def name(self) -> str:
        return f"{self.schema}.{self.table}"

    # -- structure ---------------------------------------------------------------------------
    def columns(self, conn: Any, table: str | None = None) -> list[str]:
        """The columns of the table (none: no such table) that information_schema.columns shows this role."""
        return self.columns_of(conn, (table or self.table,))[0]

    def columns_of(self, conn: Any, tables: tuple[str, ...]) -> list[list[str]]:
        """The columns of each table of this schema, in one query, as information_schema.columns shows
        them to this role, read from the catalog: the view costs milliseconds to plan in a new session."""
        rows = conn.execute(
            "SELECT c.relname, a.attname FROM pg_catalog.pg_attribute a"
            " JOIN pg_catalog.pg_class c ON c.oid = a.attrelid"
            " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relname = ANY(%s) AND c.relkind IN ('r', 'v', 'f', 'p')"
            " AND a.attnum > 0 AND NOT a.attisdropped"
            " AND (pg_catalog.pg_has_role(c.relowner, 'USAGE')"
            " OR pg_catalog.has_column_privilege(c.oid, a.attnum, 'SELECT, INSERT, UPDATE, REFERENCES'))"
            " ORDER BY c.relname, a.attnum",
            (self.schema, list(tables)),
        ).fetchall()
        found: dict[str, list[str]] = {}
        for table, column in rows:
            found.setdefault(table, []).append(column)
        return [found.get(table, []) for table in tables]

    def exists(self, conn: Any) -> bool:
        return bool(self.columns(conn))

    def setup_needed(self, conn: Any) -> str | None:
        """What ensure() would do, without doing it: "created", "adopted" or None."""
        tables = self.columns_of(conn, (self.table, self.table + "_audit", self.table + "_progress"))
        existing, audit, progress = tables
        if not existing:
            return "created"
        missing = [n for n, _t in EXTRA_COLUMNS if n not in existing]
        missing += [n for n, _t in AUDIT_EXTRA_COLUMNS if audit and n not in audit]
        return "adopted" if missing or not audit or not progress else None

    def ensure(self, conn: Any) -> str | None:
        """Create the tables, or adopt an existing schema_migrations by adding columns.

        Returns "created", "adopted" or None (already complete). Runs in one transaction.
        """
        with conn.transaction():
            existing = self.columns(conn)
            outcome: str | None = None
            if not existing:
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
                conn.execute(
                    sql.SQL(
                        "CREATE TABLE {} ("
                        " version VARCHAR(255) PRIMARY KEY,"
                        " description TEXT,"
                        " applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,"
                        " applied_by VARCHAR(100) DEFAULT CURRENT_USER, {})"
                    ).format(
                        self.ident,
                        sql.SQL(", ").join(
                            sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in EXTRA_COLUMNS
                        ),
                    )
                )
                outcome = "created"
            else:
                if "version" not in existing:
                    raise RuntimeError(f"tracking table {self.name} exists but has no version column")
                if not self._version_is_unique(conn):
                    raise RuntimeError(f"tracking table {self.name}: version is neither its primary key nor unique")
                problems = self.column_problems(conn)
                if problems:
                    raise RuntimeError(
                        f"tracking table {self.name} was made in a way the tool cannot write to, nothing was changed: "
                        + "; ".join(problems)
                    )
                if _add_columns(conn, self.ident, [(n, t) for n, t in EXTRA_COLUMNS if n not in existing]):
                    outcome = "adopted"
            audit_columns = self.columns(conn, self.table + "_audit")
            audit_missing = [(n, t) for n, t in AUDIT_EXTRA_COLUMNS if audit_columns and n not in audit_columns]
            if _add_columns(conn, self.audit_ident, audit_missing):
                outcome = outcome or "adopted"
            if not audit_columns:
                conn.execute(
                    sql.SQL(
                        "CREATE TABLE {} ("
                        " id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
                        " version VARCHAR(255) NOT NULL,"
                        " action TEXT NOT NULL,"
                        " outcome TEXT NOT NULL,"
                        " checksum TEXT,"
                        " execution_ms INTEGER,"
                        " error TEXT,"
                        " happened_at TIMESTAMPTZ NOT NULL DEFAULT now(),"
                        " actor TEXT NOT NULL DEFAULT CURRENT_USER,"
                        " host TEXT,"
                        " tool_version TEXT,"
                        " detail TEXT)"
                    ).format(self.audit_ident)
                )
                outcome = outcome or "adopted"
            if not self.columns(conn, self.table + "_progress"):
                conn.execute(
                    sql.SQL(
                        "CREATE TABLE {} ("
                        " version VARCHAR(255) PRIMARY KEY,"
                        " checksum TEXT,"
                        " action TEXT NOT NULL,"
                        " status TEXT NOT NULL,"
                        " statements_done INTEGER NOT NULL DEFAULT 0,"
                        " done_hash TEXT,"
                        " started_at TIMESTAMPTZ NOT NULL DEFAULT now(),"
                        " updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),"
                        " pid INTEGER,"
                        " host TEXT,"
                        " error TEXT)"
                    ).format(self.progress_ident)
                )
                outcome = outcome or "adopted"
        return outcome

    def column_problems(self, conn: Any) -> list[str]:
        """What in a hand-made tracking table would break the rows the tool writes: a NOT NULL column
        without a default that the tool does not fill, or one of the tool's columns too narrow."""
        rows = conn.execute(
            "SELECT column_name, data_type, character_maximum_length, is_nullable, column_default, is_identity"
            " FROM information_schema.columns WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (self.schema, self.table),
        ).fetchall()
        wanted = dict(EXTRA_COLUMNS)
        problems = []
        for name, data_type, length, nullable, default, identity in rows:
            if nullable == "NO" and default is None and identity != "YES" and name != "version":
                problems.append(
                    f"column {name} is NOT NULL without a default, and the tool does not fill it "
                    f"(ALTER TABLE {self.name} ALTER COLUMN {name} DROP NOT NULL, or give it a default)"
                )
            if wanted.get(name) == "TEXT" and length is not None:
                problems.append(
                    f"column {name} is {data_type}({length}); the tool writes longer values there "
                    f"(ALTER TABLE {self.name} ALTER COLUMN {name} TYPE text)"
                )
        return problems

    def _version_is_unique(self, conn: Any) -> bool:
        row = conn.execute(
            "SELECT count(*) FROM pg_index i"
            " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
            " WHERE i.indrelid = %s::regclass AND i.indisunique AND i.indnatts = 1 AND a.attname = 'version'",
            (self.ident.as_string(conn),),
        ).fetchone()
        return bool(row and row[0])

    # -- reading -----------------------------------------------------------------------------
    def applied(self, conn: Any) -> dict[str, AppliedRow]:
        """Every row of schema_migrations, legacy ones included, by version."""
        existing = self.columns(conn)
        if not existing:
            return {}
        wanted = list(AppliedRow.__dataclass_fields__)  # its fields in order; a column a table lacks reads as NULL
        rows = conn.execute(
            sql.SQL("SELECT {} FROM {}").format(
                sql.SQL(", ").join(sql.Identifier(c) if c in existing else sql.SQL("NULL") for c in wanted),
                self.ident,
            )
        ).fetchall()
        ms = wanted.index("execution_ms")  # the one value kept as it is (an integer); the others as text
        result: dict[str, AppliedRow] = {}
        for row in rows:
            values: list[Any] = [v if v is None or i == ms else str(v) for i, v in enumerate(row)]
            result[values[0]] = AppliedRow(*values)
        return result

    def progress(self, conn: Any) -> dict[str, ProgressRow]:
        if not self.columns(conn, self.table + "_progress"):
            return {}
        rows = conn.execute(
            sql.SQL(
                "SELECT version, checksum, action, status, statements_done, done_hash, started_at,"
                " updated_at, pid, host, error FROM {}"
            ).format(self.progress_ident)
        ).fetchall()
        return {
            r[0]: ProgressRow(r[0], r[1], r[2], r[3], r[4], r[5], _text(r[6]), _text(r[7]), r[8], r[9], r[10])
            for r in rows
        }

    def stored_rollback(self, conn: Any, version: str) -> Script | None:
        """The rollback copied at apply time: its statements as the file had them, or, for rows of an
        earlier release, the one text (run as one statement)."""
        columns = self.columns(conn)
        if "rollback_sql" not in columns:
            return None
        script = sql.SQL("rollback_script") if "rollback_script" in columns else sql.SQL("NULL")
        row = conn.execute(
            sql.SQL("SELECT rollback_sql, {} FROM {} WHERE version = %s").format(script, self.ident), (version,)
        ).fetchone()
        if not row or (row[0] is None and row[1] is None):
            return None
        where = f"{self.name}.rollback_sql ({version})"
        if row[1]:
            return Script.from_dict({**json.loads(row[1]), "path": where})
        return Script(where, (Statement(str(row[0]), 1),))

    # -- writing -----------------------------------------------------------------------------
    @cached_property
    def _applied_parts(self) -> list[Any]:
        """applied_sql's statement composed once: its constant text and the tables' identifiers
        (Composables), and the name of a value (str) where each migration's literal goes."""
        tables = {"audit": self.audit_ident, "table": self.ident}
        parts: list[Any] = []
        for text, name, _spec, _conversion in string.Formatter().parse(_APPLIED_SQL):
            if text:
                parts.append(sql.SQL(text))
            if name:
                parts.append(tables.get(name, name))
        return parts

    def applied_sql(
        self, migration: Migration, execution_ms: int, host: str, rollback: Script | None, backup: str | None = None
    ) -> Any:
        """The tracking row and its audit row as one statement, values composed as SQL literals so that it
        can share a round trip with COMMIT (the simple query protocol takes no bound parameters).

        The file's own ``INSERT ... ON CONFLICT DO NOTHING`` may have run already: its row is
        completed, its description kept.
        """
        values = {
            "version": migration.version,
            "checksum": migration.checksum,
            "ms": execution_ms,
            "host": host,
            "tool": tool_version(),
            "description": migration.description,
            "class": migration.classification,
            "rollback": rollback.executable_sql() if rollback is not None else None,
            "script": _script_json(rollback),
            "backup": backup,
        }
        literals = {name: sql.Literal(value) for name, value in values.items()}
        return sql.Composed([literals[part] if isinstance(part, str) else part for part in self._applied_parts])

    def record_applied(
        self,
        conn: Any,
        migration: Migration,
        execution_ms: int,
        host: str,
        rollback: Script | None,
        backup: str | None = None,
    ) -> None:
        conn.execute(self.applied_sql(migration, execution_ms, host, rollback, backup))

    def record_rolled_back(self, conn: Any, version: str, checksum: str | None, ms: int, host: str) -> None:
        conn.execute(
            sql.SQL(
                "WITH audit AS (INSERT INTO {audit} (version, action, outcome, checksum, execution_ms, host,"
                " tool_version) VALUES (%(version)s, 'rollback', 'succeeded', %(checksum)s, %(ms)s, %(host)s,"
                " %(tool)s)) DELETE FROM {table} WHERE version = %(version)s"
            ).format(audit=self.audit_ident, table=self.ident),
            {"version": version, "checksum": checksum, "ms": ms, "host": host, "tool": tool_version()},
        )

    def audit(
        self,
        conn: Any,
        version: str,
        action: str,
        outcome: str,
        checksum: str | None,
        host: str,
        error: str | None = None,
        execution_ms: int | None = None,
        detail: str | None = None,
    ) -> None:
        """An audit row on its own (autocommit connection): outside any failed transaction."""
        error, detail = self.shown(error), self.shown(detail)
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (version, action, outcome, checksum, execution_ms, error, host, tool_version, detail)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
            ).format(self.audit_ident),
            (version, action, outcome, checksum, execution_ms, error, host, tool_version(), detail),
        )

    def take_over(
        self,
        conn: Any,
        version: str,
        action: str,
        checksum: str,
        classification: str | None,
        rollback: Script | None,
        host: str,
        detail: str,
    ) -> None:
        """Record the file's checksum on a row this tool did not write, with its audit row, in one
        statement: ``adopt`` (applied by hand, no checksum), ``accept_drift`` (the file was edited
        after it was applied) or ``rechecksum`` (a checksum of the earlier scheme)."""
        stamp = {
            "adopt": sql.SQL("adopted_at = now(), adopted_by = CURRENT_USER,"),
            "accept_drift": sql.SQL("drift_accepted_at = now(), drift_accepted_by = CURRENT_USER,"),
            "rechecksum": sql.SQL(""),
        }[action]
        conn.execute(
            sql.SQL(
                "WITH audit AS (INSERT INTO {audit} (version, action, outcome, checksum, host, tool_version, detail)"
                " VALUES (%(version)s, %(action)s, 'succeeded', %(checksum)s, %(host)s, %(tool)s, %(detail)s))"
                " UPDATE {table} SET {stamp} checksum = %(checksum)s,"
                " classification = COALESCE(classification, %(class)s),"
                " rollback_sql = COALESCE(%(rollback)s, rollback_sql),"
                " rollback_script = COALESCE(%(script)s, rollback_script) WHERE version = %(version)s"
            ).format(audit=self.audit_ident, table=self.ident, stamp=stamp),
            {
                "version": version,
                "action": action,
                "checksum": checksum,
                "host": host,
                "tool": tool_version(),
                "detail": self.shown(detail),
                "class": classification,
                "rollback": rollback.executable_sql() if rollback is not None else None,
                "script": _script_json(rollback),
            },
        )

    def start_progress(self, conn: Any, migration: Migration, action: str, pid: int, host: str) -> None:
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (version, checksum, action, status, statements_done, done_hash, pid, host)"
                " VALUES (%s, %s, %s, 'running', 0, %s, %s, %s)"
                " ON CONFLICT (version) DO UPDATE SET status = 'running', pid = EXCLUDED.pid,"
                " host = EXCLUDED.host, checksum = EXCLUDED.checksum, updated_at = now(), error = NULL"
            ).format(self.progress_ident),
            (migration.version, migration.checksum, action, statements_hash([]), pid, host),
        )

    def advance_progress(self, conn: Any, version: str, done: int, done_hash: str) -> None:
        conn.execute(
            sql.SQL("UPDATE {} SET statements_done = %s, done_hash = %s, updated_at = now() WHERE version = %s").format(
                self.progress_ident
            ),
            (done, done_hash, version),
        )

    def fail_progress(self, conn: Any, version: str, error: str) -> None:
        conn.execute(
            sql.SQL("UPDATE {} SET status = 'failed', error = %s, updated_at = now() WHERE version = %s").format(
                self.progress_ident
            ),
            (self.shown(error), version),
        )

    def finish_progress(self, conn: Any, version: str) -> None:
        conn.execute(sql.SQL("DELETE FROM {} WHERE version = %s").format(self.progress_ident), (version,))


class RunnerLock:
    """One runner per database: a session-level advisory lock on a connection of its own.

    It is taken by polling pg_try_advisory_lock, never by waiting inside a statement, so a waiting
    runner holds no snapshot that a CREATE INDEX CONCURRENTLY of the running one would wait for.
    """

    def __init__(self, conn: Any, key: int) -> None:
        self.conn = conn
        self.key = key
        self.held = False

    def acquire(self, timeout: float, poll: float = 0.1) -> None:
        deadline = time.monotonic() + timeout
        while True:
            row = self.conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
            if row and row[0]:
                self.held = True
                return
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"another migration runner holds this database's lock after waiting {timeout:g}s: "
                    + self.describe_holder()
                )
            time.sleep(poll)

    def describe_holder(self) -> str:
        row = self.conn.execute(
            "SELECT a.pid, a.application_name, a.usename, a.client_addr, a.backend_start, a.state"
            " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
            " AND l.classid::bigint = %s AND l.objid::bigint = %s",
            ((self.key >> 32) & 0xFFFFFFFF, self.key & 0xFFFFFFFF),
        ).fetchone()
        if not row:
            return "the holder has gone meanwhile; run again"
        pid, app, user, addr, since, state = row
        return (
            f"pid {pid}, application_name {app!r}, user {user}, client {addr or 'local socket'}, "
            f"connected since {since}, state {state}"
        )

    def release(self) -> None:
        if self.held:
            try:
                if not self.conn.closed and not self.conn.broken:
                    self.conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
                # else: the session ended (server stopped, connection lost) and its lock with it
            except Exception:  # noqa: BLE001 - never hide the error that ended the run
                pass
            finally:
                self.held = False
