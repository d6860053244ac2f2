# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The collection's own version, on the controller.

Written in one place, galaxy.yml. An installed collection carries it in MANIFEST.json (ansible-galaxy
writes it from galaxy.yml at build time); a checkout has galaxy.yml itself. The action plugins pass it
to the modules (option ``_tool_version``), which record it in the tracking rows; the parse cache keys
its entries with it.
"""

from __future__ import annotations

import functools
import json
import os
import re

from ansible_collections.tme.migrations.plugins.module_utils._model import UNKNOWN_VERSION

# plugins/plugin_utils/_collection.py -> the collection root (a checkout or an installed copy). os.path, not
# pathlib: this is imported at every start of the lint and the actions, and pathlib's import costs more.
COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))


_GALAXY_VERSION_RE = re.compile(r"""^version:[ \t]*["']?([^"'\s#]+)""", re.MULTILINE)


def _text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return None


def read_version(root: str) -> str | None:
    """The version of the collection at root: MANIFEST.json first (installed), else galaxy.yml (checkout)."""
    manifest = _text(os.path.join(root, "MANIFEST.json"))
    if manifest is not None:
        try:
            version = json.loads(manifest)["collection_info"]["version"]
        except (ValueError, KeyError, TypeError):
            version = None
        if version:
            return str(version)
    text = _text(os.path.join(root, "galaxy.yml"))
    if text is None:
        return None
    # Its top-level ``version:`` line: a line scan, not YAML, costs nothing at every start (lint, actions).
    match = _GALAXY_VERSION_RE.search(text)
    return match.group(1) if match else None


@functools.lru_cache(maxsize=1)
def collection_version() -> str:
    """This collection's version, or UNKNOWN_VERSION when neither file can be read."""
    return read_version(COLLECTION_ROOT) or UNKNOWN_VERSION
