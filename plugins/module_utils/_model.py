# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Plain data shared by the controller (file reader) and the module (engine).

Nothing here imports pglast: the controller parses migration files and hands the module
already split statements as dictionaries, so a database host needs only Python and psycopg.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

# The collection's version is written once, in galaxy.yml. The controller reads it
# (plugin_utils/_collection.py) and the action plugins pass it to the modules as `_tool_version`
# (module_utils/_module.py sets it here); a module called without its action records UNKNOWN_VERSION.
UNKNOWN_VERSION = "unknown"
_tool_version = UNKNOWN_VERSION


def tool_version() -> str:
    """The version recorded in the tracking rows (tool_version)."""
    return _tool_version


def set_tool_version(version: str | None) -> None:
    global _tool_version
    _tool_version = version or UNKNOWN_VERSION


SAFE = "SAFE"
BREAKING = "BREAKING"
ERROR = "error"  # a finding's severity: the migration must not run as written

# The rules whose error findings an apply or a rehearsal refuses to run unless the file's "-- Allow: rule" header
# accepts them (the reader marks accepted ones, see plugin_utils/_files.py): what a migration must not do
# on a shared server, and the only rules an "-- Allow:" header can accept (plugin_utils/_findings.py uses
# this list). Other errors are the reader's (missing-rollback, governed by require_rollback, and
# rollback-syntax, refused on its own) or fail in PostgreSQL itself at their line. set-role and
# set-search-path are warnings (the engine resets the session), so never refused, but acceptable.
REFUSED_RULES = frozenset(
    {
        "set-role",
        "set-search-path",
        "override-timeout",
        "copy-program",
        "copy-server-file",
        "server-file-access",
        "role-privileged-attribute",
        "password-literal",
        "cluster-wide",
    }
)


@dataclass(frozen=True)
class Statement:
    """One SQL statement of a script, as the PostgreSQL parser split it."""

    sql: str
    line: int  # first line of the statement in its file, 1-based
    transactional: bool = True  # False: CREATE INDEX CONCURRENTLY, VACUUM, ...
    tracking: bool = False  # the file's own INSERT/DELETE on the tracking table
    index: str | None = None  # CREATE INDEX CONCURRENTLY: the index name, for repair
    schema: str | None = None  # schema of that index's table, when the file names one
    relations: tuple[str, ...] = ()  # tables it names, to find who blocks it
    kind: str = ""  # the parser's node type, e.g. AlterEnumStmt

    def to_dict(self) -> dict[str, Any]:
        return {
            "sql": self.sql,
            "line": self.line,
            "transactional": self.transactional,
            "tracking": self.tracking,
            "index": self.index,
            "schema": self.schema,
            "relations": list(self.relations),
            "kind": self.kind,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Statement:
        return cls(
            sql=data["sql"],
            line=int(data["line"]),
            transactional=bool(data.get("transactional", True)),
            tracking=bool(data.get("tracking", False)),
            index=data.get("index"),
            schema=data.get("schema"),
            relations=tuple(data.get("relations") or ()),
            kind=data.get("kind") or "",
        )


@dataclass(frozen=True)
class Script:
    """A forward or rollback script: where it came from and its statements."""

    path: str
    statements: tuple[Statement, ...]
    # A script sent without its statements (nothing of it runs): whether they can run in a transaction.
    transactional_hint: bool | None = None

    @property
    def transactional(self) -> bool:
        if self.transactional_hint is not None:
            return self.transactional_hint
        return all(s.transactional for s in self.statements)

    def light(self) -> Script:
        """The script without its statements, for a module that only reads what it is (status, plans)."""
        return Script(self.path, (), self.transactional)

    def executable_sql(self) -> str:
        """The script as one text without transaction control, e.g. for the stored rollback copy. A
        statement whose last line holds ``--`` gets its ``;`` on a line of its own, or the comment
        would swallow it."""
        parts = []
        for statement in self.statements:
            text = statement.sql.rstrip()
            parts.append(text + ("\n;\n" if "--" in text.rsplit("\n", 1)[-1] else ";\n"))
        return "".join(parts)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"path": self.path, "statements": [s.to_dict() for s in self.statements]}
        if self.transactional_hint is not None:
            data["transactional"] = self.transactional_hint
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Script:
        listed = data["statements"]
        return cls(
            path=data["path"],
            statements=tuple(Statement.from_dict(s) for s in listed) if listed else (),
            transactional_hint=data.get("transactional"),
        )


