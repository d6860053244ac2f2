# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Parse once: the migrations of a directory as read before, reused while their files are unchanged.

One ``apply-safe.yml`` reads the same directory about nine times (rehearsal, plan, apply and verify
per host, the report twice), each task in a process of its own; scheduled runs read it again every
time. The cache is a pair of JSON files per directory (``ParseCache``) under ``$TME_MIGRATIONS_CACHE``
(default ``$XDG_CACHE_HOME/tme-migrations``, i.e. ``~/.cache/tme-migrations``, a 0700 directory; ``off``
turns it off). An entry is reused only when every file of the migration (forward, rollback, Diesel
metadata) has the same identity as when it was parsed: path, size, modification time in nanoseconds,
inode. Anything else, a new version of the collection or of pglast included, parses again. Files
that do not parse are never cached: their error is raised afresh each time. A read that needs no
statement (the lint, a status, the plan of an apply) decodes none. Controller only.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import zlib
from typing import Any

from ansible_collections.tme.migrations.plugins.module_utils._model import Migration, MigrationError
from ansible_collections.tme.migrations.plugins.plugin_utils._collection import collection_version
from ansible_collections.tme.migrations.plugins.plugin_utils._discover import Source, discover_path
from ansible_collections.tme.migrations.plugins.plugin_utils._redact import Redaction, migration_redaction

# 4: findings carry their acceptance by the file's "-- Allow:" header; 5: add-column-unknown-default names
# its functions; 6: 4 for caches written by a reader that did not mark the acceptance yet; 7: each entry
# keeps the redaction of its password literals; 8: the statements apart, as one JSON text per entry; 9: those
# texts in a statements file of their own, and the directory's listing; 10: each entry's digest of its statements,
# the file's owner, the device in each file's identity.
FORMAT = 10


def load_source(source: Source, tracking_table: str, require_rollback: bool = False) -> Migration:
    """_files.load_source, with the parser imported only when a file is parsed (a run that finds every
    file unchanged starts without pglast)."""
    # pylint: disable-next=import-outside-toplevel
    from ansible_collections.tme.migrations.plugins.plugin_utils import _files

    return _files.load_source(source, tracking_table, require_rollback=require_rollback)


def missing_rollback(version: str, path: str) -> MigrationError:
    # pylint: disable-next=import-outside-toplevel
    from ansible_collections.tme.migrations.plugins.plugin_utils import _files

    return _files.missing_rollback(version, path)


def cache_dir() -> str | None:
    configured = os.environ.get("TME_MIGRATIONS_CACHE", "")
    if configured.lower() in ("off", "0", "false", "no"):
        return None
    if configured:
        return configured
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tme-migrations")


def _stamp() -> str:
    """What the cached parses depend on besides the files: this format, the collection's version and
    the installed pglast (where it is and when it was installed: read without importing it)."""
    spec = importlib.util.find_spec("pglast")
    parser = spec.origin if spec and spec.origin else "?"
    try:
        parser += f":{os.stat(parser).st_mtime_ns}"
    except OSError:
        pass
    return f"{FORMAT}/{collection_version()}/{parser}"


def _identity(source: Source, known: dict[str, list[Any]] | None = None) -> list[list[Any]]:
    """What must be unchanged for a parse to be reused: each file's path, size, mtime_ns, inode and device
    (``known``: those of the directory's files by path, as its listing just read them)."""
    paths = [source.forward, source.rollback]
    if os.path.basename(source.forward) == "up.sql":  # Diesel: its metadata.toml decides the transaction
        paths.append(os.path.join(os.path.dirname(source.forward), "metadata.toml"))
    identity: list[list[Any]] = []
    for path in paths:
        if path is None:
            continue
        if known is not None and path in known:
            identity.append([path, *known[path]])
            continue
        try:
            identity.append([path, *_stat_identity(os.stat(path))])
        except OSError:
            identity.append([path, None])
    return identity


def _stat_identity(st: os.stat_result) -> list[int]:
    """What of a file's status says it is unchanged: size, mtime_ns, inode and device."""
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev]


def _listing(path: str) -> list[list[Any]] | None:
    """[name, size, mtime_ns, inode, device] of each entry of a directory that holds plain files only, by name;
    None for anything else (a symbolic link, a subdirectory, a FIFO, one file): discovered afresh then.
    Which files are migrations depends on nothing but their names when every entry is a plain file, so
    the same listing means the same migrations (``ParseCache.sources``)."""
    try:
        with os.scandir(path) as entries:
            listing = []
            for entry in entries:
                if not entry.is_file(follow_symlinks=False):
                    return None
                listing.append([entry.name, *_stat_identity(entry.stat(follow_symlinks=False))])
    except OSError:
        return None
    listing.sort()
    return listing


