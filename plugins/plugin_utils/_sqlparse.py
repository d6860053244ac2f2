# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""SQL text -> statements with their parse trees, from one pglast parse. Controller only."""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from collections.abc import Iterator
from json.decoder import scanstring  # type: ignore[attr-defined]
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


class LineIndex:
    """Line numbers of character offsets in one text: the offsets where lines start, computed once
    (linear in the text), then one binary search per offset, in any order."""

    def __init__(self, text: str) -> None:
        self.starts = [0]
        find, pos = text.find, text.find("\n")
        while pos >= 0:
            self.starts.append(pos + 1)
            pos = find("\n", pos + 1)

    def line(self, offset: int) -> int:
        return bisect_right(self.starts, max(offset, 0))


# A parse tree nested deeper than json's recursion limit (a 500-term sum, 300 nested subqueries) is
# decoded without recursion: the same values, built with an explicit stack.
_JSON_TOKEN_RE = re.compile(r'[\s,:]*(?:(")|([\[{])|([\]}])|(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)|(true|false|null))')
_JSON_LITERALS = {"true": True, "false": False, "null": None}


def _loads_iterative(text: str) -> Any:
    stack: list[Any] = []
    keys: list[str | None] = []  # per open object: the key read, waiting for its value
    root: Any = None
    pos, end = 0, len(text)
    while True:
        match = _JSON_TOKEN_RE.match(text, pos)
        if match is None:
            if stack or text[pos:].strip():
                raise ValueError(f"not JSON at offset {pos}")
            return root
        pos = match.end()
        quote, opening, closing, number, literal = match.groups()
        value: Any
        if closing:
            stack.pop()
            keys.pop()
            if not stack and text[pos:].strip() == "":
                return root
            continue
        if quote:
            value, pos = scanstring(text, pos)
            if stack and keys[-1] is None and isinstance(stack[-1], dict):
                keys[-1] = value
                continue
        elif opening:
            value = {} if opening == "{" else []
        elif number is not None:
            value = float(number) if "." in number or "e" in number.lower() else int(number)
        else:
            value = _JSON_LITERALS[literal]
        if not stack:
            root = value
        elif isinstance(stack[-1], list):
            stack[-1].append(value)
        else:
            stack[-1][keys[-1]] = value
            keys[-1] = None
        if opening:
            stack.append(value)
            keys.append(None)
        elif not stack and pos >= end:
            return root


def loads_tree(text: str) -> Any:
    """json.loads of a pglast JSON tree, at any depth (json's C decoder recurses once per level)."""
    try:
        return json.loads(text)
    except RecursionError:
        return _loads_iterative(text)


_TO_ASCII = bytes(range(128)) + b"z" * 128


def ascii_twin(text: str) -> tuple[bytes, str]:
    """The text's UTF-8 bytes, and an ASCII text of the same length in which every byte of a non-ASCII
    character is ``z``. PostgreSQL's scanner reads any byte >= 0x80 as a letter, as it reads ``z``, so
    the twin scans and splits into tokens at the same offsets; offsets into the twin are byte offsets
    of the original. pglast maps byte offsets back to characters with a search per token that is
    linear in the count of non-ASCII characters (quadratic over a file): the twin needs no mapping."""
    raw = text.encode("utf-8")
    return raw, text if len(raw) == len(text) else raw.translate(_TO_ASCII).decode("ascii")


def scan_bytes(text: str) -> tuple[bytes, list[tuple[int, int, str]]]:
    """PostgreSQL's scanner tokens of ``text`` as (start, end exclusive, token name), in byte offsets
    of the UTF-8 text returned beside them. Linear in the text. Raises pglast's ParseError."""
    raw, twin = ascii_twin(text)
    return raw, [(t.start, t.end + 1, t.name) for t in _pg.scan(twin)]


SCAN_PIECE = 1 << 18  # characters of the twin scanned at once by iter_tokens


