# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the plays print: one line per migration (filter migration_lines) and the status table
(filter status_table), as lines and as the default callback's YAML result format shows them."""

from __future__ import annotations

import functools
import re
from typing import Any

import pytest
import yaml
from ansible.plugins.callback import _AnsibleCallbackDumper

from ansible_collections.tme.migrations.plugins.filter.migrations import FilterModule
from ansible_collections.tme.migrations.plugins.plugin_utils._output import migration_lines, status_table

LONG = "013_rename_client_company_name"


def shown(lines: list[str]) -> list[str]:
    """The lines as ansible.cfg's callback (default, result_format yaml) prints a debug msg list."""
    dumped = yaml.dump(
        {"msg": lines},
        allow_unicode=True,
        Dumper=functools.partial(_AnsibleCallbackDumper, lossy=True),
        default_flow_style=False,
        indent=4,
    )
    return dumped.splitlines()[1:]


def applied(version: str, kind: str = "SAFE", ms: int = 0, **extra: Any) -> dict[str, Any]:
    return {"version": version, "classification": kind, "execution_ms": ms, "path": f"/m/{version}.sql", **extra}


APPLY = {
    "changed": True,
    "applied": [applied("001_create_clients", ms=4), applied("012_add_clients_index", ms=1234)],
    "waiting": [
        {"version": LONG, "classification": "BREAKING", "blocked_by": None},
        {"version": "014_add_invoice_reminder_flag", "classification": "SAFE", "blocked_by": LONG},
    ],
    "pending": ["001_create_clients", "012_add_clients_index", LONG, "014_add_invoice_reminder_flag"],
    "rolled_back": [],
}


def test_one_aligned_line_per_migration() -> None:
    lines = migration_lines(APPLY)
    assert [line.split()[:4] for line in lines] == [
        ["001_create_clients", "SAFE", "4", "ms"],
        ["012_add_clients_index", "SAFE", "1234", "ms"],
        [LONG, "BREAKING", "-", "skipped,"],
        ["014_add_invoice_reminder_flag", "SAFE", "-", "skipped,"],
    ]
    assert lines[0].endswith("  applied") and lines[2].endswith("skipped, waits for a release")
    assert lines[3].endswith(f"skipped, waits behind {LONG}")
    # Columns start at the same place on every line; milliseconds are right-aligned.
    assert len({line.index("SAFE" if "SAFE" in line else "BREAKING") for line in lines}) == 1
    assert len({line.index(" ms") for line in lines[:2]}) == 1


def test_a_plan_says_would_and_has_no_milliseconds() -> None:
    plan = {**APPLY, "applied": [applied("001_create_clients"), applied("002_x", resumes={"statements_done": 2})]}
    lines = migration_lines(plan, planned=True)
    assert lines[0].split() == ["001_create_clients", "SAFE", "-", "would", "apply"]
    assert lines[1].endswith("would resume after 2 statements")
    assert not any(" ms" in line for line in lines)


def test_rollback_lines_and_nothing_to_do() -> None:
    result = {"rolled_back": [{"version": "015_b", "classification": "SAFE", "execution_ms": 7}], "applied": []}
    assert migration_lines(result) == ["015_b  SAFE  7 ms  rolled back"]
    assert migration_lines(result, planned=True) == ["015_b  SAFE  -  would roll back"]
    nothing = {"rolled_back": [], "applied": [], "invocation": {"module_args": {"state": "rolled_back"}}}
    assert migration_lines(nothing) == ["nothing to roll back"]
    assert migration_lines({"applied": [], "waiting": []}) == ["nothing to apply"]
    assert migration_lines({"skipped": True, "changed": False}) == []


def test_a_failure_names_the_migration_and_what_did_not_run() -> None:
    result = {
        "failed": True,
        "msg": (
            '003_c.sql line 4: ERROR: column "nope" does not exist (SQLSTATE 42703)\n'
            "database t on 127.0.0.1:5432: 003_c failed, nothing of it committed. Committed before it: 001_a."
        ),
        "applied": [applied("001_a", ms=3)],
        "pending": ["001_a", "003_c", "004_d", "005_e"],
        "waiting": [{"version": "005_e", "classification": "BREAKING", "blocked_by": None}],
    }
    lines = migration_lines(result)
    assert [line.split()[0] for line in lines] == ["001_a", "003_c", "004_d", "005_e"]
    assert lines[1].endswith("FAILED, see the error") and lines[2].endswith("not run, stopped at the failure")
    stepwise = {**result, "msg": "002_steps failed after 2 of 3 statements had committed; the next run resumes"}
    assert "002_steps" in migration_lines({**stepwise, "pending": ["002_steps"], "applied": []})[0]
    refused = {"failed": True, "msg": "promotion gate: refused, nothing applied.", "applied": [], "pending": ["001_a"]}
    assert migration_lines(refused) == ["no migration ran (see the error)"]


