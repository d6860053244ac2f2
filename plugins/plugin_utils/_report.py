# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Staging against production, from two migration_info results: a table for the play output and
PENDING_MIGRATIONS.md in the team guide's format. Pure functions, run on the controller."""

from __future__ import annotations

import os
from typing import Any

BREAKING = "BREAKING"


def _entries(info: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["version"]: e for e in info.get("migrations") or []}


def _day(entry: dict[str, Any] | None) -> str:
    applied = (entry or {}).get("applied") or {}
    stamp = applied.get("applied_at")
    return str(stamp)[:10] if stamp else ""


def _has(entry: dict[str, Any] | None) -> bool:
    """Whether the database has the migration recorded, however it got there (this tool, by hand)."""
    return bool(entry and entry.get("applied"))


def _state(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "-"
    status = str(entry.get("status"))
    text = status
    if status == "applied":
        text = "applied " + _day(entry)
    elif status == "unverified":
        text = "by hand " + _day(entry) + ", not adopted"
    if entry.get("adopted"):
        text += " (adopted)"
    if entry.get("drift_accepted"):
        text += " (drift accepted)"
    return text


def _note(entry: dict[str, Any]) -> str | None:
    """Why production cannot take a migration that staging has, where the reason is not its class."""
    status = entry.get("status")
    if status == "unverified":
        return "applied by hand on test and not adopted: run playbooks/setup-tracking.yml"
    if status == "missing":
        return "recorded on test but no migration file has this version in the checkout"
    if status == "drifted":
        return "its file changed since test applied it: review, then -e accept_drift=" + str(entry["version"])
    return None


def status_rows(staging: dict[str, Any], production: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per version known to the files or either database, in version order."""
    test, prod = _entries(staging), _entries(production)
    order = [e["version"] for e in staging.get("migrations") or []]
    order += [v for v in (e["version"] for e in production.get("migrations") or []) if v not in test]
    rows = []
    for version in order:
        t, p = test.get(version), prod.get(version)
        known = t or p or {}
        kind = known.get("classification") or known.get("declared_type")
        rows.append(
            {
                "version": version,
                "type": kind or ("UNKNOWN (no file)" if known.get("status") == "missing" else "?"),
                "staging": _state(t),
                "production": _state(p),
                "staging_status": (t or {}).get("status"),
                "production_status": (p or {}).get("status"),
                "on_staging": _has(t),
                "on_production": _has(p),
                "note": _note(t) if t is not None else None,
                "path": known.get("path"),
                "reasons": known.get("reasons") or [],
                "test_applied": _day(t),
            }
        )
    return rows


def status_table(staging: dict[str, Any], production: dict[str, Any]) -> list[str]:
    """The table as lines, for ansible.builtin.debug."""
    rows = status_rows(staging, production)
    header = ("VERSION", "TYPE", "STAGING (tme_portal_test)", "PRODUCTION (tme_portal)")
    cells = [header] + [(r["version"], r["type"], r["staging"], r["production"]) for r in rows]
    widths = [max(len(str(c[i])) for c in cells) for i in range(4)]
    lines = ["  ".join(str(c[i]).ljust(widths[i]) for i in range(4)).rstrip() for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    waiting = [r for r in rows if r["on_staging"] and not r["on_production"]]
    ahead = [r for r in rows if r["on_production"] and not r["on_staging"]]
    lines.append(f"{len(waiting)} applied to staging and pending on production")
    if ahead:
        lines.append(f"{len(ahead)} on production but not on staging: " + ", ".join(r["version"] for r in ahead))
    return lines


def pending_markdown(staging: dict[str, Any], production: dict[str, Any], generated_at: str = "") -> str:
    """PENDING_MIGRATIONS.md as the guide keeps it: what staging has and production does not."""
    rows = status_rows(staging, production)
    pending = [r for r in rows if r["on_staging"] and not r["on_production"]]
    ahead = [r for r in rows if r["on_production"] and not r["on_staging"]]
    not_on_test = [r for r in rows if not r["on_staging"] and not r["on_production"]]
    out = ["# Pending Production Migrations", ""]
    if generated_at:
        out += [f"_Written by tme.migrations (playbooks/status.yml) at {generated_at}; do not edit by hand._", ""]
    out += ["## Applied to Test, Not Production", ""]
    if not pending:
        out += ["None: production has every migration staging applied.", ""]
    first_breaking: str | None = None
    for row in pending:
        name = os.path.basename(row["path"]) if row["path"] else row["version"] + ".sql"
        breaking = row["type"] == BREAKING
        out += [f"### {name}", f"- Type: {row['type']}", f"- Test Applied: {row['test_applied']}"]
        out += ["- Production Applied: PENDING"]
        if breaking:
            out.append("- Can deploy before code: NO - MUST COORDINATE")
            out.append("- Blocked by: Next production deployment")
            out += [f"- Why BREAKING: {reason}" for reason in row["reasons"]]
            first_breaking = first_breaking or row["version"]
        elif row["type"].startswith("UNKNOWN"):
            out.append("- Can deploy before code: UNKNOWN - no migration file to read")
        else:
            out.append("- Can deploy before code: YES")
            if first_breaking:
                out.append(f"- Blocked by: {first_breaking} (BREAKING, earlier in order; migrations never skip order)")
        if row["note"]:
            out.append(f"- Note: {row['note']}")
        out.append("")
    if ahead:
        out += ["## On Production, Not on Test", ""]
        out += [f"- {r['version']}: production has it and test does not; test must get it first" for r in ahead]
        out.append("")
    if not_on_test:
        out += ["## Not Yet Applied to Test", ""]
        out += [f"- {r['version']} ({r['type']})" for r in not_on_test]
        out.append("")
    return "\n".join(out).rstrip() + "\n"