def iter_tokens(text: str) -> tuple[bytes, Iterator[tuple[int, int, str]]]:
    """scan_bytes' tokens one piece of the text at a time (memory bounded by the piece, not the file):
    the text is cut only where a statement starts, as PostgreSQL's scanner splits it, which is always
    between two tokens, so the tokens are those of one scan of the whole text."""
    raw, twin = ascii_twin(text)
    if len(twin) <= SCAN_PIECE:
        return raw, iter([(t.start, t.end + 1, t.name) for t in _pg.scan(twin)])
    try:
        cuts = [s.start for s in _pg.split(twin, with_parser=False, only_slices=True)]
    except _pg.ParseError:
        cuts = []
    return raw, _pieces(twin, cuts)


def _pieces(twin: str, cuts: list[int]) -> Iterator[tuple[int, int, str]]:
    begin = 0
    for cut in [*cuts, len(twin)]:
        if cut - begin < SCAN_PIECE and cut < len(twin):
            continue
        if cut > begin:
            for t in _pg.scan(twin[begin:cut]):
                yield begin + t.start, begin + t.end + 1, t.name
        begin = cut


_META_RE = re.compile(r"\\(?:[A-Za-z]+[+!]?|.)")


def _parse_error(exc: Exception, text: str, path: str) -> MigrationError:
    """pglast's ParseError as a MigrationError naming the line: the error's own location, else (an
    error "at end of input" has none) the line where the unfinished statement starts."""
    args = exc.args
    message = str(args[0]) if args else "cannot parse"
    location = args[1] if len(args) > 1 and isinstance(args[1], int) else None
    lines = LineIndex(text)
    meta = _META_RE.match(text, location) if location is not None and text.startswith("\\", location) else None
    if meta is not None:
        return MigrationError(
            f"psql meta-command {meta.group(0)} is not SQL; migrations run through the driver, not psql: "
            "inline the SQL",
            path,
            lines.line(location or 0),
        )
    if "stack depth limit exceeded" in message or message.startswith("memory exhausted"):
        message = f"nested too deeply for PostgreSQL's parser ({message})"
    elif not message.startswith("syntax error"):
        message = f"syntax error: {message}"
    line = lines.line(location if location is not None else _last_statement_start(text))
    return MigrationError(message, path, line)


_COMMENT_TOKENS = frozenset(("SQL_COMMENT", "C_COMMENT"))


def _last_statement_start(text: str) -> int:
    """Character offset of the first token after the last top-level semicolon (0 when unknown)."""
    try:
        raw, tokens = scan_bytes(text)
    except Exception:  # pglast's ParseError: an unterminated literal or comment
        return 0
    start = None
    tokens = [t for t in tokens if t[2] not in _COMMENT_TOKENS]
    while tokens and tokens[-1][2] == "ASCII_59":  # the unfinished statement may end with its ";"
        tokens.pop()
    for first, _last, name in reversed(tokens):
        if name == "ASCII_59":
            break
        start = first
    if start is None:
        return 0
    return len(raw[:start].decode("utf-8", errors="replace"))


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
    Statements come in the order of the text: character offsets are carried forward from one
    statement to the next, and line numbers come from the lines' start offsets, found once, so the
    text is scanned once, not once per statement. A parse error names its line; a psql
    meta-command (``\\i file``) is named as such.
    """
    if not HAS_PGLAST:  # pragma: no cover
        raise MigrationError("the Python library pglast is required on the controller", path)
    try:
        nodes = loads_tree(_pg.parse_sql_json(text)).get("stmts", [])
    except _pg.ParseError as exc:
        raise _parse_error(exc, text, path) from None
    ascii_only = text.isascii()
    raw = b"" if ascii_only else text.encode("utf-8")
    size = len(text) if ascii_only else len(raw)
    parsed: list[Parsed] = []
    lines = LineIndex(text)
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
        parsed.append(Parsed(kind, body, lines.line(first), sql, first, first + len(sql)))
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
