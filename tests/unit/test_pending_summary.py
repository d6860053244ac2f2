# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""pending.json: the data of PENDING_MIGRATIONS.md as JSON (filter tme.migrations.pending_summary)."""

from __future__ import annotations

import json
from typing import Any

from ansible_collections.tme.migrations.plugins.filter.migrations import FilterModule
from ansible_collections.tme.migrations.plugins.plugin_utils._report import pending_markdown, pending_summary


def entry(version: str, status: str, kind: str = "SAFE", day: str = "2025-09-15", **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "version": version,
        "status": status,
        "classification": kind,
        "path": f"/srv/migrations/{version}.sql",
        **extra,
    }
    if status in ("applied", "drifted", "unverified"):
        data["applied"] = {"applied_at": f"{day} 10:00:00.123"}
    return data


STAGING = {
    "migrations": [
        entry("015_old", "applied"),
        entry("016_add_user_preferences", "applied"),
        entry("017_rename_client_fields", "applied", "BREAKING", "2025-09-16", reasons=["line 3: renames column"]),
        entry("018_add_index", "applied"),
        entry("019_not_yet", "pending"),
    ]
}
PRODUCTION = {
    "migrations": [
        entry("015_old", "applied"),
        entry("016_add_user_preferences", "pending"),
        entry("017_rename_client_fields", "pending", "BREAKING"),
        entry("018_add_index", "pending"),
        entry("019_not_yet", "pending"),
    ]
}


def test_summary_says_what_waits_and_why() -> None:
    summary = pending_summary(
        STAGING,
        PRODUCTION,
        generated_at="2025-09-16T10:00:00Z",
        applied_this_run={"staging": [{"version": "018_add_index", "classification": "SAFE"}]},
        environments={"staging": {"host": "tme-staging", "database": "tme_portal_test"}},
    )
    assert json.loads(json.dumps(summary)) == summary  # JSON as it is
    assert summary["generated_at"] == "2025-09-16T10:00:00Z" and summary["format"] == 1
    staging, production = summary["environments"]["staging"], summary["environments"]["production"]
    assert staging["host"] == "tme-staging" and staging["database"] == "tme_portal_test"
    assert staging["applied"] == ["015_old", "016_add_user_preferences", "017_rename_client_fields", "018_add_index"]
    assert staging["pending"] == ["019_not_yet"]
    assert staging["applied_this_run"] == ["018_add_index"]
    assert production["applied"] == ["015_old"] and production["applied_this_run"] is None  # not known
    waiting = {w["version"]: w for w in summary["waiting"]}
    assert list(waiting) == ["016_add_user_preferences", "017_rename_client_fields", "018_add_index"]
    assert waiting["016_add_user_preferences"]["reason"] == "next_safe_run"
    breaking = waiting["017_rename_client_fields"]
    assert breaking["reason"] == "breaking_needs_release" and breaking["classification"] == "BREAKING"
    assert breaking["why_breaking"] == ["line 3: renames column"] and breaking["test_applied"] == "2025-09-16"
    assert "deploy-breaking.yml" in breaking["message"]
    assert waiting["018_add_index"]["reason"] == "behind_breaking"
    assert waiting["018_add_index"]["blocked_by"] == "017_rename_client_fields"
    assert [n["version"] for n in summary["not_on_staging"]] == ["019_not_yet"]
    assert summary["not_on_staging"][0]["reason"] == "not_on_staging"
    assert summary["counts"] == {
        "staging_applied": 4,
        "production_applied": 1,
        "waiting": 3,
        "waiting_breaking": 1,
        "behind_breaking": 1,
        "not_on_staging": 1,
        "on_production_not_staging": 0,
    }
    assert set(summary["reasons"]) == {"next_safe_run", "breaking_needs_release", "behind_breaking", "not_on_staging"}


def test_summary_and_markdown_list_the_same_migrations() -> None:
    markdown = pending_markdown(STAGING, PRODUCTION)
    summary = pending_summary(STAGING, PRODUCTION)
    listed = [line[4:-4] for line in markdown.splitlines() if line.startswith("### ")]
    assert listed == [w["version"] for w in summary["waiting"]]


def test_summary_names_hand_applied_drifted_and_ahead() -> None:
    staging = {
        "migrations": [
            entry("001_a", "unverified"),
            entry("002_b", "drifted"),
            {"version": "003_c", "status": "missing", "applied": {"applied_at": "2025-09-15"}, "path": None},
        ]
    }
    production = {
        "migrations": [entry("001_a", "pending"), entry("002_b", "pending"), entry("004_d", "applied")],
    }
    summary = pending_summary(staging, production, check_mode=True)
    reasons = {w["version"]: w["reason"] for w in summary["waiting"]}
    assert reasons == {"001_a": "unverified_on_staging", "002_b": "drifted_on_staging", "003_c": "missing_file"}
    assert summary["waiting"][2]["file"] is None and summary["waiting"][2]["note"]
    assert [a["version"] for a in summary["on_production_not_staging"]] == ["004_d"]
    assert summary["check_mode"] is True and summary["generated_at"] is None


def test_nothing_waits() -> None:
    both = {"migrations": [entry("001_a", "applied")]}
    summary = pending_summary(both, both)
    assert summary["waiting"] == [] and summary["counts"]["waiting"] == 0 and summary["reasons"] == {}


def test_the_filter_is_registered_and_names_bad_input() -> None:
    import pytest
    from ansible.errors import AnsibleFilterError

    summary = FilterModule().filters()["pending_summary"]
    assert summary(STAGING, PRODUCTION)["counts"]["waiting"] == 3
    with pytest.raises(AnsibleFilterError, match="tme.migrations.pending_summary: expected a list of versions"):
        summary(STAGING, PRODUCTION, applied_this_run={"staging": "018_add_index"})
