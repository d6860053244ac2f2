# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Staging against production, from two migration_info results: a table for the play output and
PENDING_MIGRATIONS.md in the team guide's format, and the same data as JSON (pending.json). Pure
functions, run on the controller."""

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


# -- the same data as JSON (pending.json), for CI and other programs --------------------------------
SUMMARY_FORMAT = 1

# Why a migration that staging applied is not on production yet: reason code -> what it means.
REASONS = {
    "breaking_needs_release": "BREAKING: waits for the next code release (playbooks/deploy-breaking.yml)",
    "behind_breaking": "SAFE, but behind a pending BREAKING migration: migrations never skip order",
    "unverified_on_staging": "applied by hand on staging and not adopted: run playbooks/setup-tracking.yml",
    "missing_file": "recorded on staging but no migration file has this version in the checkout",
    "drifted_on_staging": "its file changed since staging applied it: review, then -e accept_drift=VERSION",
    "unknown_type": "no migration file to read its type from",
    "next_safe_run": "SAFE and nothing blocks it: the next playbooks/apply-safe.yml run takes it to production",
    "not_on_staging": "not applied on staging yet: staging gets every migration first",
    "not_on_staging_ahead": "on production but not on staging: staging must get it first",
}
_NOTE_REASONS = {"unverified": "unverified_on_staging", "missing": "missing_file", "drifted": "drifted_on_staging"}


def _item(row: dict[str, Any], reason: str, blocked_by: str | None = None) -> dict[str, Any]:
    return {
        "version": row["version"],
        "file": os.path.basename(row["path"]) if row["path"] else None,
        "classification": row["type"],
        "staging": row["staging_status"],
        "production": row["production_status"],
        "test_applied": row["test_applied"] or None,
        "reason": reason,
        "message": REASONS[reason],
        "blocked_by": blocked_by,
        "why_breaking": list(row["reasons"]) if row["type"] == BREAKING else [],
        "note": row["note"],
    }


def _versions(value: Any) -> list[str] | None:
    """Versions from a list of strings or of dicts with a version (a migration result's `applied`)."""
    if value is None:
        return None
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"expected a list of versions, got {type(value).__name__}")
    return [str(v["version"]) if isinstance(v, dict) else str(v) for v in value]


def pending_summary(
    staging: dict[str, Any],
    production: dict[str, Any],
    generated_at: str = "",
    applied_this_run: dict[str, Any] | None = None,
    environments: dict[str, dict[str, Any]] | None = None,
    check_mode: bool = False,
) -> dict[str, Any]:
    """PENDING_MIGRATIONS.md's data as a dict for JSON: each environment's applied and pending versions,
    every migration staging applied and production waits for (class, reason code and text, what blocks it),
    what staging has not applied, counts. `applied_this_run` maps staging/production to the versions (or
    the migration module's `applied` list) this run applied; `environments` adds host and database names."""
    rows = status_rows(staging, production)
    waiting: list[dict[str, Any]] = []
    first_breaking: str | None = None
    for row in (r for r in rows if r["on_staging"] and not r["on_production"]):
        if row["type"] == BREAKING:
            waiting.append(_item(row, "breaking_needs_release"))
            first_breaking = first_breaking or row["version"]
        elif row["staging_status"] in _NOTE_REASONS:
            waiting.append(_item(row, _NOTE_REASONS[row["staging_status"]], first_breaking))
        elif first_breaking:
            waiting.append(_item(row, "behind_breaking", first_breaking))
        elif row["type"].startswith("UNKNOWN") or row["type"] == "?":
            waiting.append(_item(row, "unknown_type"))
        else:
            waiting.append(_item(row, "next_safe_run"))
    not_on_staging = [_item(r, "not_on_staging") for r in rows if not r["on_staging"] and not r["on_production"]]
    ahead = [_item(r, "not_on_staging_ahead") for r in rows if r["on_production"] and not r["on_staging"]]
    run = applied_this_run or {}
    envs: dict[str, Any] = {}
    for name, flag in (("staging", "on_staging"), ("production", "on_production")):
        envs[name] = {
            **((environments or {}).get(name) or {}),
            "applied": [r["version"] for r in rows if r[flag]],
            "pending": [r["version"] for r in rows if not r[flag] and r["path"]],
            "applied_this_run": _versions(run.get(name)),
        }
    return {
        "format": SUMMARY_FORMAT,
        "generated_at": generated_at or None,
        "check_mode": bool(check_mode),
        "environments": envs,
        "waiting": waiting,
        "not_on_staging": not_on_staging,
        "on_production_not_staging": ahead,
        "counts": {
            "staging_applied": len(envs["staging"]["applied"]),
            "production_applied": len(envs["production"]["applied"]),
            "waiting": len(waiting),
            "waiting_breaking": sum(1 for w in waiting if w["classification"] == BREAKING),
            "behind_breaking": sum(1 for w in waiting if w["reason"] == "behind_breaking"),
            "not_on_staging": len(not_on_staging),
            "on_production_not_staging": len(ahead),
        },
        "reasons": {code: REASONS[code] for code in sorted({w["reason"] for w in waiting + not_on_staging + ahead})},
    }
