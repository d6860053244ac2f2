# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Parse once: the migrations of a directory as read before, reused while their files are unchanged.

One ``apply-safe.yml`` reads the same directory about nine times (rehearsal, plan, apply and verify
per host, the report twice), each task in a process of its own; scheduled runs read it again every
time. The cache is a JSON file per directory under ``$TME_MIGRATIONS_CACHE`` (default
``$XDG_CACHE_HOME/tme-migrations``, i.e. ``~/.cache/tme-migrations``; ``off`` turns it off). An
entry is reused only when every file of the migration (forward, rollback, Diesel metadata) has the
same identity as when it was parsed: path, size, modification time in nanoseconds, inode. Anything
else, a new version of the collection or of pglast included, parses again. Files that do not parse
are never cached: their error is raised afresh each time. Controller only.
"""

from __future__ import annotations

import importlib.util
import json
import os
import zlib
from typing import Any

from ansible_collections.tme.migrations.plugins.module_utils._model import Migration, MigrationError
from ansible_collections.tme.migrations.plugins.plugin_utils._collection import collection_version
from ansible_collections.tme.migrations.plugins.plugin_utils._discover import Source, discover_path
from ansible_collections.tme.migrations.plugins.plugin_utils._redact import Redaction, migration_redaction

# 4: findings carry their acceptance by the file's "-- Allow:" header; 5: add-column-unknown-default names
# its functions; 6: 4 for caches written by a reader that did not mark the acceptance yet; 7: each entry
# keeps the redaction of its password literals; 8: the statements apart, as one JSON text per entry.
FORMAT = 8


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


def _identity(source: Source) -> list[list[Any]]:
    """What must be unchanged for a parse to be reused: each file's path, size, mtime_ns and inode."""
    paths = [source.forward, source.rollback]
    if os.path.basename(source.forward) == "up.sql":  # Diesel: its metadata.toml decides the transaction
        paths.append(os.path.join(os.path.dirname(source.forward), "metadata.toml"))
    identity: list[list[Any]] = []
    for path in paths:
        if path is None:
            continue
        try:
            st = os.stat(path)
        except OSError:
            identity.append([path, None])
            continue
        identity.append([path, st.st_size, st.st_mtime_ns, st.st_ino])
    return identity


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
    """The cache file's name for a directory and a tracking table. Two directories that came to share a
    name would only parse again: an entry is reused when its files' identity (full path included) matches.
    Two checksums of zlib, not hashlib: its import (OpenSSL) costs more than a warm lint's parse-cache read."""
    data = f"{os.path.abspath(path)}\0{tracking_table}".encode("utf-8", "surrogateescape")
    return f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}{len(data):x}"


class ParseCache:
    """The cached parses of one directory (or file) for one tracking table name."""

    def __init__(self, path: str, tracking_table: str, directory: str | None, statements: bool = True) -> None:
        self.file = os.path.join(directory, _key(path, tracking_table) + ".json") if directory else None
        self.tracking_table = tracking_table
        # False: the migrations come without their statements (what they are and their findings only:
        # the lint, a status, a plan); `with_statements` gives those of the migrations that are to run.
        self.statements = statements
        self.entries: dict[str, Any] = {}
        self.dirty = False
        self.parsed = 0  # files parsed afresh (not found unchanged in the cache)
        self.fresh: dict[str, Migration] = {}  # parsed in this read, statements included
        # Per version, what hides its password literals (_redact): found once, when the file is parsed.
        self.redactions: dict[str, Redaction] = {}
        if self.file and os.path.exists(self.file):
            try:
                with open(self.file, encoding="utf-8") as handle:
                    data = json.load(handle)
                if isinstance(data, dict) and data.get("stamp") == _stamp() and isinstance(data.get("entries"), dict):
                    self.entries = data["entries"]
            except (OSError, ValueError):
                self.entries = {}  # unreadable: parsed afresh and rewritten

    def get(self, source: Source, identity: list[list[Any]]) -> Migration | None:
        entry = self.entries.get(source.version)
        if not isinstance(entry, dict) or entry.get("identity") != identity:
            return None
        try:
            replacements, found = entry["redaction"]
            light = entry["migration"]
            migration = Migration.from_dict(_joined(light, entry["scripts"]) if self.statements else light)
        except (KeyError, TypeError, ValueError, AttributeError):
            return None  # an entry of another shape (damaged, hand-edited): parsed afresh and rewritten
        self.redactions[source.version] = (dict(replacements), dict(found))
        return migration

    def put(self, source: Source, identity: list[list[Any]], migration: Migration) -> None:
        redaction = migration_redaction(migration)
        self.redactions[source.version] = redaction
        light, scripts = _split(migration)
        self.entries[source.version] = {
            "identity": identity,
            "migration": light,
            "scripts": scripts,
            "redaction": list(redaction),
        }
        self.fresh[source.version] = migration
        self.dirty = True

    def load(self, source: Source) -> Migration:
        """The migration of ``source``, parsed only when its files changed (its rollback not required)."""
        identity = _identity(source)
        migration = self.get(source, identity)
        if migration is None:
            migration = load_source(source, self.tracking_table, require_rollback=False)
            self.put(source, identity, migration)
            self.parsed += 1
            if not self.statements:
                migration = Migration.from_dict(self.entries[source.version]["migration"])
        return migration

    def with_statements(self, migration: Migration) -> Migration:
        """``migration`` (read without statements) with its statements, from this read's entry."""
        if migration.version in self.fresh:
            return self.fresh[migration.version]
        entry = self.entries[migration.version]
        return Migration.from_dict(_joined(entry["migration"], entry["scripts"]))

    def save(self, keep: set[str]) -> None:
        """Write the entries of the versions still there, atomically (a concurrent reader never sees half)."""
        stale = set(self.entries) - keep
        if not self.file or not (self.dirty or stale):
            return
        for version in stale:
            del self.entries[version]
        try:
            import tempfile  # pylint: disable=import-outside-toplevel  # only when something changed

            os.makedirs(os.path.dirname(self.file), mode=0o700, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(self.file), prefix=".tmp-")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"stamp": _stamp(), "entries": self.entries}, handle, separators=(",", ":"))
            os.replace(tmp, self.file)
        except OSError:
            pass  # a cache that cannot be written only costs the next run a parse


class CachedRead:
    """The migrations of a path as read through the cache (``read_path``)."""

    def __init__(self, cache: ParseCache, migrations: list[Migration], redactions: list[Redaction]) -> None:
        self.cache = cache
        self.migrations = migrations
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
        return [
            self.cache.with_statements(m) if versions is None or m.version in versions else m for m in self.migrations
        ]


def read_path(
    path: str, tracking_table: str = "schema_migrations", require_rollback: bool = True, statements: bool = True
) -> CachedRead:
    """``load_path`` with the parse cache: the same migrations, each file parsed only when it changed;
    ``statements`` False: without their statements (``CachedRead.with_statements`` adds them)."""
    cache = ParseCache(path, tracking_table, cache_dir(), statements=statements)
    sources = discover_path(path)
    migrations: list[Migration] = []
    redactions: list[Redaction] = []
    try:
        for source in sources:
            migration = cache.load(source)
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
