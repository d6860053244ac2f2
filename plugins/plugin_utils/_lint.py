# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Lint a directory or file of migrations: every migration's class and findings, offline.

Unlike the loader used to apply migrations, a bad file does not stop the lint: it becomes an
error finding of its own, so one CI run names every problem.
"""

from __future__ import annotations

from typing import Any

from ansible_collections.tme.migrations.plugins.module_utils._model import MigrationError
from ansible_collections.tme.migrations.plugins.plugin_utils._discover import Source, discover_path, same_number_notes
from ansible_collections.tme.migrations.plugins.plugin_utils._findings import ERROR, INFO, WARNING, accept
from ansible_collections.tme.migrations.plugins.plugin_utils._parse_cache import ParseCache, cache_dir, load_source
from ansible_collections.tme.migrations.plugins.plugin_utils._redact import secrets

FAIL_ON = {"error": (ERROR,), "warning": (ERROR, WARNING), "never": ()}
SAME_NUMBER = "same-number"  # an info: files that share a number run in name order
SHOWN_INFOS = (SAME_NUMBER,)  # infos the readable output shows, besides the declared-* ones


def _without_secrets(message: str, path: str) -> str:
    """A parse error quotes the text near the error: hide the file's password literals in it."""
    if "'" not in message and "$" not in message:
        return message
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            found = secrets(handle.read())
    except OSError:
        return message
    for secret, mask in sorted(found.items(), key=lambda item: len(item[0]), reverse=True):
        message = message.replace(secret, mask)
    return message


def _error_entry(version: str, path: str, rule: str, exc: MigrationError) -> dict[str, Any]:
    finding = {
        "rule": rule,
        "severity": ERROR,
        "path": exc.path or path,
        "line": exc.line or 0,
        "statement": "",
        "message": _without_secrets(exc.message, exc.path or path),
        "breaking": False,
    }
    return {
        "version": version,
        "path": path,
        "classification": None,
        "declared": None,
        "detected": None,
        "rollback_classification": None,
        "transactional": None,
        "findings": [finding],
    }


def lint_source(
    source: Source, tracking_table: str, ignore: set[str], cache: ParseCache | None = None
) -> dict[str, Any]:
    try:
        m = cache.load(source) if cache is not None else load_source(source, tracking_table, require_rollback=False)
    except MigrationError as exc:
        return _error_entry(source.version, source.forward, "invalid-migration", exc)
    except Exception as exc:  # a bug must not cost the report every other file's result
        error = MigrationError(f"cannot analyse the file ({type(exc).__name__}: {exc})", source.forward, 1)
        return _error_entry(source.version, source.forward, "invalid-migration", error)
    return {
        "version": m.version,
        "path": m.path,
        "classification": m.classification,
        "declared": m.declared_type,
        "detected": m.detected_type,
        "rollback_classification": m.rollback_type,
        "transactional": m.transactional,
        # A file's "-- Allow: rule" header accepts those findings deliberately: kept as infos, shown.
        "findings": [f for f in accept(m.findings, m.headers) if f["rule"] not in ignore],
    }


def _same_number_finding(source: Source, note: str) -> dict[str, Any]:
    return {
        "rule": SAME_NUMBER,
        "severity": INFO,
        "path": source.forward,
        "line": 0,
        "statement": "",
        "message": note,
        "breaking": False,
    }


def lint_path(path: str, tracking_table: str = "schema_migrations", ignore: list[str] | None = None) -> dict[str, Any]:
    """The lint report: migrations (each with findings) and a summary with counts."""
    skip = set(ignore or ())
    problems: list[tuple[str, MigrationError]] = []  # files not read (a FIFO, a link outside): one entry each
    try:
        sources = discover_path(path, problems)
    except MigrationError as exc:
        entries = [_error_entry("", exc.path or path, "invalid-layout", exc)]
    else:
        cache = ParseCache(path, tracking_table, cache_dir(), statements=False)  # the lint reads none
        entries = [lint_source(s, tracking_table, skip, cache) for s in sources]
        cache.save({s.version for s in sources})
        notes = {} if SAME_NUMBER in skip else same_number_notes(sources)
        for entry, source in zip(entries, sources):
            if source.version in notes:
                entry["findings"].append(_same_number_finding(source, notes[source.version]))
        for version, problem in problems:
            entries.append(_error_entry(version, problem.path or path, "invalid-migration", problem))
    return {"migrations": entries, "summary": summarize(entries)}


def summarize(entries: list[dict[str, Any]]) -> dict[str, Any]:
    findings = [f for e in entries for f in e["findings"]]
    return {
        "migrations": len(entries),
        "safe": sum(1 for e in entries if e["classification"] == "SAFE"),
        "breaking": sum(1 for e in entries if e["classification"] == "BREAKING"),
        "unreadable": sum(1 for e in entries if e["classification"] is None),
        "errors": sum(1 for f in findings if f["severity"] == ERROR),
        "warnings": sum(1 for f in findings if f["severity"] == WARNING),
        "infos": sum(1 for f in findings if f["severity"] == INFO),
    }


def failing(report: dict[str, Any], fail_on: str) -> list[dict[str, Any]]:
    """The findings that fail the lint at this threshold."""
    severities = FAIL_ON[fail_on]
    return [f for e in report["migrations"] for f in e["findings"] if f["severity"] in severities]


def render(report: dict[str, Any], fail_on: str = "error") -> list[str]:
    """A readable summary: one line per migration, then each finding that is not an info (but the
    declared-* and same-number infos, and findings accepted by the file's ``-- Allow:`` header)."""
    lines = []
    for entry in report["migrations"]:
        cls = entry["classification"] or "UNREADABLE"
        declared = f" (declared {entry['declared']})" if entry["declared"] and entry["declared"] != cls else ""
        lines.append(f"{entry['version'] or entry['path']}: {cls}{declared}")
        for f in entry["findings"]:
            if (
                f["severity"] != INFO
                or f["rule"].startswith("declared-")
                or f["rule"] in SHOWN_INFOS
                or f.get("accepted")
            ):
                lines.append(f"  {f['severity'].upper()} {f['path']} line {f['line']}: [{f['rule']}] {f['message']}")
    s = report["summary"]
    verdict = "FAILED" if failing(report, fail_on) else "passed"
    lines.append(
        f"{s['migrations']} migrations: {s['safe']} SAFE, {s['breaking']} BREAKING, {s['unreadable']} unreadable; "
        f"{s['errors']} errors, {s['warnings']} warnings; lint {verdict} (fail_on={fail_on})"
    )
    return lines
