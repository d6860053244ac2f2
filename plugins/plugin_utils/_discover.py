# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Which files of a directory are migrations, by name only: nothing is read or parsed here.

Layouts, all in one directory: the guide's ``016_add_feature_x.sql`` (rollback inline, or in
``016_add_feature_x.rollback.sql`` beside it), golang-migrate ``0001_x.up.sql`` + ``0001_x.down.sql``,
and Diesel ``0001_x/up.sql`` + ``down.sql`` (+ ``metadata.toml``). Controller only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ansible_collections.tme.migrations.plugins.module_utils._model import MigrationError
from ansible_collections.tme.migrations.plugins.module_utils._versions import parse_version, sort_key


def _run_in_transaction(metadata_path: str) -> bool:
    """Diesel's metadata.toml: ``run_in_transaction = false``."""
    if not os.path.exists(metadata_path):
        return True
    import tomllib

    try:
        with open(metadata_path, "rb") as handle:
            return bool(tomllib.load(handle).get("run_in_transaction", True))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise MigrationError(f"cannot read metadata: {exc}", metadata_path) from None



def _classify_entry(directory: str, entry: str) -> tuple[str, str, str] | None:
    """(version, role, path) of a directory entry, role one of forward/rollback/diesel."""
    full = os.path.join(directory, entry)
    if os.path.isdir(full):
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


@dataclass(frozen=True)
class Source:
    """Where one migration's files are: found by name, not read yet."""

    version: str
    forward: str
    rollback: str | None
    in_transaction: bool = True


def discover(directory: str) -> list[Source]:
    """Every migration of a directory by name, ordered by version. Duplicates and stray SQL files are errors."""
    if not os.path.isdir(directory):
        raise MigrationError("not a directory of migrations", directory)
    forwards: dict[str, str] = {}
    rollbacks: dict[str, str] = {}
    diesel: dict[str, str] = {}
    for entry in sorted(os.listdir(directory)):
        found = _classify_entry(directory, entry)
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
    numbers: dict[int, str] = {}
    sources: list[Source] = []
    for version in sorted(list(forwards) + list(diesel), key=sort_key):
        number = sort_key(version)[0]
        path = forwards.get(version) or diesel[version]
        if number in numbers:
            raise MigrationError(f"duplicate version number {number}: {numbers[number]} and {path}", path)
        numbers[number] = path
        sources.append(
            _diesel_source(version, path) if version in diesel else Source(version, path, rollbacks.get(version))
        )
    return sources


def _diesel_source(version: str, directory: str) -> Source:
    down = os.path.join(directory, "down.sql")
    return Source(
        version,
        os.path.join(directory, "up.sql"),
        down if os.path.exists(down) else None,
        _run_in_transaction(os.path.join(directory, "metadata.toml")),
    )


def discover_path(path: str) -> list[Source]:
    """A directory of migrations, or one migration file (its rollback file found beside it)."""
    if os.path.isdir(path) and not os.path.exists(os.path.join(path, "up.sql")):
        return discover(path)
    directory, entry = os.path.split(os.path.normpath(path))
    found = _classify_entry(directory or ".", entry)
    if found is None or found[1] == "rollback" or parse_version(found[0]) is None:
        raise MigrationError("not a migration file (e.g. 016_add_feature_x.sql)", path)
    version, role, full = found
    if role == "diesel":
        return [_diesel_source(version, full)]
    rollback = None
    for suffix in (".rollback.sql", ".down.sql"):
        candidate = os.path.join(directory, version + suffix)
        if os.path.exists(candidate):
            rollback = candidate
    return [Source(version, full, rollback)]
