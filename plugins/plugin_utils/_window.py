# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Business hours, in which BREAKING migrations are refused unless explicitly overridden, and the
next migration number of a directory. Pure functions, run on the controller."""

from __future__ import annotations

import re
from datetime import datetime, time, timezone
from typing import Any
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _clock(value: Any, name: str) -> time:
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", str(value).strip())
    if not match or int(match.group(1)) > 24 or int(match.group(2)) > 59:
        raise ValueError(f"business hours: {name} must be HH:MM, got {value!r}")
    hour, minute = int(match.group(1)), int(match.group(2))
    return time(23, 59, 59) if hour == 24 else time(hour, minute)


def in_business_hours(spec: dict[str, Any], at: str | datetime | None = None) -> bool:
    """Whether ``at`` (default now) falls within ``spec``: days (mon..sun), start, end (HH:MM), timezone."""
    days = [str(d).lower()[:3] for d in spec.get("days", DAYS[:5])]
    unknown = [d for d in days if d not in DAYS]
    if unknown:
        raise ValueError(f"business hours: unknown days {unknown}; use {', '.join(DAYS)}")
    zone = ZoneInfo(str(spec.get("timezone") or "UTC"))
    if at is None:
        moment = datetime.now(timezone.utc).astimezone(zone)
    else:
        moment = at if isinstance(at, datetime) else datetime.fromisoformat(str(at))
        moment = (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).astimezone(zone)
    start, end = _clock(spec.get("start", "08:00"), "start"), _clock(spec.get("end", "18:00"), "end")
    if DAYS[moment.weekday()] not in days:
        return False
    return start <= moment.time().replace(tzinfo=None) < end


def next_version(names: list[str], name: str) -> str:
    """The next version for a new migration: one more than the highest number among ``names``,
    with the same zero padding (``015_x.sql`` -> ``016_name``); ``001_name`` in an empty directory.
    Date-style numbers (8 or more digits, e.g. 20250915) continue as numbers too."""
    if not re.fullmatch(r"[a-z0-9_]+", name):
        raise ValueError(f"migration name {name!r}: use lower-case letters, digits and underscores")
    numbers = [m.group(1) for m in (re.match(r"^(\d+)_", n) for n in names) if m]
    if not numbers:
        return f"001_{name}"
    widest = max(numbers, key=lambda n: (int(n), len(n)))
    return f"{str(int(widest) + 1).zfill(len(widest))}_{name}"