def test_the_callback_prints_each_line_as_it_is() -> None:
    """A line of the YAML result format is folded at a single space past column 80, and quoted when it
    holds ': ' or starts with '---': the lines avoid both."""
    for lines in (migration_lines(APPLY), migration_lines(APPLY, planned=True)):
        assert shown(lines) == ["- " + line for line in lines]


def info(database: str | None, *entries: tuple[str, str, str]) -> dict[str, Any]:
    data: dict[str, Any] = {"migrations": []}
    if database:
        data["database"] = f"database {database} on 127.0.0.1:5432"
    for version, status, kind in entries:
        entry: dict[str, Any] = {"version": version, "status": status, "classification": kind}
        entry["path"] = f"/m/{version}.sql"
        if status == "applied":
            entry["applied"] = {"applied_at": "2026-11-25 10:00:00.1"}
        data["migrations"].append(entry)
    return data


STAGING = info(
    "tme_portal_test",
    ("001_create_clients", "applied", "SAFE"),
    (LONG, "applied", "BREAKING"),
    ("014_add_invoice_reminder_flag", "applied", "SAFE"),
)
PRODUCTION = info(
    "tme_portal",
    ("001_create_clients", "applied", "SAFE"),
    (LONG, "pending", "BREAKING"),
    ("014_add_invoice_reminder_flag", "pending", "SAFE"),
)


def _table(lines: list[str]) -> tuple[str, list[str]]:
    """The header line and the rows (between the rule and the closing counts)."""
    start = next(i for i, line in enumerate(lines) if line.startswith("VERSION"))
    rows = [line for line in lines[start + 2 :] if not re.match(r"\d+ (applied to staging|on production)", line)]
    return lines[start], rows


def test_status_table_names_the_databases_and_fits_its_header() -> None:
    lines = status_table(STAGING, PRODUCTION)
    assert lines[:2] == [
        "STAGING    = database tme_portal_test on 127.0.0.1:5432",
        "PRODUCTION = database tme_portal on 127.0.0.1:5432",
    ]
    header, rows = _table(lines)
    assert header.split() == ["VERSION", "TYPE", "STAGING", "PRODUCTION"]
    assert "tme_portal" not in header  # the names do not fit these columns: they are above the table
    assert len(rows) == 3 and len(header) <= max(len(r) for r in rows)
    assert set(lines[3].replace(" ", "")) == {"="}
    assert rows[1].split() == [LONG, "BREAKING", "applied", "2026-11-25", "pending"]
    assert lines[-1] == "2 applied to staging and pending on production"
    assert shown(lines) == ["- " + line for line in lines]


@pytest.mark.parametrize(
    ("staging", "production", "headings"),
    [
        ("t", "p", ["STAGING (t)", "PRODUCTION (p)"]),  # short names fit beside the labels
        (None, None, ["STAGING", "PRODUCTION"]),  # results without `database`
    ],
)
def test_status_table_headings(staging: str | None, production: str | None, headings: list[str]) -> None:
    lines = status_table(info(staging, ("001_a", "applied", "SAFE")), info(production, ("001_a", "applied", "SAFE")))
    header, rows = _table(lines)
    assert [cell.strip() for cell in header.split("  ") if cell.strip()][-2:] == headings
    assert len(header) <= max(len(row) for row in rows)


def test_status_table_short_labels_when_production_has_nothing() -> None:
    staging = info("tme_portal_test", ("001_a", "applied", "SAFE"))
    production = info("tme_portal", ("001_a", "pending", "SAFE"))
    lines = status_table(staging, production)
    header = next(line for line in lines if line.startswith("VERSION"))
    row = next(line for line in lines if line.startswith("001_a"))
    assert header.split()[-1] == "PROD" and len(header) <= len(row)


def test_filters_are_registered() -> None:
    filters = FilterModule().filters()
    assert filters["migration_lines"](APPLY)[0].startswith("001_create_clients")
    assert filters["status_table"](STAGING, PRODUCTION)[0].startswith("STAGING")
