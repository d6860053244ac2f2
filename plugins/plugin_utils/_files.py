# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Migration files -> Migration objects. Runs on the controller (it needs pglast).

Layouts read, all in one directory:

* the guide's template: ``016_add_feature_x.sql`` with header comments, BEGIN/COMMIT, its own
  ``INSERT INTO schema_migrations`` and a commented ``-- ROLLBACK`` block after its banner;
* the same with the rollback saved separately beside it: ``016_add_feature_x.rollback.sql``;
* golang-migrate: ``0001_name.up.sql`` + ``0001_name.down.sql``;
* Diesel: ``0001_name/up.sql`` + ``0001_name/down.sql`` (+ ``metadata.toml``).

Statements are split by PostgreSQL's own parser (pglast), never by regular expressions.

Only regular files are read, through one descriptor (never a FIFO, a device, a directory), and at
most ``TME_MIGRATIONS_MAX_FILE_SIZE`` bytes of each (default 64 MiB): a bigger file is an error
naming it. Reading is linear in the file's size. A statement nested deeper than Python's recursion
limit allows (a 500-term sum, 300 nested subqueries, 400 nested IFs in a DO block) is read again
with a bounded higher limit in a thread with a large stack; past that it is an error naming the
file and line, never a crash.
"""

from __future__ import annotations

import gc
import hashlib
import os
import re
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from ansible_collections.tme.migrations.plugins.module_utils._model import (
    BREAKING,
    SAFE,
    Migration,
    MigrationError,
    Script,
    Statement,
)
from ansible_collections.tme.migrations.plugins.module_utils._versions import parse_version
from ansible_collections.tme.migrations.plugins.plugin_utils._classify import review
from ansible_collections.tme.migrations.plugins.plugin_utils._discover import Source, discover, discover_path
from ansible_collections.tme.migrations.plugins.plugin_utils._findings import accept
from ansible_collections.tme.migrations.plugins.plugin_utils._sqlparse import (
    HAS_PGLAST,
    Parsed,
    ascii_twin,
    is_transactional,
    iter_tokens,
    parse_statements,
)

if HAS_PGLAST:
    import pglast.parser as _pg

_HEADER_RE = re.compile(r"^--\s*(?P<key>[A-Za-z][A-Za-z ]*?)\s*:\s*(?P<value>.*?)\s*$")
_BANNER_RE = re.compile(r"^\s*--\s*ROLLBACK\b")  # the guide writes it upper-case
_DECORATION_RE = re.compile(r"^\s*--\s*[=\-#*]{3,}\s*$")

_KEEP_TXN = {"TRANS_STMT_SAVEPOINT", "TRANS_STMT_RELEASE", "TRANS_STMT_ROLLBACK_TO"}
_DROP_TXN = {"TRANS_STMT_BEGIN", "TRANS_STMT_START", "TRANS_STMT_COMMIT"}


def normalize(text: str) -> str:
    """Line endings to LF, trailing blanks off every line and off the end."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).rstrip("\n") + "\n"


def legacy_checksum(text: str) -> str:
    """The first scheme, still accepted when recorded: sha256 of the normalized forward text."""
    return hashlib.sha256(normalize(text).encode("utf-8")).hexdigest()


_COMMENTS = frozenset(("SQL_COMMENT", "C_COMMENT"))


def checksum(text: str) -> str:
    """sha256 of the forward SQL's tokens as PostgreSQL's scanner reads them: comments (the header's
    ``-- Tested on:``, ``-- Description:``) and whitespace between tokens do not count; any change to
    a statement, a string or a function body does."""
    digest = hashlib.sha256(b"tokens-v2\0")
    raw, tokens = iter_tokens(text)  # byte offsets: linear, also for non-ASCII text
    for start, end, name in tokens:
        if name not in _COMMENTS:
            digest.update(raw[start:end])
            digest.update(b"\0")
    return digest.hexdigest()


