# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Versions: a migration's version is its file name stem, which starts with its number
(``016_add_feature_x``, ``20250915_add_x``, ``2019-01-01-000000_x``). Ordered by that number."""

from __future__ import annotations

import functools
import re

_VERSION_RE = re.compile(r"^(?P<number>\d+(?:-\d+)*)(?:[_.\-](?P<name>.*))?$")


@functools.lru_cache(maxsize=8192)  # pure, and asked for each file several times (discovery, sorting)
def parse_version(stem: str) -> tuple[int, str] | None:
    """(number, name) of a version, or None when the stem does not start with a number."""
    match = _VERSION_RE.match(stem)
    if not match:
        return None
    return int(match.group("number").replace("-", "")), (match.group("name") or "")


@functools.lru_cache(maxsize=8192)  # the key of every sort and comparison of versions, a few times per file
def sort_key(version: str) -> tuple[int, str]:
    parsed = parse_version(version)
    return (parsed[0], version) if parsed else (-1, version)
