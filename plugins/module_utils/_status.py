# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Read-only status of a database against its migration files, and against a reference database."""

from __future__ import annotations

from typing import Any

from ansible_collections.tme.migrations.plugins.module_utils._model import Migration
from ansible_collections.tme.migrations.plugins.module_utils._tracking import AppliedRow, ProgressRow, Tracking
from ansible_collections.tme.migrations.plugins.module_utils._versions import sort_key

STATUSES = ("applied", "pending", "drifted", "missing", "unverified", "failed", "interrupted", "in_progress")


def runner_active(conn: Any, tracking: Tracking) -> bool:
    """Whether a runner holds this database's lock now (read from pg_locks, nothing taken)."""
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
        " AND classid::bigint = %s AND objid::bigint = %s",
        ((tracking.lock_key >> 32) & 0xFFFFFFFF, tracking.lock_key & 0xFFFFFFFF),
    ).fetchone()
    return bool(row and row[0])


def _progress_status(row: ProgressRow, active: bool) -> str:
    if row.status == "failed":
        return "failed"
    return "in_progress" if active else "interrupted"


def migration_status(
    migrations: list[Migration] | None,
    applied: dict[str, AppliedRow],
    progress: dict[str, ProgressRow],
    active: bool,
) -> list[dict[str, Any]]:
    """One entry per version known to the files or the database, ordered by version."""
    files = {m.version: m for m in migrations or []}
    entries = []
    for version in sorted(set(files) | set(applied) | set(progress), key=sort_key):
        m, row, prog = files.get(version), applied.get(version), progress.get(version)
        if prog is not None:
            status = _progress_status(prog, active)
        elif row is None:
            status = "pending"
        elif m is None:
            status = "missing" if migrations is not None else "applied"
        elif not row.checksum:
            status = "unverified"
        elif not m.matches(row.checksum):
            status = "drifted"
        else:
            status = "applied"
        entry: dict[str, Any] = {"version": version, "status": status}
        if m is not None:
            entry.update(
                path=m.path,
                checksum=m.checksum,
                description=m.description,
                declared_type=m.declared_type,
                classification=m.classification,
                reasons=m.breaking_reasons,
                transactional=m.transactional,
            )
            if m.rollback_error:
                entry["rollback_error"] = m.rollback_error
        if row is not None:
            entry["applied"] = row.to_dict()
            # Applied by hand and taken over by setup-tracking, or edited afterwards and accepted.
            entry["adopted"] = bool(row.adopted_at)
            entry["drift_accepted"] = bool(row.drift_accepted_at)
        if prog is not None:
            entry["progress"] = prog.to_dict()
        entries.append(entry)
    return entries


def summarize(entries: list[dict[str, Any]]) -> dict[str, list[str]]:
    summary = {status: [e["version"] for e in entries if e["status"] == status] for status in STATUSES}
    summary["adopted"] = [e["version"] for e in entries if e.get("adopted")]
    summary["drift_accepted"] = [e["version"] for e in entries if e.get("drift_accepted")]
    return summary


def compare(
    migrations: list[Migration] | None, here: dict[str, AppliedRow], reference: dict[str, AppliedRow]
) -> dict[str, Any]:
    """What this database lacks of the reference, and what differs."""
    lacks = sorted((v for v in reference if v not in here), key=sort_key)
    ahead = sorted((v for v in here if v not in reference), key=sort_key)
    files = {m.version: m for m in migrations or []}

    def same(version: str) -> bool:
        a, b = here[version].checksum, reference[version].checksum
        if not a or not b or a == b:
            return True
        m = files.get(version)  # the two checksum schemes of one file are the same migration
        return m is not None and m.matches(a) and m.matches(b)

    mismatch = sorted((v for v in here if v in reference and not same(v)), key=sort_key)
    promotable = [v for v in lacks if v in files and files[v].matches(reference[v].checksum)]
    return {"lacks": lacks, "ahead": ahead, "checksum_mismatch": mismatch, "promotable": promotable}
