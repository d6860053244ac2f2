# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Settle what the controller could not tell offline: the volatility of a column default's function.

The classifier marks ``ADD COLUMN c type DEFAULT f()`` BREAKING (``add-column-unknown-default``) when f is
not a known immutable or stable built-in: a volatile default rewrites every row under an ACCESS EXCLUSIVE
lock, a non-volatile one is computed once and kept in the catalog (PostgreSQL 11+). The finding names the
functions; with a connection to the database the migration is about to run on, ``pg_proc.provolatile``
says which it is, each name resolved as PostgreSQL resolves it (its schema, or the session's search_path).

* every function immutable or stable (all its overloads): the finding becomes the info
  ``add-column-stable-default``, and the migration is SAFE for this run when nothing else makes it BREAKING;
* any volatile: the finding becomes ``add-column-volatile-default`` (BREAKING);
* a function not found (an earlier pending migration creates it), overloads that disagree, a function the
  same migration or an earlier pending one (re)defines: unchanged, still BREAKING.

A plan made without statements (the action's first call when no file changed) cannot see what earlier
pending migrations (re)define, so it may settle more than the run that follows: it only decides which
migrations' statements that run receives, and the run settles again with them.

Read-only; runs on the target (module side).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from ansible_collections.tme.migrations.plugins.module_utils._model import BREAKING, SAFE, Migration

UNKNOWN = "add-column-unknown-default"
VOLATILE = "add-column-volatile-default"
STABLE = "add-column-stable-default"

_QUERY = (
    "SELECT DISTINCT p.provolatile FROM pg_catalog.pg_proc p"
    " JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace"
    " WHERE p.proname = %s AND p.prokind = 'f'"
    " AND (n.nspname = %s OR (%s::text IS NULL AND pg_catalog.pg_function_is_visible(p.oid)))"
)
_KINDS = {"i": "immutable", "s": "stable", "v": "volatile"}
_COLUMN = re.compile(r"^adds column (\S+) with ")


def _bare(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _lookup(conn: Any, name: str, cache: dict[str, str | None]) -> str | None:
    """'i', 's' or 'v' for a function name as written; None when not found or its overloads disagree."""
    if name not in cache:
        schema, _dot, proname = name.rpartition(".")
        schema = schema.rsplit(".", 1)[-1] or ""  # database.schema.name: the database is the current one
        rows = conn.execute(_QUERY, (proname, schema or None, schema or None)).fetchall()
        kinds = {str(r[0]) for r in rows}
        cache[name] = kinds.pop() if len(kinds) == 1 else None
    return cache[name]


# Statements that can make a function of that name other than the catalog shows it now: created or
# replaced, altered (ALTER FUNCTION ... VOLATILE), renamed, moved to another schema, dropped.
_TOUCHING = ("CreateFunctionStmt", "AlterFunctionStmt", "RenameStmt", "AlterObjectSchemaStmt", "DropStmt")


def _defined_earlier(name: str, earlier: list[Migration]) -> bool:
    """Whether a migration run before this one, or this one (their statements sent), creates, alters,
    renames, moves or drops something of that name: then pg_proc does not say what the default will call."""
    bare = _bare(name).lower()
    return any(s.kind in _TOUCHING and bare in s.sql.lower() for m in earlier for s in m.forward.statements)


def _column(finding: dict[str, Any]) -> str:
    match = _COLUMN.match(str(finding.get("message", "")))
    return f"column {match.group(1)}" if match else "the column"


def _settle_one(
    conn: Any, m: Migration, earlier: list[Migration], db: str, cache: dict[str, str | None]
) -> tuple[Migration, list[str]]:
    findings: list[dict[str, Any]] = []
    notes: list[str] = []
    for finding in m.findings:
        functions = [str(f) for f in finding.get("functions") or ()]
        if (
            finding.get("rule") != UNKNOWN
            or not functions
            or finding.get("defined_here")
            or any(_defined_earlier(f, [*earlier, m]) for f in functions)
        ):
            findings.append(finding)
            continue
        kinds = {f: _lookup(conn, f, cache) for f in functions}
        calls = ", ".join(f"{f}()" for f in functions)
        volatile = [f for f, k in kinds.items() if k == "v"]
        where = f"line {finding.get('line')}"
        if volatile:
            names = ", ".join(f"{f}()" for f in volatile)
            findings.append(
                {
                    **finding,
                    "rule": VOLATILE,
                    "message": f"adds {_column(finding)} with default {calls}: {names} is volatile in pg_proc of "
                    f"database {db}, so every row is rewritten under an ACCESS EXCLUSIVE lock and it waits for a "
                    "release (BREAKING); add the column without a default, SET DEFAULT, then backfill in batches",
                    "breaking": True,
                }
            )
            notes.append(f"{where}: default {names} is volatile in {db}: BREAKING")
        elif all(k in ("i", "s") for k in kinds.values()):
            how = "/".join(sorted({_KINDS[str(k)] for k in kinds.values()}))
            findings.append(
                {
                    **finding,
                    "rule": STABLE,
                    "severity": "info",
                    "message": f"default {calls} is {how} in {db}: adding {_column(finding)} rewrites no row",
                    "breaking": False,
                }
            )
            notes.append(f"{where}: default {calls} is {how} in {db}: no table rewrite")
        else:
            findings.append(finding)  # not found (created later in this run?) or overloads that disagree
    if not notes:
        return m, []
    detected = m.detected_type
    # Only the forward script's findings decide its class (the rollback's are checked, not classified).
    if detected == BREAKING and not any(f.get("breaking") and f.get("path", m.path) == m.path for f in findings):
        detected = SAFE
        findings = [f for f in findings if f.get("rule") != "declared-safe-but-breaking"]
        notes.append(f"SAFE in {db} for this run: nothing else makes it BREAKING")
    return replace(m, findings=tuple(findings), detected_type=detected), notes


def settle(conn: Any, migrations: list[Migration]) -> tuple[list[Migration], dict[str, list[str]]]:
    """The migrations with their unknown default volatilities settled from pg_proc, and per version what
    was settled. ``migrations`` in the order they would run (so that a function an earlier one defines
    is not read from the catalog as it is now). Nothing is read when no migration needs it."""
    if not any(f.get("rule") == UNKNOWN and f.get("functions") for m in migrations for f in m.findings):
        return migrations, {}
    # Before PostgreSQL 11 every ADD COLUMN with a default rewrites the table: nothing to settle.
    if int(conn.info.server_version) < 110000:
        return migrations, {}
    db = str(conn.info.dbname)
    cache: dict[str, str | None] = {}
    out: list[Migration] = []
    notes: dict[str, list[str]] = {}
    for index, m in enumerate(migrations):
        settled, said = _settle_one(conn, m, migrations[:index], db, cache)
        out.append(settled)
        if said:
            notes[m.version] = said
    return out, notes
