# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Business hours, in which BREAKING migrations are refused unless explicitly overridden, and the
version of a new migration in a directory (the next number, or the guide's date). Pure functions,
run on the controller."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timezone
from typing import Any
from zoneinfo import ZoneInfo

from ansible_collections.tme.migrations.plugins.module_utils._versions import parse_version, sort_key

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _clock(value: Any, name: str) -> time:
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", str(value).strip())
    if not match or int(match.group(1)) > 24 or int(match.group(2)) > 59:
        raise ValueError(f"business hours: {name} must be HH:MM, got {value!r}")
    hour, minute = int(match.group(1)), int(match.group(2))
    return time(23, 59, 59) if hour == 24 else time(hour, minute)


def _days(spec: dict[str, Any]) -> list[str]:
    days = [str(d).lower()[:3] for d in spec.get("days", DAYS[:5])]
    unknown = [d for d in days if d not in DAYS]
    if unknown:
        raise ValueError(f"business hours: unknown days {unknown}; use {', '.join(DAYS)}")
    return days


def _moment(spec: dict[str, Any], at: str | datetime | None) -> datetime:
    """``at`` (default now) in the team's time zone (a named zone: its daylight saving time applies)."""
    name = str(spec.get("timezone") or "UTC")
    try:
        zone = ZoneInfo(name)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"business hours: unknown time zone {name!r} (use a name such as Asia/Dubai)") from exc
    if at is None:
        return datetime.now(timezone.utc).astimezone(zone)
    moment = at if isinstance(at, datetime) else datetime.fromisoformat(str(at))
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).astimezone(zone)


def business_hours_now(spec: dict[str, Any], at: str | datetime | None = None) -> str:
    """The window and the moment, in the team's zone, for messages:
    ``mon-fri 08:00-18:00 Europe/Berlin; now Wed 14:05 CEST (UTC+02:00)``."""
    days = _days(spec)
    moment = _moment(spec, at)
    offset = moment.strftime("%z")
    return (
        f"{','.join(days) or 'no day'} {spec.get('start', '08:00')}-{spec.get('end', '18:00')} "
        f"{spec.get('timezone') or 'UTC'}; now {moment.strftime('%a %H:%M')} {moment.tzname()} "
        f"(UTC{offset[:3]}:{offset[3:]})"
    )


def in_business_hours(spec: dict[str, Any], at: str | datetime | None = None) -> bool:
    """Whether ``at`` (default now) falls within ``spec``: days (mon..sun), start, end (HH:MM), timezone."""
    days = _days(spec)
    moment = _moment(spec, at)
    start, end = _clock(spec.get("start", "08:00"), "start"), _clock(spec.get("end", "18:00"), "end")
    if DAYS[moment.weekday()] not in days:
        return False
    return start <= moment.time().replace(tzinfo=None) < end


NUMBERINGS = ("sequence", "date")


def next_version(names: list[str], name: str, numbering: str = "sequence", today: str | date | None = None) -> str:
    """The version of a new migration among the file names of its directory.

    ``sequence``: one more than the highest number among ``names``, with the same zero padding
    (``015_x.sql`` -> ``016_name``); ``001_name`` in an empty directory. Date-style numbers (8 or more
    digits, e.g. 20250915) continue as numbers too. ``date``: the guide's ``$(date +%Y%m%d)_name``,
    ``today`` (default the controller's local date); a second file of one day shares its number."""
    if not re.fullmatch(r"[a-z0-9_]+", name):
        raise ValueError(f"migration name {name!r}: use lower-case letters, digits and underscores")
    if numbering not in NUMBERINGS:
        raise ValueError(f"numbering {numbering!r}: use {' or '.join(NUMBERINGS)}")
    if numbering == "date":
        return _dated_version(names, name, today)
    numbers = [m.group(1) for m in (re.match(r"^(\d+)_", n) for n in names) if m]
    if not numbers:
        return f"001_{name}"
    widest = max(numbers, key=lambda n: (int(n), len(n)))
    return f"{str(int(widest) + 1).zfill(len(widest))}_{name}"


def _day(today: str | date | None) -> str:
    if today is None:
        return date.today().strftime("%Y%m%d")
    if isinstance(today, date):
        return today.strftime("%Y%m%d")
    for form in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return datetime.strptime(str(today).strip(), form).strftime("%Y%m%d")
        except ValueError:
            continue
    raise ValueError(f"today {today!r}: give a date, YYYY-MM-DD or YYYYMMDD")


def _stem(name: str) -> str:
    """A file name's version: ``.sql`` and ``.up``/``.down``/``.rollback`` off."""
    stem = name[: -len(".sql")] if name.endswith(".sql") else name
    for suffix in (".up", ".down", ".rollback"):
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def _dated_version(names: list[str], name: str, today: str | date | None) -> str:
    """``YYYYMMDD_name``, refused when that version is taken or would run before one already there."""
    version = f"{_day(today)}_{name}"
    versions = [_stem(n) for n in names if parse_version(_stem(n)) is not None]
    if version in versions:
        raise ValueError(f"{version} exists already: give the new migration another name")
    latest = max(versions, key=sort_key, default=None)
    if latest is not None and sort_key(version) < sort_key(latest):
        fix = (
            "migrations of one number run in name order: choose a name that sorts after it, or leave"
            " numbering=date out for the next number"
            if sort_key(version)[0] == sort_key(latest)[0]
            else "this directory is not numbered by date: leave numbering=date out"
        )
        raise ValueError(f"{version} would run before {latest}, already there: {fix}")
    return version
