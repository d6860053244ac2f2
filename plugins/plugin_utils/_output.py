# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a play prints for the operator: one aligned line per migration of an apply, a plan or a
rollback (migration_lines), and staging against production as a table (status_table). Pure
functions, run on the controller.

The default callback with ``callback_result_format = yaml`` prints a list of strings one per line,
but folds a line at a single space past column 80 and quotes a line that starts with ``---`` or
holds ``: ``. So the lines put their free text early, separate columns with two spaces, underline
with ``=`` and never write ``: ``; the table's header is never wider than its rows.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from ansible_collections.tme.migrations.plugins.plugin_utils._report import status_rows

_FAILED = re.compile(r"(?<!\S)(\d\S*) failed(?:,| after)")  # versions start with their number
_DATABASE = re.compile(r"^database (\S+) on ")


def _ms(entry: dict[str, Any], planned: bool) -> str:
    ms = entry.get("execution_ms")
    return "-" if planned or ms is None else f"{int(ms)} ms"


def _kind(entry: dict[str, Any]) -> str:
    return str(entry.get("classification") or "-")


def _applied(entry: dict[str, Any], planned: bool) -> str:
    if planned:
        resumes = entry.get("resumes") or {}
        if resumes:
            return f"would resume after {resumes.get('statements_done', '?')} statements"
        return "would apply"
    text = "applied"
    repaired = entry.get("repaired") or []
    if repaired:
        text += f" (after {len(repaired)} repair{'s' if len(repaired) > 1 else ''})"
    return text


def _waiting(entry: dict[str, Any]) -> str:
    """Why a migration of a SAFE-only run stays pending: it is not SAFE (its class is in the line), or
    it is behind one that is not."""
    blocked_by = entry.get("blocked_by")
    if blocked_by:
        return f"skipped, waits behind {blocked_by}"
    return "skipped, waits for a release"


def _failed_version(result: dict[str, Any]) -> str | None:
    match = _FAILED.search(str(result.get("msg") or ""))
    return match.group(1) if match else None


def migration_lines(result: dict[str, Any], planned: bool = False) -> list[str]:
    """One aligned line per migration of a tme.migrations.migration result: version, SAFE or BREAKING,
    milliseconds, and what happened (applied, rolled back, would apply, skipped and why, failed, not
    run). ``planned``: the result of a plan or of check mode (nothing ran; no milliseconds)."""
    if not isinstance(result, dict):
        raise TypeError(f"expected the result of tme.migrations.migration, got {type(result).__name__}")
    if result.get("skipped"):
        return []
    rows: list[tuple[str, str, str, str]] = []
    for entry in result.get("drift_accepted") or []:
        rows.append((str(entry["version"]), "-", "-", "would accept its edited file" if planned else "drift accepted"))
    applied = result.get("applied") or []
    for entry in applied:
        rows.append((str(entry["version"]), _kind(entry), _ms(entry, planned), _applied(entry, planned)))
    for entry in result.get("rolled_back") or []:
        what = "would roll back" if planned else "rolled back"
        rows.append((str(entry["version"]), _kind(entry), _ms(entry, planned), what))
    failed = _failed_version(result) if result.get("failed") else None
    held = {str(e["version"]) for e in (result.get("waiting") or []) + (result.get("beyond") or [])}
    done = {str(e["version"]) for e in applied}
    if failed is not None:
        rows.append((failed, "-", "-", "FAILED, see the error"))
        after = False
        for version in result.get("pending") or []:
            version = str(version)
            if version == failed:
                after = True
            elif after and version not in done and version not in held:
                rows.append((version, "-", "-", "not run, stopped at the failure"))
    for entry in result.get("waiting") or []:
        rows.append((str(entry["version"]), _kind(entry), "-", _waiting(entry)))
    for entry in result.get("beyond") or []:
        rows.append((str(entry["version"]), _kind(entry), "-", "skipped, after release_target"))
    if not rows:
        state = ((result.get("invocation") or {}).get("module_args") or {}).get("state")
        if result.get("failed"):
            return ["no migration ran (see the error)"]
        return ["nothing to roll back" if state == "rolled_back" else "nothing to apply"]
    return _align(rows, right=(2,))


def _align(rows: Sequence[tuple[str, ...]], right: tuple[int, ...] = ()) -> list[str]:
    """Columns two spaces apart, each as wide as its widest cell; the last column is not padded."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) if i < len(row) - 1 else cell
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def database_name(info: dict[str, Any]) -> str | None:
    """The database of a module result's ``database`` (``database tme_portal on 127.0.0.1:5432``)."""
    match = _DATABASE.match(str(info.get("database") or ""))
    return match.group(1) if match else None


def _heading(candidates: list[str], width: int) -> str:
    """The longest candidate that fits the column (the rows' width), else the shortest."""
    fitting = [c for c in candidates if len(c) <= width]
    return fitting[0] if fitting else min(candidates, key=len)


def status_table(staging: dict[str, Any], production: dict[str, Any]) -> list[str]:
    """Staging against production as lines for ansible.builtin.debug: which database each side is, the
    table (version, type, where each is applied and when), and a count of what production lacks. The
    column headings name the databases where they fit, else STAGING / PRODUCTION, else TEST / PROD: the
    header is never wider than the rows."""
    rows = status_rows(staging, production)
    cells = [(r["version"], str(r["type"]), r["staging"], r["production"]) for r in rows]
    widths = [max([len(c[i]) for c in cells], default=0) for i in range(4)]
    names = [database_name(staging), database_name(production)]
    headings = [
        "VERSION",
        "TYPE",
        _heading([f"STAGING ({names[0]})" if names[0] else "STAGING", "STAGING", "TEST"], widths[2]),
        _heading([f"PRODUCTION ({names[1]})" if names[1] else "PRODUCTION", "PRODUCTION", "PROD"], widths[3]),
    ]
    widths = [max(widths[i], len(headings[i])) for i in range(4)]
    lines = [
        f"STAGING    = {staging.get('database') or 'the staging database'}",
        f"PRODUCTION = {production.get('database') or 'the production database'}",
    ]
    table = [tuple(headings)] + cells
    lines += ["  ".join(c[i].ljust(widths[i]) for i in range(4)).rstrip() for c in table]
    lines.insert(3, "  ".join("=" * w for w in widths))
    waiting = [r for r in rows if r["on_staging"] and not r["on_production"]]
    ahead = [r for r in rows if r["on_production"] and not r["on_staging"]]
    lines.append(f"{len(waiting)} applied to staging and pending on production")
    if ahead:
        lines.append(f"{len(ahead)} on production but not on staging, " + ", ".join(r["version"] for r in ahead))
    return lines
