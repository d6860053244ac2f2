# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters of tme.migrations: status_table, migration_lines, pending_markdown, pending_summary,
in_business_hours, business_hours_now, next_version, connection_options, urlquote, scrub."""

from __future__ import annotations

from typing import Any, Callable

from ansible.errors import AnsibleFilterError

from ansible_collections.tme.migrations.plugins.module_utils import _secrets
from ansible_collections.tme.migrations.plugins.plugin_utils import _inventory, _output, _report, _window


def _wrap(function: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (ValueError, KeyError, TypeError) as exc:
            raise AnsibleFilterError(f"tme.migrations.{function.__name__}: {exc}") from exc

    call.__name__ = function.__name__
    call.__doc__ = function.__doc__
    return call


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "status_table": _wrap(_output.status_table),
            "migration_lines": _wrap(_output.migration_lines),
            "pending_markdown": _wrap(_report.pending_markdown),
            "pending_summary": _wrap(_report.pending_summary),
            "in_business_hours": _wrap(_window.in_business_hours),
            "business_hours_now": _wrap(_window.business_hours_now),
            "next_version": _wrap(_window.next_version),
            "connection_options": _wrap(_inventory.connection_options),
            "urlquote": _wrap(_inventory.urlquote),
            "scrub": _wrap(_secrets.scrub),
        }