def _char_spans(text: str, byte_spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Byte offsets of the UTF-8 text (in order) as character offsets, in one pass."""
    if text.isascii():
        return byte_spans
    raw = text.encode("utf-8")
    spans, byte_at, char_at = [], 0, 0
    for first, last in byte_spans:
        chars = []
        for offset in (first, last):
            if offset < byte_at:  # pragma: no cover - the parser reports statements in order
                byte_at, char_at = 0, 0
            char_at += len(raw[byte_at:offset].decode("utf-8", errors="replace"))
            byte_at = offset
            chars.append(char_at)
        spans.append((chars[0], chars[1]))
    return spans


def _rangevar_name(item: dict[str, Any]) -> str:
    return item["schemaname"] + "." + item["relname"] if item.get("schemaname") else item["relname"]


def _walk_relations(node: Any, names: list[str]) -> None:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "relpersistence" in item and "relname" in item:  # a RangeVar
                name = _rangevar_name(item)
                if name not in names:
                    names.append(name)
            stack.extend(v for v in item.values() if isinstance(v, (dict, list)))
        elif isinstance(item, list):
            stack.extend(item)


def _relations(kind: str, body: dict[str, Any]) -> tuple[str, ...]:
    """Tables a statement locks, to name who blocks it: the whole tree for ALTER TABLE and
    CREATE TABLE (a foreign key locks the table it references too), the statement's own
    relations otherwise (a full walk of every statement would cost more than the parse)."""
    names: list[str] = []
    if kind in ("AlterTableStmt", "CreateStmt"):
        _walk_relations(body, names)
        return tuple(names)
    relation = body.get("relation")
    if isinstance(relation, dict) and "relname" in relation:
        names.append(_rangevar_name(relation))
    for item in body.get("relations") or body.get("rels") or ():
        rangevar = item.get("RangeVar") or item.get("VacuumRelation", {}).get("relation")
        if rangevar and "relname" in rangevar and _rangevar_name(rangevar) not in names:
            names.append(_rangevar_name(rangevar))
    if kind == "DropStmt" and body.get("removeType") in ("OBJECT_TABLE", "OBJECT_VIEW", "OBJECT_MATVIEW"):
        for obj in body.get("objects") or ():
            parts = [i.get("String", {}).get("sval", "") for i in obj.get("List", {}).get("items", ())]
            if parts:
                names.append(".".join(parts))
    return tuple(names)


def _is_tracking(kind: str, body: dict[str, Any], tracking_table: str) -> bool:
    if kind not in ("InsertStmt", "DeleteStmt", "UpdateStmt"):
        return False
    return bool(body.get("relation", {}).get("relname") == tracking_table)


def script_from(parsed: list[Parsed], path: str, tracking_table: str = "schema_migrations") -> Script:
    """The statements the engine runs: the file's BEGIN/COMMIT dropped, ROLLBACK refused."""
    statements: list[Statement] = []
    for kind, body, line, sql, _start, _stop in parsed:
        if kind == "TransactionStmt":
            txn = body.get("kind")
            if txn in _DROP_TXN:
                continue
            if txn not in _KEEP_TXN:
                raise MigrationError(
                    f"{sql} is not allowed in a migration: the engine runs each migration in its own transaction",
                    path,
                    line,
                )
        index = schema = None
        if kind == "IndexStmt" and body.get("concurrent"):
            index = body.get("idxname")
            schema = body.get("relation", {}).get("schemaname")
        statements.append(
            Statement(
                sql=sql,
                line=line,
                transactional=is_transactional(kind, body),
                tracking=_is_tracking(kind, body, tracking_table),
                index=index,
                schema=schema,
                relations=_relations(kind, body),
                kind=kind,
            )
        )
    return Script(path=path, statements=tuple(statements))


def parse_script(text: str, path: str, tracking_table: str = "schema_migrations") -> Script:
    """Split a script into statements with PostgreSQL's parser.

    The file's BEGIN/START TRANSACTION/COMMIT are dropped: the engine owns the transaction. A
    ROLLBACK or a prepared transaction is refused, since the engine could not honour it.
    """
    return script_from(parse_statements(text, path), path, tracking_table)


def read_headers(text: str) -> dict[str, str]:
    """The template's leading ``-- Key: value`` comment lines (Migration, Date, Author, Type, ...)."""
    headers: dict[str, str] = {}
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if not line:
            continue
        if not line.startswith("--"):
            break
        match = _HEADER_RE.match(line)
        if match and match.group("key").lower() not in headers:
            headers[match.group("key").strip().lower()] = match.group("value")
    return headers


def declared_type(headers: dict[str, str]) -> str | None:
    """SAFE or BREAKING from ``-- Type: SAFE - ...``; the template's ``[SAFE|BREAKING]`` declares nothing."""
    value = headers.get("type", "").upper()
    has_safe, has_breaking = SAFE in value, BREAKING in value
    if has_safe == has_breaking:
        return None
    return SAFE if has_safe else BREAKING


@dataclass(frozen=True)
class _Inline:
    forward: str
    rollback: str | None
    rollback_line: int
    cut: int  # offset of the banner in the text: statements before it are the forward part


def split_inline_rollback(text: str, path: str, spans: list[tuple[int, int]] | None = None) -> _Inline:
    """Cut the template at its ``-- ROLLBACK`` banner and uncomment the block after it.

    The banner counts only outside every statement (never inside a string or dollar quote), and
    SQL after it must be commented out: plain ``psql < file`` would run it otherwise. ``spans``
    are the statements' character offsets in ``text`` when the caller has parsed it already.
    """
    lines = text.replace("\r\n", "\n").split("\n")
    offsets, pos = [], 0
    for line in lines:
        offsets.append(pos)
        pos += len(line) + 1
    candidates = [i for i, line in enumerate(lines) if _BANNER_RE.match(line)]
    if not candidates:
        return _Inline(text, None, 0, len(text))
    if spans is None:
        joined = "\n".join(lines)
        try:
            _raw, twin = ascii_twin(joined)  # pglast's own mapping of offsets is quadratic
            byte_spans = [(s.start, s.stop) for s in _pg.split(twin, with_parser=True, only_slices=True)]
            spans = _char_spans(joined, byte_spans)
        except _pg.ParseError:
            spans = []  # the forward part's own parse reports the error with its line
    for index in candidates:
        start = offsets[index]
        if any(first <= start < last for first, last in spans):
            continue
        body: list[str] = []
        for number, line in enumerate(lines[index + 1 :], start=index + 2):
            stripped = line.strip()
            if not stripped or _DECORATION_RE.match(line):
                body.append("")
            elif stripped.startswith("--"):
                uncommented = stripped[2:]
                body.append(uncommented[1:] if uncommented.startswith(" ") else uncommented)
            else:
                raise MigrationError(
                    "SQL after the ROLLBACK banner is not commented out; psql would run it as part of the migration",
                    path,
                    number,
                )
        rollback = "\n".join(body)
        return _Inline("\n".join(lines[:index]) + "\n", rollback, index + 1, start)
    return _Inline(text, None, 0, len(text))


MAX_FILE_SIZE = 64 * 1024 * 1024  # bytes; TME_MIGRATIONS_MAX_FILE_SIZE overrides it


def max_file_size() -> int:
    configured = os.environ.get("TME_MIGRATIONS_MAX_FILE_SIZE", "").strip()
    try:
        return int(configured) if configured else MAX_FILE_SIZE
    except ValueError:
        return MAX_FILE_SIZE


def read_bytes(path: str) -> bytes:
    """A regular file's bytes, at most max_file_size() of them. Opened without blocking (a FIFO would
    wait for a writer) and checked on the open descriptor before anything is read: a FIFO, a device
    (a link to /dev/zero), a socket or a directory is an error naming the file."""
    limit = max_file_size()
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise MigrationError(f"cannot read: {exc.strerror}", path) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise MigrationError(f"not a regular file ({_file_kind(info.st_mode)}): not read", path)
        if info.st_size > limit:
            raise MigrationError(_too_big(info.st_size, limit), path)
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:  # grew while read
                raise MigrationError(_too_big(total, limit), path)
        return b"".join(chunks)
    except OSError as exc:
        raise MigrationError(f"cannot read: {exc.strerror}", path) from None
    finally:
        os.close(fd)


def _file_kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "not a file"


def _too_big(size: int, limit: int) -> str:
    return (
        f"larger than the limit of {limit} bytes ({size} bytes or more): not read; "
        "TME_MIGRATIONS_MAX_FILE_SIZE raises the limit"
    )


def _read(path: str) -> str:
    data = read_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MigrationError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", path) from None


# A statement nested deeper than the recursion limit allows is read again with this limit, in a thread
# whose stack holds it; anything deeper is an error. PostgreSQL's own parser refuses far deeper trees.
DEEP_RECURSION_LIMIT = 100_000
DEEP_STACK_SIZE = 512 * 1024 * 1024
_DEEP_LOCK = threading.Lock()


def _deeply(call: Callable[[], Migration]) -> Migration:
    """``call()`` with a raised recursion limit, in a thread with a stack large enough for it."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # noqa: B036 - handed back to the calling thread
            outcome["error"] = exc

    with _DEEP_LOCK:
        limit = sys.getrecursionlimit()
        old_size = threading.stack_size()
        try:
            sys.setrecursionlimit(max(limit, DEEP_RECURSION_LIMIT))
            threading.stack_size(DEEP_STACK_SIZE)  # read when the thread starts
            worker = threading.Thread(target=run, name="tme-migrations-deep-parse")
            worker.start()
            threading.stack_size(old_size)
            worker.join()
        finally:
            threading.stack_size(old_size)
            sys.setrecursionlimit(limit)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


@contextmanager
def _no_gc() -> Iterator[None]:
    """No cyclic garbage collection while a file's trees are built: they hold no cycles, and each
    collection walks every object alive, so a big file's millions of nodes made reading it quadratic."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _deepest_line(path: str) -> int:
    """The line of the most deeply nested statement of a file (1 when it cannot be told)."""
    try:
        text = _read(path)
        statements = parse_statements(text, path)
    except (MigrationError, RecursionError):
        return 1
    best, line = -1, 1
    for statement in statements:
        depth = 0
        stack: list[tuple[Any, int]] = [(statement.body, 1)]
        while stack:
            item, level = stack.pop()
            depth = max(depth, level)
            if isinstance(item, dict):
                stack.extend((v, level + 1) for v in item.values() if isinstance(v, (dict, list)))
            elif isinstance(item, list):
                stack.extend((v, level + 1) for v in item if isinstance(v, (dict, list)))
        if depth > best:
            best, line = depth, statement.line
    return line


def load_migration(
    version: str,
    forward_path: str,
    rollback_path: str | None = None,
    tracking_table: str = "schema_migrations",
    require_rollback: bool = True,
    in_transaction: bool = True,
) -> Migration:
    """Read one migration: forward SQL, rollback (separate file or the inline block), checksum.
    Every failure is a MigrationError naming the file (and the line when there is one)."""

    def call() -> Migration:
        return _load_migration(version, forward_path, rollback_path, tracking_table, require_rollback, in_transaction)

    try:
        with _no_gc():
            return call()
    except RecursionError:
        pass  # retried below, outside this handler: its traceback holds the whole deep stack
    try:
        return _deeply(call)
    except RecursionError:
        raise MigrationError(
            f"a statement is nested too deeply to analyse (more than {DEEP_RECURSION_LIMIT} levels)",
            forward_path,
            _deepest_line(forward_path),
        ) from None


def _load_migration(
    version: str,
    forward_path: str,
    rollback_path: str | None,
    tracking_table: str,
    require_rollback: bool,
    in_transaction: bool,
) -> Migration:
    text = _read(forward_path).replace("\r\n", "\n")
    try:
        # One parse serves both: the rollback block after the banner is all comments.
        everything: list[Parsed] | None = parse_statements(text, forward_path)
    except MigrationError:
        everything = None  # e.g. uncommented SQL after the banner: reported with its own message below
    spans = [(p.start, p.stop) for p in everything] if everything is not None else None
    inline = split_inline_rollback(text, forward_path, spans)
    if everything is not None:
        parsed = [p for p in everything if p.start < inline.cut]
    else:
        parsed = parse_statements(inline.forward, forward_path)
    forward = script_from(parsed, forward_path, tracking_table)
    if not forward.statements:
        raise MigrationError("no SQL statement in the migration", forward_path)
    if not in_transaction:
        forward = Script(
            forward.path,
            tuple(replace(s, transactional=False) for s in forward.statements),
        )
    rollback: Script | None = None
    rollback_parsed: list[Parsed] | None = None
    rollback_error: str | None = None
    rollback_name = rollback_path or forward_path + " (ROLLBACK block)"
    try:
        if rollback_path is not None:
            rollback_parsed = parse_statements(_read(rollback_path), rollback_path)
        elif inline.rollback is not None:
            # Keep the file's line numbers: the block starts right after the banner.
            padded = "\n" * inline.rollback_line + inline.rollback
            rollback_parsed = parse_statements(padded, rollback_name)
        if rollback_parsed is not None:
            rollback = script_from(rollback_parsed, rollback_name, tracking_table)
    except MigrationError as exc:
        # Kept, not raised: an old migration's broken rollback must not block new ones. The
        # engine refuses to apply this migration, or to roll it back, and names the error.
        rollback_error = str(exc)
        rollback, rollback_parsed = Script(rollback_name, ()), None
    if require_rollback and rollback is None:
        raise missing_rollback(version, forward_path)
    headers = read_headers(text)
    declared = declared_type(headers)
    detected, rollback_type, findings = review(
        parsed, forward_path, forward.transactional, declared, rollback_parsed, rollback_name, rollback_error
    )
    number = parse_version(version)
    name = number[1] if number else version
    return Migration(
        version=version,
        path=forward_path,
        forward=forward,
        rollback=rollback,
        checksum=checksum(inline.forward),
        legacy_checksum=legacy_checksum(inline.forward),
        description=headers.get("description") or name.replace("_", " ").strip(),
        declared_type=declared,
        headers=headers,
        rollback_error=rollback_error,
        detected_type=detected,
        rollback_type=rollback_type,
        # What the file's "-- Allow: rule" header accepts is marked here, once: the lint shows it as an
        # accepted info, and the engine and the rehearsal refuse only the error findings left.
        findings=tuple(accept((f.to_dict() for f in findings), headers)),
    )


def missing_rollback(version: str, path: str) -> MigrationError:
    return MigrationError(
        "no rollback SQL: add a commented '-- ROLLBACK' block after the migration, as in the "
        f"guide's template, or a file {version}.rollback.sql beside it",
        path,
    )


def load_source(source: Source, tracking_table: str = "schema_migrations", require_rollback: bool = True) -> Migration:
    return load_migration(
        source.version, source.forward, source.rollback, tracking_table, require_rollback, source.in_transaction
    )


def load_directory(
    directory: str,
    tracking_table: str = "schema_migrations",
    require_rollback: bool = True,
) -> list[Migration]:
    """Every migration of a directory, ordered by version. Duplicates and stray SQL files are errors."""
    return [load_source(s, tracking_table, require_rollback) for s in discover(directory)]


def load_path(path: str, tracking_table: str = "schema_migrations", require_rollback: bool = True) -> list[Migration]:
    """A directory of migrations, or one migration file (its rollback file found beside it)."""
    return [load_source(s, tracking_table, require_rollback) for s in discover_path(path)]
