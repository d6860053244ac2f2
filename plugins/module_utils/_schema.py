# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A catalog snapshot of a database's schema, and the differences between two snapshots.

One entry per object: tables, columns (type, NOT NULL, default, identity, generated), constraints,
indexes, views and materialized views, sequences, functions, triggers, enums (labels in order),
domains, composite types, schemas, extensions, policies. Objects that belong to an extension are
left out. Column order is not compared: dropping and re-adding a column moves it to the end, and
no query that names its columns can tell.

A function or procedure is compared by a hash of its definition with every run of whitespace
collapsed to one space and the ends trimmed: a rollback that re-creates the previous body with
other indentation, line breaks or trailing spaces restores it. The accepted limit: whitespace
inside a string literal or quoted identifier of the body is collapsed too, so a change there
alone goes unseen; adding or removing whitespace between two tokens where there was none
(``a+1`` / ``a + 1``) still counts as a difference.
"""

from __future__ import annotations

import re
from typing import Any

try:
    from psycopg import sql
except ImportError:  # pragma: no cover - reported by the module
    pass

# In every query: {ns} keeps the user's schemas, {ext} leaves out what an extension owns.
_USER_NS = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'"
_NOT_EXTENSION = (
    "NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = {}::regclass AND e.objid = {} AND e.deptype = 'e')"
)


_QUERIES: tuple[tuple[str, tuple[str, str] | None, str], ...] = (
    (
        "schema",
        ("pg_namespace", "n.oid"),
        "SELECT n.nspname, '' FROM pg_namespace n WHERE {ns} AND n.nspname <> 'public' AND {ext}",
    ),
    ("extension", None, "SELECT x.extname, x.extversion FROM pg_extension x WHERE x.extname <> 'plpgsql'"),
    (
        "table",
        ("pg_class", "c.oid"),
        "SELECT n.nspname || '.' || c.relname, CASE c.relkind WHEN 'p' THEN 'partitioned table'"
        " WHEN 'f' THEN 'foreign table' ELSE 'table' END"
        " || CASE c.relpersistence WHEN 'u' THEN ', unlogged' ELSE '' END"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'p', 'f') AND {ns}"
        " AND {ext}",
    ),
    (
        "column",
        ("pg_class", "c.oid"),
        "SELECT n.nspname || '.' || c.relname || '.' || a.attname,"
        " 'type ' || format_type(a.atttypid, a.atttypmod)"
        " || CASE WHEN a.attnotnull THEN ', NOT NULL' ELSE '' END"
        " || COALESCE(', default ' || pg_get_expr(d.adbin, d.adrelid), '')"
        " || CASE a.attidentity WHEN 'a' THEN ', identity always' WHEN 'd' THEN ', identity by default' ELSE '' END"
        " || CASE a.attgenerated WHEN 's' THEN ', generated stored' WHEN 'v' THEN ', generated virtual' ELSE '' END"
        " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
        " LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
        " WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'f', 'c') AND {ns}"
        " AND {ext}",
    ),
    (
        "constraint",
        ("pg_constraint", "con.oid"),
        "SELECT n.nspname || '.' || COALESCE(c.relname, t.typname) || '.' || con.conname,"
        " pg_get_constraintdef(con.oid) || CASE WHEN con.convalidated THEN '' ELSE ' (not validated)' END"
        " FROM pg_constraint con JOIN pg_namespace n ON n.oid = con.connamespace"
        " LEFT JOIN pg_class c ON c.oid = con.conrelid LEFT JOIN pg_type t ON t.oid = con.contypid"
        " WHERE {ns} AND {ext}",
    ),
    (
        "index",
        ("pg_class", "i.indrelid"),
        "SELECT n.nspname || '.' || c.relname, pg_get_indexdef(i.indexrelid)"
        " || CASE WHEN i.indisvalid THEN '' ELSE ' (INVALID)' END"
        " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE {ns} AND {ext}",
    ),
    (
        "view",
        ("pg_class", "c.oid"),
        "SELECT n.nspname || '.' || c.relname, CASE c.relkind WHEN 'm' THEN 'materialized view: ' ELSE 'view: ' END"
        " || pg_get_viewdef(c.oid)"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('v', 'm') AND {ns} AND {ext}",
    ),
    (
        "sequence",
        ("pg_class", "c.oid"),
        "SELECT n.nspname || '.' || c.relname, format_type(s.seqtypid, NULL) || ' increment ' || s.seqincrement"
        " || ' min ' || s.seqmin || ' max ' || s.seqmax || ' start ' || s.seqstart"
        " || CASE WHEN s.seqcycle THEN ' cycle' ELSE '' END"
        " || COALESCE(' owned by ' || (SELECT r.relname || '.' || a.attname FROM pg_depend d"
        "   JOIN pg_class r ON r.oid = d.refobjid JOIN pg_attribute a ON a.attrelid = d.refobjid"
        "   AND a.attnum = d.refobjsubid WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid"
        "   AND d.deptype IN ('a', 'i') AND d.refclassid = 'pg_class'::regclass LIMIT 1), '')"
        " FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE {ns} AND {ext}",
    ),
    (
        "function",
        ("pg_proc", "p.oid"),
        "SELECT n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',"
        " CASE WHEN p.prokind IN ('f', 'p')"
        " THEN md5(btrim(regexp_replace(pg_get_functiondef(p.oid), '[[:space:]]+', ' ', 'g')))"
        " ELSE p.prokind::text END"
        " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE {ns} AND {ext}",
    ),
    (
        "trigger",
        None,
        "SELECT n.nspname || '.' || c.relname || '.' || tg.tgname, pg_get_triggerdef(tg.oid)"
        " FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE NOT tg.tgisinternal AND {ns}",
    ),
    (
        "type",
        ("pg_type", "t.oid"),
        "SELECT n.nspname || '.' || t.typname, CASE t.typtype"
        " WHEN 'e' THEN 'enum (' || (SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder)"
        "   FROM pg_enum e WHERE e.enumtypid = t.oid) || ')'"
        " WHEN 'd' THEN 'domain over ' || format_type(t.typbasetype, t.typtypmod)"
        "   || CASE WHEN t.typnotnull THEN ' NOT NULL' ELSE '' END || COALESCE(' default ' || t.typdefault, '')"
        " WHEN 'c' THEN 'composite' WHEN 'r' THEN 'range' ELSE t.typtype::text END"
        " FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace"
        " LEFT JOIN pg_class c ON c.oid = t.typrelid"
        " WHERE t.typtype IN ('e', 'd', 'c', 'r') AND (t.typtype <> 'c' OR c.relkind = 'c') AND {ns}"
        " AND {ext}",
    ),
    (
        "policy",
        None,
        "SELECT n.nspname || '.' || c.relname || '.' || p.polname,"
        " p.polcmd::text || ' ' || COALESCE(pg_get_expr(p.polqual, p.polrelid), '')"
        " || ' / ' || COALESCE(pg_get_expr(p.polwithcheck, p.polrelid), '')"
        " FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace",
    ),
)

# A view made with 'now'::timestamp keeps the moment it was created as a constant: mask those.
_TIMESTAMP_LITERAL = re.compile(r"'\d{4}-\d\d-\d\d[ T][0-9:.+\-]+'::timestamp(?: with(?:out)? time zone)?")

Snapshot = dict[str, str]


def snapshot(conn: Any) -> Snapshot:
    """Every object of the user's schemas as ``kind name`` -> description."""
    result: Snapshot = {}
    for kind, owner, query in _QUERIES:
        ext: sql.Composable = sql.SQL("true")
        if owner is not None:
            ext = sql.SQL(_NOT_EXTENSION).format(sql.Literal(owner[0]), sql.Identifier(*owner[1].split(".")))
        statement = sql.SQL(query).format(ns=sql.SQL(_USER_NS), ext=ext)
        for name, value in conn.execute(statement).fetchall():
            text = str(value or "")
            if kind == "view":
                text = _TIMESTAMP_LITERAL.sub("'<timestamp>'::timestamp", text)
            result[f"{kind} {name}"] = text
    return result


def compare(expected: Snapshot, actual: Snapshot, what: str) -> list[dict[str, str | None]]:
    """What differs, object by object, worded for ``what`` (e.g. "after the rollback")."""
    differences: list[dict[str, str | None]] = []
    for key in sorted(set(expected) | set(actual)):
        before, after = expected.get(key), actual.get(key)
        if before == after:
            continue
        if after is None:
            message = f"{key} is missing {what}" + (f" (was: {before})" if before else "")
        elif before is None:
            message = f"{key} is left over {what}" + (f" ({after})" if after else "")
        else:
            message = f"{key} differs {what}: expected {before}, found {after}"
        differences.append({"object": key, "expected": before, "found": after, "message": message})
    return differences