def _split(migration: Migration) -> tuple[dict[str, Any], str]:
    """A migration as a cache entry stores it: the dict without statements (each script's transactional
    hint kept), and the statements as one JSON text, decoded only for a migration that is to run. A
    warm read that needs no statement (a lint, a status, the plan of a scheduled no-op) decodes a
    tenth of the cache."""
    data = migration.to_dict()
    scripts: dict[str, Any] = {}
    for key in ("forward", "rollback"):
        script = data.get(key)
        if script is not None:
            scripts[key] = script["statements"]
            hint = script.get("transactional")
            if hint is None:
                hint = all(s.get("transactional", True) for s in script["statements"])
            data[key] = {"path": script["path"], "statements": [], "transactional": hint}
    return data, json.dumps(scripts, separators=(",", ":"))


def _joined(light: dict[str, Any], scripts: str) -> dict[str, Any]:
    """The migration's whole dict again, as the reader gave it (statements, no hint)."""
    statements = json.loads(scripts)
    data = dict(light)
    for key, listed in statements.items():
        data[key] = {"path": light[key]["path"], "statements": listed}
    return data


def _key(path: str, tracking_table: str) -> str:
    """The cache file's name for a directory as named (a relative name and the absolute one, as the lint
    and the playbooks name it, each have a file: the files' paths are stored as named) and a tracking
    table. Two checksums of zlib, not hashlib: its import (OpenSSL) costs more than a warm lint's read;
    the file says whose it is (``_owner``), so names that came to collide only cost a parse."""
    data = "\0".join(_owner(path, tracking_table)).encode("utf-8", "surrogateescape")
    return f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}{len(data):x}"


def _owner(path: str, tracking_table: str) -> list[str]:
    """Whose cache a file is: the directory (absolute, and as named) and the tracking table."""
    return [os.path.abspath(path), path, tracking_table]


def _digest(text: str) -> str:
    """Ties an entry to its statements' text: a statements file that is damaged, cut or from another
    write never lends an entry statements that are not its own (the migration is parsed again)."""
    data = text.encode("utf-8", "surrogateescape")
    return f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}{len(data):x}"