@dataclass(frozen=True)
class Migration:
    """A numbered migration: version (the file name stem), forward SQL, rollback SQL, checksum."""

    version: str
    path: str
    forward: Script
    rollback: Script | None
    checksum: str  # sha256 of the forward SQL's tokens: comments and whitespace do not count
    description: str = ""
    declared_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    rollback_error: str | None = None  # the rollback exists but does not parse: file, line, message
    detected_type: str | None = None  # SAFE or BREAKING as read from the SQL (see _classify)
    rollback_type: str | None = None  # the same for the rollback script
    findings: tuple[dict[str, Any], ...] = ()  # what the analysis found: rule, severity, line, message ...
    legacy_checksum: str = ""  # the earlier scheme (sha256 of the forward text), still accepted

    @property
    def sent_light(self) -> bool:
        """Sent without its statements: it can be planned and reported, not run."""
        return not self.forward.statements

    def light(self) -> Migration:
        """Everything a plan or a status needs, without the statements (a migration's file always has some)."""
        return replace(
            self,
            forward=self.forward.light(),
            rollback=self.rollback.light() if self.rollback is not None else None,
            # BREAKING ones for the reports, unaccepted errors for the refusal (see blocking_findings).
            findings=tuple(f for f in self.findings if f.get("breaking") or f.get("severity") == ERROR),
        )

    def blocking_findings(self) -> list[dict[str, Any]]:
        """The error findings that stop this migration from being applied or rehearsed: those of
        REFUSED_RULES its file's ``-- Allow:`` header does not accept (accepted ones are infos)."""
        return [
            f
            for f in self.findings
            if f.get("severity") == ERROR and not f.get("accepted") and f.get("rule") in REFUSED_RULES
        ]

    def matches(self, recorded: str | None) -> bool:
        """Whether a checksum recorded in a tracking table is this file's (either scheme)."""
        return bool(recorded) and recorded in (self.checksum, self.legacy_checksum)

    @property
    def transactional(self) -> bool:
        return self.forward.transactional

    @property
    def classification(self) -> str | None:
        """BREAKING when the SQL or its author says so, SAFE when the SQL reads as SAFE.

        Without an analysis (``detected_type`` None) the declared ``-- Type:`` is all there is.
        """
        if BREAKING in (self.detected_type, self.declared_type):
            return BREAKING
        return self.detected_type or self.declared_type

    @property
    def breaking_reasons(self) -> list[str]:
        """Why the SQL is BREAKING, one line each, for reports of what waits for a release."""
        return [f"line {f['line']}: {f['message']}" for f in self.findings if f.get("breaking")]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "path": self.path,
            "forward": self.forward.to_dict(),
            "rollback": self.rollback.to_dict() if self.rollback else None,
            "checksum": self.checksum,
            "description": self.description,
            "declared_type": self.declared_type,
            "headers": dict(self.headers),
            "rollback_error": self.rollback_error,
            "detected_type": self.detected_type,
            "rollback_type": self.rollback_type,
            "findings": list(self.findings),
            "legacy_checksum": self.legacy_checksum,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Migration:
        rollback = data.get("rollback")
        return cls(
            version=data["version"],
            path=data["path"],
            forward=Script.from_dict(data["forward"]),
            rollback=Script.from_dict(rollback) if rollback else None,
            checksum=data["checksum"],
            description=data.get("description") or "",
            declared_type=data.get("declared_type"),
            headers=dict(data.get("headers") or {}),
            rollback_error=data.get("rollback_error"),
            detected_type=data.get("detected_type"),
            rollback_type=data.get("rollback_type"),
            findings=tuple(data.get("findings") or ()),
            legacy_checksum=data.get("legacy_checksum") or "",
        )


def refusal(m: Migration, finding: dict[str, Any]) -> str:
    """One refused finding, on one line: file, line, rule, the finding's message and how to accept it."""
    path = str(finding.get("path") or m.path)
    line = finding.get("line")
    rule = finding.get("rule")
    where = os.path.basename(path) + (f" line {line}" if line else "")
    same_file = path == m.path or path.startswith(m.path + " (")  # the forward file's "(ROLLBACK block)"
    header = "the file's header" if same_file else f"the header of {os.path.basename(m.path)}"
    message = str(finding.get("message"))
    if same_file and f"'-- Allow: {rule}'" in message:  # the finding says so itself (cluster-wide)
        return f"{where}: refused ({rule}): {message}"
    return f"{where}: refused ({rule}): {message}; add '-- Allow: {rule}' to {header} to accept it deliberately"


def refusal_message(migrations: list[Migration], outcome: str) -> str | None:
    """Why these migrations may not run, or None: the first refused finding on the first line (file and
    line first, as a located error), then ``outcome`` (e.g. "nothing was applied") and the others."""
    refused = [(m, f) for m in migrations for f in m.blocking_findings()]
    if not refused:
        return None
    versions = list(dict.fromkeys(m.version for m, _f in refused))
    lines = [refusal(m, f) for m, f in refused]
    summary = (
        f"{outcome}: {', '.join(versions)} {'has' if len(versions) == 1 else 'have'} error findings that must not run "
        "unreviewed; fix the SQL, or accept each deliberately with a header line "
        "'-- Allow: rule, ...' in its file"
    )
    return "\n".join([lines[0], summary, *lines[1:]])


class MigrationError(Exception):
    """An error about a migration, carrying the file and line it concerns."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None) -> None:
        self.message = message
        self.path = path
        self.line = line
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = ""
        if self.path:
            where = self.path + (f" line {self.line}" if self.line else "") + ": "
        return where + self.message
