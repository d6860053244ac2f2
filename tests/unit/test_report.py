# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The report, the deploy window and the next version number: pure logic of the filter plugins."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.tme.migrations.plugins.plugin_utils._report import pending_markdown
from ansible_collections.tme.migrations.plugins.plugin_utils._window import (
    business_hours_now,
    in_business_hours,
    next_version,
)


def entry(version: str, status: str, kind: str = "SAFE", day: str = "2025-09-15", **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "version": version,
        "status": status,
        "classification": kind,
        "path": f"/srv/migrations/{version}.sql",
        **extra,
    }
    if status == "applied":
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


def test_pending_markdown_in_the_guides_format() -> None:
    text = pending_markdown(STAGING, PRODUCTION)
    assert text.startswith("# Pending Production Migrations\n\n## Applied to Test, Not Production\n")
    assert (
        "### 016_add_user_preferences.sql\n- Type: SAFE\n- Test Applied: 2025-09-15\n"
        "- Production Applied: PENDING\n- Can deploy before code: YES\n\n"
    ) in text
    assert (
        "### 017_rename_client_fields.sql\n- Type: BREAKING\n- Test Applied: 2025-09-16\n"
        "- Production Applied: PENDING\n- Can deploy before code: NO - MUST COORDINATE\n"
        "- Blocked by: Next production deployment\n- Why BREAKING: line 3: renames column\n"
    ) in text
    assert "### 018_add_index.sql\n- Type: SAFE" in text
    assert "- Blocked by: 017_rename_client_fields (BREAKING" in text.split("### 018")[1]
    assert "015_old" not in text  # on both: not pending
    assert "## Not Yet Applied to Test\n\n- 019_not_yet (SAFE)" in text


def test_pending_markdown_when_nothing_waits() -> None:
    both = {"migrations": [entry("001_a", "applied")]}
    assert "None: production has every migration staging applied." in pending_markdown(both, both)


WEEKDAYS = {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "18:00", "timezone": "Asia/Dubai"}


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        ("2025-09-15T05:00:00+00:00", True),  # Monday 09:00 in Dubai
        ("2025-09-15T03:59:59+00:00", False),  # Monday 07:59 in Dubai
        ("2025-09-15T14:00:00+00:00", False),  # Monday 18:00 in Dubai: the end is outside
        ("2025-09-20T06:00:00+00:00", False),  # Saturday
        ("2025-09-19T13:59:00+00:00", True),  # Friday 17:59 in Dubai
    ],
)
def test_business_hours(moment: str, inside: bool) -> None:
    assert in_business_hours(WEEKDAYS, moment) is inside


def test_business_hours_never_and_errors() -> None:
    assert in_business_hours({"days": []}, "2025-09-15T10:00:00") is False
    with pytest.raises(ValueError, match="HH:MM"):
        in_business_hours({"start": "8am"}, "2025-09-15T10:00:00")
    with pytest.raises(ValueError, match="unknown days"):
        in_business_hours({"days": ["someday"]}, "2025-09-15T10:00:00")


def test_next_version_keeps_padding_and_style() -> None:
    names = ["001_initial_schema.sql", "015_create_user_preferences.sql", "015_create_user_preferences.rollback.sql"]
    assert next_version(names + ["PENDING_MIGRATIONS.md"], "add_feature_x") == "016_add_feature_x"
    assert next_version([], "first") == "001_first"
    assert next_version(["20250915_a.sql"], "b") == "20250916_b"
    assert next_version(["0009_x.up.sql", "0009_x.down.sql"], "y") == "0010_y"
    with pytest.raises(ValueError, match="lower-case"):
        next_version(names, "Add Feature")


def test_business_hours_in_the_teams_zone_with_daylight_saving_time() -> None:
    berlin = {
        "days": ["mon", "tue", "wed", "thu", "fri"],
        "start": "08:00",
        "end": "18:00",
        "timezone": "Europe/Berlin",
    }
    # 06:30 UTC is 08:30 in Berlin in summer (CEST, UTC+2) and 07:30 in winter (CET, UTC+1).
    assert in_business_hours(berlin, "2025-07-16T06:30:00+00:00") is True
    assert in_business_hours(berlin, "2025-01-15T06:30:00+00:00") is False
    assert business_hours_now(berlin, "2025-07-16T06:30:00+00:00") == (
        "mon,tue,wed,thu,fri 08:00-18:00 Europe/Berlin; now Wed 08:30 CEST (UTC+02:00)"
    )
    assert business_hours_now(berlin, "2025-01-15T06:30:00+00:00").endswith("now Wed 07:30 CET (UTC+01:00)")
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        in_business_hours({**berlin, "timezone": "Mars/Olympus"})
