# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""SQL text -> statements with their parse trees, from one pglast parse. Controller only."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from ansible_collections.tme.migrations.plugins.module_utils._model import MigrationError

try:
    import pglast.parser as _pg

    HAS_PGLAST = True
except ImportError:  # pragma: no cover - reported by the caller
    HAS_PGLAST = False


_NEVER_IN_TXN = {
    "CreatedbStmt",
    "DropdbStmt",
    "AlterSystemStmt",
    "CreateTableSpaceStmt",
    "DropTableSpaceStmt",
}


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, max(offset, 0)) + 1


class Parsed(NamedTuple):
    """One statement as the parser saw it: node type, node, first line, and its text."""

    kind: str
    body: dict[str, Any]
    line: int
    sql: str
    start: int  # character offsets of the statement in its text, first token to end
    stop: int


def _skip_blank(text: str, pos: int, end: int) -> int:
    """Move past whitespace and comments (``--`` and nested ``/* */``) to the statement's first token."""
    while pos < end:
        char = text[pos]
        if char.isspace():
            pos += 1
        elif text.startswith("--", pos):
            newline = text.find("\n", pos)
            pos = end if newline < 0 else newline + 1
        elif text.startswith("/*", pos):
            depth, pos = 1, pos + 2
            while pos < end and depth:
                if text.startswith("/*", pos):
                    depth, pos = depth + 1, pos + 2
                elif text.startswith("*/", pos):
                    depth, pos = depth - 1, pos + 2
                else:
                    pos += 1
        else:
            break
    return pos


def parse_statements(text: str, path: str) -> list[Parsed]:
    """Every statement of a script, transaction control included, from one parse.

    The parser reports byte offsets; they are mapped back to characters for non-ASCII text.
    Statements come in the order of the text: line numbers and character offsets are carried
    forward from one statement to the next, so the text is scanned once, not once per statement.
    """
    if not HAS_PGLAST:  # pragma: no cover
        raise MigrationError("the Python library pglast is required on the controller", path)
    try:
        nodes = json.loads(_pg.parse_sql_json(text))["stmts"]
    except _pg.ParseError as exc:
        message, location = exc.args[0], exc.args[1] if len(exc.args) > 1 else 0
        raise MigrationError(f"syntax error: {message}", path, line_of(text, location)) from None
    ascii_only = text.isascii()
    raw = b"" if ascii_only else text.encode("utf-8")
    size = len(text) if ascii_only else len(raw)
    parsed: list[Parsed] = []
    line, counted = 1, 0  # `line` is the line of character offset `counted`
    byte_at, char_at = 0, 0  # non-ASCII text: a byte offset already mapped, and its character offset
    for node in nodes:
        start = node.get("stmt_location", 0)
        length = node.get("stmt_len")
        stop = size if length is None or length == 0 else start + length
        if ascii_only:
            chunk = text[start:stop]
        else:
            chunk = raw[start:stop].decode("utf-8")
            if start < byte_at:  # pragma: no cover - the parser reports statements in order
                byte_at, char_at = 0, 0
            char_at += len(raw[byte_at:start].decode("utf-8"))
            byte_at, start = start, char_at
        skip = _skip_blank(chunk, 0, len(chunk))
        ((kind, body),) = node["stmt"].items()
        sql = chunk[skip:].rstrip()
        first = start + skip
        if first < counted:  # pragma: no cover - the parser reports statements in order
            line, counted = 1, 0
        line += text.count("\n", counted, first)
        counted = first
        parsed.append(Parsed(kind, body, line, sql, first, first + len(sql)))
    return parsed


def is_transactional(kind: str, body: dict[str, Any]) -> bool:
    """False for statements PostgreSQL refuses inside a transaction block."""
    if kind in _NEVER_IN_TXN:
        return False
    if kind in ("IndexStmt", "DropStmt"):
        return not body.get("concurrent", False)
    if kind == "ReindexStmt":
        if body.get("kind") in ("REINDEX_OBJECT_DATABASE", "REINDEX_OBJECT_SYSTEM"):
            return False
        return not any(p.get("DefElem", {}).get("defname") == "concurrently" for p in body.get("params", []))
    if kind == "VacuumStmt":
        return not body.get("is_vacuumcmd", False)
    if kind == "ClusterStmt":
        return "relation" in body
    if kind == "AlterTableStmt":
        for cmd in body.get("cmds", []):
            part = cmd.get("AlterTableCmd", {}).get("def", {}).get("PartitionCmd")
            if part and part.get("concurrent"):
                return False
    return True
