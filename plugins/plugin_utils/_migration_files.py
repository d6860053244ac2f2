# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Controller side of tme.migrations.migration and tme.migrations.migration_info.

Reads and parses the migration files where the playbook runs, and hands the module, wherever it
runs, the parsed migrations: no copy step, and the database host needs no parser.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ansible.errors import AnsibleError
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

from ansible_collections.tme.migrations.plugins.module_utils._model import MigrationError
from ansible_collections.tme.migrations.plugins.plugin_utils._files import HAS_PGLAST, load_path


def resolve_path(action: ActionBase, path: str) -> str:
    """A controller path as the task gave it: absolute, in the role's or playbook's files/, or
    relative to the playbook."""
    path = os.path.expanduser(path)
    if os.path.isabs(path):
        return path
    try:
        return str(action._find_needle("files", path))
    except AnsibleError:
        return os.path.join(action._loader.get_basedir(), path)


class MigrationFilesAction(ActionBase):
    """Adds the parsed migrations of option `path` to the module's arguments as `_migrations`."""

    TRANSFERS_FILES = False
    REQUIRE_ROLLBACK = True  # the module's default for option require_rollback

    def _resolve(self, path: str) -> str:
        return resolve_path(self, path)

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        path = args.get("path")
        if path:
            if not HAS_PGLAST:
                result.update(failed=True, msg="the Python library pglast is required where the playbook runs")
                return result
            full = self._resolve(str(path))
            try:
                migrations = load_path(
                    full,
                    tracking_table=str(args.get("tracking_table") or "schema_migrations"),
                    require_rollback=boolean(args.get("require_rollback", self.REQUIRE_ROLLBACK)),
                )
            except MigrationError as exc:
                result.update(failed=True, msg=str(exc))
                return result
            args["path"] = full
            args["_migrations"] = json.dumps([m.to_dict() for m in migrations], separators=(",", ":"))
        module = self._task.resolved_action or "tme.migrations." + self._task.action.split(".")[-1]
        # The module echoes its arguments without the parsed files (see module_utils/_module.py).
        result.update(self._execute_module(module_name=module, module_args=args, task_vars=task_vars))
        return result