class ParseCache:
    """The cached parses of one directory (or file) for one tracking table name.

    Two files: ``KEY.json`` (what each migration is: its findings, checksum, ... and the directory's
    listing) and ``KEY.statements`` (each migration's statements as one JSON text), paired by a
    token that both carry. A read without statements (a lint, a status, a plan) decodes the first only;
    the second is decoded when a migration is to run. A pair that does not match (a concurrent writer
    between the two renames) only means the statements of the migrations to run are parsed again."""

    def __init__(self, path: str, tracking_table: str, directory: str | None, statements: bool = True) -> None:
        self.file = os.path.join(directory, _key(path, tracking_table) + ".json") if directory else None
        self.owner = _owner(path, tracking_table)
        self.tracking_table = tracking_table
        # False: the migrations come without their statements (what they are and their findings only:
        # the lint, a status, a plan); `with_statements` gives those of the migrations that are to run.
        self.statements = statements
        self.entries: dict[str, Any] = {}
        self.token = ""  # pairs this file with its statements file
        self._scripts: dict[str, str] | None = None  # version -> statements (JSON text), read when needed
        self.new_scripts: dict[str, str] = {}  # those of the files parsed in this read
        # The directory's listing (_listing) when it was last discovered, and the migrations found in it.
        self.listed: Any = None
        self.dirty = False
        self.parsed = 0  # files parsed afresh (not found unchanged in the cache)
        self.fresh: dict[str, Migration] = {}  # parsed in this read, statements included
        self.found: dict[str, Source] = {}  # the sources read, by version (a migration without its statements)
        # Per version, what hides its password literals (_redact): found once, when the file is parsed.
        self.redactions: dict[str, Redaction] = {}
        data = _read_json(self.file)
        if (
            isinstance(data, dict)
            and data.get("stamp") == _stamp()
            and data.get("owner") == self.owner
            and isinstance(data.get("entries"), dict)
        ):
            self.entries = data["entries"]
            self.listed = data.get("listed")
            self.token = str(data.get("token") or "")

    @property
    def statements_file(self) -> str:
        return (self.file or "")[: -len(".json")] + ".statements"  # JSON too

    def scripts(self) -> dict[str, str]:
        """Every cached migration's statements (JSON text) by version; empty when the pair does not match."""
        if self._scripts is None:
            data = _read_json(self.statements_file) if self.file and self.token else None
            scripts = data.get("scripts") if isinstance(data, dict) and data.get("token") == self.token else None
            self._scripts = scripts if isinstance(scripts, dict) else {}
        return self._scripts

    def get(self, source: Source, identity: list[list[Any]]) -> Migration | None:
        entry = self.entries.get(source.version)
        if not isinstance(entry, dict) or entry.get("identity") != identity:
            return None
        try:
            replacements, found = entry["redaction"]
            migration = self._with_scripts(entry) if self.statements else Migration.from_dict(entry["migration"])
        except (KeyError, TypeError, ValueError, AttributeError):
            return None  # an entry of another shape (damaged, hand-edited): parsed afresh and rewritten
        self.redactions[source.version] = (replacements, found)  # read only (Redactor.merged copies)
        return migration

    def _with_scripts(self, entry: dict[str, Any]) -> Migration:
        """An entry's migration with its statements from the statements file; KeyError (parse it again)
        when they are missing or are not the ones written with the entry."""
        scripts = self.scripts().get(entry["migration"]["version"])
        if not isinstance(scripts, str) or _digest(scripts) != entry.get("digest"):
            raise KeyError("statements")
        return Migration.from_dict(_joined(entry["migration"], scripts))

    def put(self, source: Source, identity: list[list[Any]], migration: Migration) -> None:
        redaction = migration_redaction(migration)
        self.redactions[source.version] = redaction
        light, scripts = _split(migration)
        self.entries[source.version] = {
            "identity": identity,
            "migration": light,
            "digest": _digest(scripts),
            "redaction": list(redaction),
        }
        self.new_scripts[source.version] = scripts
        self.fresh[source.version] = migration
        self.dirty = True

    def load(self, source: Source, known: dict[str, list[Any]] | None = None) -> Migration:
        """The migration of ``source``, parsed only when its files changed (its rollback not required);
        ``known``: the identity of the directory's files, as its listing read them (_identity)."""
        self.found[source.version] = source
        identity = _identity(source, known)
        migration = self.get(source, identity)
        if migration is None:
            migration = self.parse(source, identity)
            if not self.statements:
                migration = Migration.from_dict(self.entries[source.version]["migration"])
        return migration

    def parse(self, source: Source, identity: list[list[Any]] | None = None) -> Migration:
        """Parse the files of ``source`` afresh and keep the result."""
        migration = load_source(source, self.tracking_table, require_rollback=False)
        self.put(source, identity if identity is not None else _identity(source), migration)
        self.parsed += 1
        return migration

    def with_statements(self, migration: Migration) -> Migration:
        """``migration`` (read without statements) with its statements: from the statements file, or parsed
        again when it lacks them."""
        if migration.version in self.fresh:
            return self.fresh[migration.version]
        try:
            return self._with_scripts(self.entries[migration.version])
        except (KeyError, TypeError, ValueError, AttributeError):
            return self.parse(self.found[migration.version])

    def sources(self, path: str, listing: list[list[Any]] | None) -> list[Source] | None:
        """The migrations found in the directory (named as ``path``) when it had this very listing, or
        None: discover it."""
        if listing is None or not isinstance(self.listed, dict):
            return None
        if self.listed.get("path") != path or self.listed.get("listing") != listing:
            return None
        try:
            listed = self.listed["sources"]
            return [Source(str(v), str(f), None if r is None else str(r), bool(t)) for v, f, r, t in listed]
        except (KeyError, TypeError, ValueError):
            return None

    def remember(self, path: str, listing: list[list[Any]] | None, sources: list[Source]) -> None:
        """Keep what this listing of the directory holds, for the next read (``sources``)."""
        listed = None
        if listing is not None:
            found = [[s.version, s.forward, s.rollback, s.in_transaction] for s in sources]
            listed = {"path": path, "listing": listing, "sources": found}
        if listed != self.listed:
            self.listed = listed
            self.dirty = True

    def save(self, keep: set[str]) -> None:
        """Write the entries of the versions still there: the statements file first, then this one, each
        atomically (a concurrent reader never sees half of one, and a pair that does not match is noticed)."""
        stale = set(self.entries) - keep
        if not self.file or not (self.dirty or stale):
            return
        scripts = {**self.scripts(), **self.new_scripts}
        for version in stale:
            del self.entries[version]
        # An entry whose statements are not at hand (a pair that did not match) is dropped: parsed next time.
        self.entries = {v: e for v, e in self.entries.items() if v in scripts}
        token = os.urandom(8).hex()
        try:
            _write_json(self.statements_file, {"token": token, "scripts": {v: scripts[v] for v in self.entries}})
            main = {"stamp": _stamp(), "owner": self.owner, "token": token, "entries": self.entries}
            _write_json(self.file, {**main, "listed": self.listed})
            _remove_earlier_formats(os.path.dirname(self.file))
        except OSError:
            return  # a cache that cannot be written only costs the next run a parse
        self.token, self._scripts, self.new_scripts, self.dirty = token, scripts, {}, False


