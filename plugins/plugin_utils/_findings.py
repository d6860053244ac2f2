# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Findings: their severities, the rules a file may accept with its ``-- Allow:`` header, and accept().

Apart from the classifier (which needs pglast) so that what only reads findings already made (the
lint over cached parses, the action plugins) starts without the parser. Controller only.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from ansible_collections.tme.migrations.plugins.module_utils._model import REFUSED_RULES

ERROR = "error"  # the migration must not run as written (lint fails)
WARNING = "warning"  # a lock hazard or something the analysis cannot see into
INFO = "info"  # why a migration is BREAKING, and other notes

# Rules a rollback is checked for too (the rehearsal and a rollback run it like a migration), and the
# rules a migration may accept deliberately with its header line "-- Allow: rule, rule" (see accept()):
# the error findings the engine and the rehearsal refuse unless accepted, one list (module_utils/_model.py).
ROLLBACK_RULES = ACCEPTABLE_RULES = REFUSED_RULES


def allowed_rules(headers: dict[str, str] | None) -> set[str]:
    """The rules the file's ``-- Allow:`` header accepts (names separated by commas or spaces)."""
    value = (headers or {}).get("allow", "")
    return {name for name in re.split(r"[\s,]+", value.strip().lower()) if name} & ACCEPTABLE_RULES


def accept(findings: Iterable[dict[str, Any]], headers: dict[str, str] | None) -> list[dict[str, Any]]:
    """The findings with those the file's ``-- Allow:`` header accepts turned into infos marked ``accepted``.

    They stay in the report (a reviewer sees them), but no longer fail the lint. Only the rules of
    ACCEPTABLE_RULES can be accepted this way; the header is a comment, so adding it to an applied
    migration is no drift.
    """
    allowed = allowed_rules(headers)
    out = []
    for finding in findings:
        if finding["rule"] in allowed and not finding.get("accepted"):
            finding = {
                **finding,
                "severity": INFO,
                "accepted": True,
                "message": f"accepted by the file's '-- Allow: {finding['rule']}' header: {finding['message']}",
            }
        out.append(finding)
    return out
