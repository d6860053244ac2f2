# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Which files of a directory are migrations, by name only: nothing is read or parsed here.

Layouts, all in one directory: the guide's ``016_add_feature_x.sql`` (rollback inline, or in
``016_add_feature_x.rollback.sql`` beside it), golang-migrate ``0001_x.up.sql`` + ``0001_x.down.sql``,
and Diesel ``0001_x/up.sql`` + ``down.sql`` (+ ``metadata.toml``). Controller only.

Files may share a number (the guide's ``$(date +%Y%m%d)_name.sql``, two of one day): they run in
name order, and the lint notes it (``same_number_notes``). A rollback saved separately under a name
the tool does not read (``016_add_feature_x_rollback.sql``) is an error naming the name it reads,
never a forward migration of its own.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass

from ansible_collections.tme.migrations.plugins.module_utils._model import MigrationError
from ansible_collections.tme.migrations.plugins.module_utils._versions import parse_version, sort_key


def _run_in_transaction(metadata_path: str) -> bool:
    """Diesel's metadata.toml: ``run_in_transaction = false``."""
    if not os.path.exists(metadata_path):
        return True
    import tomllib

    try:
        check_entry(os.path.dirname(os.path.dirname(metadata_path)), metadata_path)
        with open(metadata_path, "rb") as handle:
            return bool(tomllib.loads(handle.read(1 << 20).decode("utf-8")).get("run_in_transaction", True))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise MigrationError(f"cannot read metadata: {exc}", metadata_path) from None


def check_entry(directory: str, full: str, dirent: os.DirEntry[str] | None = None) -> None:
    """A migration name must be a regular file (or a Diesel directory) inside the migrations directory:
    a symbolic link that leads outside it, a FIFO (reading would wait forever), a device (a link to
    /dev/zero never ends), a socket or a directory named ``*.sql`` is an error naming it. Nothing is
    read: only the names' types are looked at (``dirent``: the directory listing's entry, whose type
    the listing already gave: a plain file costs no system call)."""
    if dirent is not None and dirent.is_file(follow_symlinks=False):
        return
    try:
        info = os.lstat(full)
        if stat.S_ISLNK(info.st_mode):
            root = os.path.realpath(directory)
            target = os.path.realpath(full)
            if os.path.commonpath([root, target]) != root:
                raise MigrationError("a symbolic link that leads outside the migrations directory: not read", full)
            info = os.stat(full)
    except OSError as exc:
        raise MigrationError(f"cannot read: {exc.strerror}", full) from None
    if stat.S_ISDIR(info.st_mode):
        if full.endswith(".sql"):
            raise MigrationError("a directory named like a migration file: not read", full)
        return
    if not stat.S_ISREG(info.st_mode):
        kind = "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a device or socket"
        raise MigrationError(f"not a regular file ({kind}): not read", full)


def _check_source(directory: str, source: Source, listing: dict[str, os.DirEntry[str]] | None = None) -> None:
    """check_entry for every file of a found migration (``listing``: the directory's entries by name)."""
    for path in (source.forward, source.rollback):
        if path is not None:
            check_entry(directory, path, (listing or {}).get(os.path.basename(path)))
    if os.path.basename(source.forward) == "up.sql":
        metadata = os.path.join(os.path.dirname(source.forward), "metadata.toml")
        if os.path.lexists(metadata):
            check_entry(directory, metadata)


def _classify_entry(directory: str, entry: str, dirent: os.DirEntry[str] | None = None) -> tuple[str, str, str] | None:
    """(version, role, path) of a directory entry, role one of forward/rollback/diesel."""
    full = os.path.join(directory, entry)
    if not entry.endswith(".sql") and (dirent.is_dir() if dirent is not None else os.path.isdir(full)):
        if os.path.exists(os.path.join(full, "up.sql")):
            return entry, "diesel", full
        return None
    if not entry.endswith(".sql"):
        return None
    stem = entry[: -len(".sql")]
    for suffix, role in ((".rollback", "rollback"), (".down", "rollback"), (".up", "forward")):
        if stem.endswith(suffix):
            return stem[: -len(suffix)], role, full
    return stem, "forward", full


# A word of a file name (between ``_ . -`` or at either end) that says "rollback".
_ROLLBACK_WORD_RE = re.compile(r"(?<![^_.\-])(?:rollback|down|revert|undo)(?![^_.\-])", re.IGNORECASE)


def _without_rollback_word(entry: str) -> list[tuple[str, str]]:
    """(word, the name without it) for each rollback word of a name, with one separator beside it."""
    found = []
    for match in _ROLLBACK_WORD_RE.finditer(entry):
        start, end = match.span()
        if start > 0:
            start -= 1  # "_rollback" out of "016_x_rollback.sql"
        elif end < len(entry):
            end += 1  # "rollback_" out of "rollback_016_x.sql"
        found.append((match.group(0), entry[:start] + entry[end:]))
    return found


def _version_of(name: str) -> str:
    """The version a file name would have: ``.sql`` and golang-migrate's ``.up`` off."""
    stem = name[: -len(".sql")] if name.endswith(".sql") else name
    return stem[: -len(".up")] if stem.endswith(".up") else stem


def _forwards(
    directory: str, entries: Iterable[str], classified: dict[str, tuple[str, str, str] | None] | None = None
) -> dict[str, str]:
    """version -> role (forward or diesel) of every migration name of a directory (``classified``: the
    entries' _classify_entry, when known)."""
    known = classified or {}
    found = (known[entry] if entry in known else _classify_entry(directory, entry) for entry in entries)
    return {f[0]: f[1] for f in found if f and f[1] != "rollback" and parse_version(f[0]) is not None}


def _plain_numbers(forwards: dict[str, str]) -> dict[int, str]:
    """number -> the first forward of that number whose name has no rollback word."""
    plain: dict[int, str] = {}
    for version in sorted(forwards, key=sort_key):
        if not _without_rollback_word(version):
            plain.setdefault(sort_key(version)[0], version)
    return plain


def _rollback_of(entry: str, forwards: dict[str, str], plain: dict[int, str]) -> tuple[str, str, bool] | None:
    """(forward version, word, by number only) when ``entry`` looks like a forward's rollback: the
    name without its rollback word is that forward's, or has the number of a forward whose own name
    has no rollback word. None for anything else (``017_slow_down_jobs.sql`` alone with its number)."""
    candidates = _without_rollback_word(entry)
    for word, rest in candidates:
        if _version_of(rest) in forwards:
            return _version_of(rest), word, False
    for word, rest in candidates:
        parsed = parse_version(_version_of(rest)) if rest.endswith(".sql") else None
        if parsed is not None and parsed[0] in plain:
            return plain[parsed[0]], word, True
    return None


def _refuse_separate_rollbacks(
    directory: str,
    entries: list[str],
    candidates: Iterable[str],
    classified: dict[str, tuple[str, str, str] | None] | None = None,
) -> None:
    """A rollback saved beside its migration under a name the tool does not read is an error: it
    would otherwise be skipped, or worse, applied as a migration of its own."""
    forwards: dict[str, str] | None = None  # found when the first suspect needs them (most listings have none)
    plain: dict[int, str] = {}
    for entry in candidates:
        if not _ROLLBACK_WORD_RE.search(entry):
            continue  # no rollback word: not a suspect (most names; spares a stat per file)
        full = os.path.join(directory, entry)
        found = classified[entry] if classified and entry in classified else _classify_entry(directory, entry)
        if (found is not None and found[1] == "rollback") or os.path.isdir(full):
            continue
        if forwards is None:
            forwards = _forwards(directory, entries, classified)
            plain = _plain_numbers(forwards)
        suspect = _rollback_of(entry, forwards, plain)
        if suspect is not None:
            raise MigrationError(_separate_rollback_message(*suspect, diesel=forwards[suspect[0]] == "diesel"), full)


def _separate_rollback_message(version: str, word: str, by_number: bool, diesel: bool) -> str:
    expected = f"{version}/down.sql" if diesel else f"{version}.rollback.sql (or .down.sql)"
    message = f"looks like the rollback of {version} saved separately; the tool reads it only as {expected}: rename it"
    if by_number:
        message += f" (if it is a migration of its own beside {version}, leave {word!r} out of its name)"
    return message


@dataclass(frozen=True)
class Source:
    """Where one migration's files are: found by name, not read yet."""

    version: str
    forward: str
    rollback: str | None
    in_transaction: bool = True


def discover(directory: str, problems: list[tuple[str, MigrationError]] | None = None) -> list[Source]:
    """Every migration of a directory by name, ordered by number, then by version for files that share
    a number. The same version twice, stray SQL files and rollbacks under other names are errors.
    A migration whose file is not a regular file inside the directory (check_entry) is an error too;
    with ``problems`` it is left out and added there as (version, error) instead, for the lint."""
    if not os.path.isdir(directory):
        raise MigrationError("not a directory of migrations", directory)
    with os.scandir(directory) as listing:  # one pass: names and their types
        dirents = {dirent.name: dirent for dirent in listing}
    entries = sorted(dirents)
    classified = {entry: _classify_entry(directory, entry, dirents[entry]) for entry in entries}  # once per entry
    _refuse_separate_rollbacks(directory, entries, entries, classified)
    forwards: dict[str, str] = {}
    rollbacks: dict[str, str] = {}
    diesel: dict[str, str] = {}
    for entry in entries:
        found = classified[entry]
        if found is None:
            continue
        version, role, full = found
        if parse_version(version) is None:
            raise MigrationError(
                "not a migration name: a migration file starts with its number, e.g. 016_add_feature_x.sql",
                full,
            )
        target = {"forward": forwards, "rollback": rollbacks, "diesel": diesel}[role]
        taken = rollbacks if role == "rollback" else {**forwards, **diesel}
        if version in taken:
            raise MigrationError(f"duplicate version {version}: also {taken[version]}", full)
        target[version] = full
    for version, path in rollbacks.items():
        if version not in forwards:
            raise MigrationError(f"rollback without a migration: no {version}.sql beside it", path)
    every = {**forwards, **diesel}
    ordered = sorted(every, key=sort_key)
    _refuse_shared_sequence_numbers(every, ordered)
    sources = []
    for version in ordered:
        try:
            if version in diesel:
                check_entry(directory, diesel[version])
                source = _diesel_source(version, diesel[version])
                _check_source(directory, source)
            else:
                source = Source(version, forwards[version], rollbacks.get(version))
                _check_source(directory, source, dirents)
        except MigrationError as exc:
            if problems is None:
                raise
            problems.append((version, exc))
            continue
        sources.append(source)
    return sources


DATE_DIGITS = 8  # YYYYMMDD: the guide's date names, two of which may fall on one day


_DIGITS_RE = re.compile(r"\d+")


def _refuse_shared_sequence_numbers(found: dict[str, str], ordered: list[str] | None = None) -> None:
    """A sequence number (016) belongs to one migration: two files with one (two branches that each took
    the next number) are an error. Only date numbers (YYYYMMDD and longer) may be shared. ``ordered``:
    the versions of ``found`` already sorted by number."""
    seen: dict[int, str] = {}
    for version in ordered if ordered is not None else sorted(found, key=sort_key):
        match = _DIGITS_RE.match(version)
        if match and len(match.group(0)) >= DATE_DIGITS:
            continue
        number = sort_key(version)[0]
        if number in seen:
            raise MigrationError(
                f"duplicate version number {number}: {seen[number]} and {found[version]}; a sequence number belongs "
                "to one migration (two branches took the same one?): renumber one. Only date names "
                "(YYYYMMDD_name.sql) may share a number, a day",
                found[version],
            )
        seen[number] = found[version]


def same_number_notes(sources: list[Source]) -> dict[str, str]:
    """version -> a note for each migration that shares its number with others: they run in name order."""
    groups: dict[int, list[str]] = {}
    for source in sources:
        groups.setdefault(sort_key(source.version)[0], []).append(source.version)
    notes: dict[str, str] = {}
    for versions in groups.values():
        ordered = sorted(versions, key=sort_key)
        for version in ordered if len(ordered) > 1 else ():
            others = ", ".join(v for v in ordered if v != version)
            order = ", then ".join(ordered)
            notes[version] = f"shares its number with {others}: migrations of one number run in name order ({order})"
    return notes


def _diesel_source(version: str, directory: str) -> Source:
    down = os.path.join(directory, "down.sql")
    return Source(
        version,
        os.path.join(directory, "up.sql"),
        down if os.path.exists(down) else None,
        _run_in_transaction(os.path.join(directory, "metadata.toml")),
    )


def discover_path(path: str, problems: list[tuple[str, MigrationError]] | None = None) -> list[Source]:
    """A directory of migrations, or one migration file (its rollback file found beside it)."""
    if os.path.isdir(path) and not os.path.exists(os.path.join(path, "up.sql")):
        return discover(path, problems)
    directory, entry = os.path.split(os.path.normpath(path))
    found = _classify_entry(directory or ".", entry)
    if found is None or found[1] == "rollback" or parse_version(found[0]) is None:
        raise MigrationError("not a migration file (e.g. 016_add_feature_x.sql)", path)
    version, role, full = found
    if role == "diesel":
        check_entry(os.path.dirname(full) or ".", full)
        source = _diesel_source(version, full)
        _check_source(os.path.dirname(full) or ".", source)
        return [source]
    check_entry(directory or ".", full)
    _refuse_separate_rollbacks(directory or ".", sorted(os.listdir(directory or ".")), [entry])
    rollback = None
    for suffix in (".rollback.sql", ".down.sql"):
        candidate = os.path.join(directory, version + suffix)
        if os.path.exists(candidate):
            rollback = candidate
    if rollback is not None:
        check_entry(directory or ".", rollback)
    return [Source(version, full, rollback)]