_EARLIER_NAME = re.compile(r"[0-9a-f]{24}\.json")  # formats 1 to 7 (sha256 names): statements in one file


def _remove_earlier_formats(directory: str) -> None:
    """Cache files of earlier formats are never read again, and hold statements (password literals an
    '-- Allow:' header accepted among them): removed when the cache is written."""
    with os.scandir(directory) as entries:
        for entry in entries:
            if _EARLIER_NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _read_json(path: str | None) -> Any:
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None  # missing or unreadable: parsed afresh and rewritten


def _write_json(path: str, data: Any) -> None:
    """``data`` as the file at ``path``, atomically, in a private directory."""
    import tempfile  # pylint: disable=import-outside-toplevel  # only when something changed

    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, separators=(",", ":"))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class CachedRead:
    """The migrations of a path as read through the cache (``read_path``)."""

    def __init__(self, cache: ParseCache, migrations: list[Migration], redactions: list[Redaction]) -> None:
        self.cache = cache
        self.migrations = migrations
        self.keep = {m.version for m in migrations}
        # Each migration's redaction (_redact.migration_redaction), found when its file was parsed.
        self.redactions = redactions

    @property
    def parsed(self) -> int:
        """How many files were parsed afresh (not found unchanged in the cache)."""
        return self.cache.parsed

    def with_statements(self, versions: set[str] | None = None) -> list[Migration]:
        """The migrations, those of ``versions`` (all: None) with their statements, the others as read."""
        if self.cache.statements:
            return self.migrations
        chosen = [
            self.cache.with_statements(m) if versions is None or m.version in versions else m for m in self.migrations
        ]
        self.cache.save(self.keep)  # a file whose statements had to be parsed again is kept (nothing else: no write)
        return chosen


def read_path(
    path: str, tracking_table: str = "schema_migrations", require_rollback: bool = True, statements: bool = True
) -> CachedRead:
    """``load_path`` with the parse cache: the same migrations, each file parsed only when it changed;
    ``statements`` False: without their statements (``CachedRead.with_statements`` adds them)."""
    cache = ParseCache(path, tracking_table, cache_dir(), statements=statements)
    # A directory of plain files listed as before holds the same migrations: no discovery, and the listing
    # gave each file's identity (one stat per file, no more).
    listing = _listing(path) if cache.file and os.path.isdir(path) else None
    sources = cache.sources(path, listing)
    if sources is None:
        sources = discover_path(path)
        cache.remember(path, listing, sources)
    directory = os.path.join(path, "")
    known = {directory + name: identity for name, *identity in listing or ()}
    migrations: list[Migration] = []
    redactions: list[Redaction] = []
    try:
        for source in sources:
            migration = cache.load(source, known)
            if require_rollback and migration.rollback is None:
                raise missing_rollback(source.version, source.forward)
            migrations.append(migration)
            redactions.append(cache.redactions[source.version])
    finally:
        cache.save({s.version for s in sources})  # what parsed is kept, also when a later file fails
    return CachedRead(cache, migrations, redactions)


def load_path_cached(
    path: str,
    tracking_table: str = "schema_migrations",
    require_rollback: bool = True,
    stats: dict[str, int] | None = None,
    redactions: list[Redaction] | None = None,
) -> list[Migration]:
    """``read_path``'s migrations with their statements. ``stats`` (when given) gets ``parsed``: how many
    were parsed afresh; ``redactions`` (when given), each migration's redaction."""
    read = read_path(path, tracking_table, require_rollback)
    if stats is not None:
        stats["parsed"] = read.parsed
    if redactions is not None:
        redactions.extend(read.redactions)
    return read.migrations
