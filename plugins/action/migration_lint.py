# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""tme.migrations.migration_lint runs entirely on the controller: no database, no module transfer."""

from __future__ import annotations

from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.tme.migrations.plugins.plugin_utils._lint import FAIL_ON, failing, lint_path, render
from ansible_collections.tme.migrations.plugins.plugin_utils._paths import resolve_path
from ansible_collections.tme.migrations.plugins.plugin_utils._redact import HAS_PGLAST

_SPEC = {
    "path": {"type": "path", "required": True},
    "tracking_table": {"type": "str", "default": "schema_migrations"},
    "fail_on": {"type": "str", "default": "error", "choices": list(FAIL_ON)},
    "ignore_rules": {"type": "list", "elements": "str", "default": []},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(argument_spec=_SPEC)
        if not HAS_PGLAST:
            result.update(failed=True, msg="the Python library pglast is required where the playbook runs")
            return result
        path = resolve_path(self, args["path"])
        try:
            report = lint_path(path, args["tracking_table"], args["ignore_rules"])
        except Exception as exc:  # lint_path keeps each file's own error: this is a bug, still reported
            result.update(failed=True, path=path, msg=f"{path}: the lint failed ({type(exc).__name__}: {exc})")
            return result
        lines = render(report, args["fail_on"])
        failed = failing(report, args["fail_on"])
        result.update(
            changed=False,
            path=path,
            migrations=report["migrations"],
            summary=report["summary"],
            summary_lines=lines,
            msg=lines[-1],
        )
        if failed:
            first = failed[0]
            result.update(
                failed=True,
                msg=f"{lines[-1]}; first: {first['path']} line {first['line']}: [{first['rule']}] {first['message']}",
            )
        return result
