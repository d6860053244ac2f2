# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Controller side of tme.migrations.migration and tme.migrations.migration_info.

Reads and parses the migration files where the playbook runs, and hands the module, wherever it
runs, the parsed migrations: no copy step, and the database host needs no parser.
"""

from __future__ import annotations

import json
from typing import Any

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.tme.migrations.plugins.module_utils._model import Migration, MigrationError
from ansible_collections.tme.migrations.plugins.plugin_utils._collection import collection_version
from ansible_collections.tme.migrations.plugins.plugin_utils._direct import run_direct, why_not_direct
from ansible_collections.tme.migrations.plugins.plugin_utils._parse_cache import read_path
from ansible_collections.tme.migrations.plugins.plugin_utils._paths import resolve_path
from ansible_collections.tme.migrations.plugins.plugin_utils._redact import HAS_PGLAST, Redactor, migration_redaction

display = Display()
MIGRATIONS_PLACEHOLDER = "(the migrations read on the controller)"  # what module_utils/_module.py echoes


def redactor_for(migrations: list[Migration]) -> Redactor:
    """Hides the password literals of the migrations' statements in what the module returns (its
    ``statements`` lists, error messages quoting a statement). The statements sent stay as written."""
    return Redactor.merged(migration_redaction(m) for m in migrations)


def _dumps(migrations: list[Migration], hide: list[str]) -> str:
    """The module's ``_migrations``: the migrations as given (with their statements where the module needs
    them, light where it only plans or reports), and the password literals to keep out of the audit rows."""
    chosen = [m.light() if m.sent_light else m for m in migrations]
    return json.dumps({"migrations": [m.to_dict() for m in chosen], "hide": hide}, separators=(",", ":"))


def _short_invocation(result: dict[str, Any]) -> dict[str, Any]:
    """The result without the parsed files echoed back. The modules echo a placeholder themselves, but
    when AnsibleModule rejects an argument, it echoes every argument as given: megabytes of migrations."""
    module_args = (result.get("invocation") or {}).get("module_args")
    if isinstance(module_args, dict) and "_migrations" in module_args:
        module_args["_migrations"] = MIGRATIONS_PLACEHOLDER
    return result


class MigrationFilesAction(ActionBase):
    """Adds the parsed migrations of option `path` to the module's arguments as `_migrations`.

    Parsed once (the parse cache), and sent only as far as the module needs them: a status reads no
    statement; an apply first plans with none, and when something is to run, sends the statements
    of those migrations only. The no-op run of a scheduled apply ships no statement at all.
    """

    TRANSFERS_FILES = False
    REQUIRE_ROLLBACK = True  # the module's default for option require_rollback
    STATEMENTS = "all"  # all, none (status), or "plan" (only those a plan names: the apply)

    def _resolve(self, path: str) -> str:
        return resolve_path(self, path)

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        args["_tool_version"] = collection_version()  # galaxy.yml's (MANIFEST.json's), for the tracking rows
        module = self._task.resolved_action or "tme.migrations." + self._task.action.split(".")[-1]
        path = args.get("path")
        why_not = why_not_direct(self, task_vars or {})
        direct = not why_not  # the module would run in this Python anyway: run it in this worker
        display.vvv(
            f"{module}: runs in this worker (direct)" if direct else f"{module}: runs as a shipped module ({why_not})",
            host=(task_vars or {}).get("inventory_hostname"),
        )
        if not path:
            if direct:
                result.update(run_direct(self, module, args, task_vars or {}))
            else:
                result.update(self._execute_module(module_name=module, module_args=args, task_vars=task_vars))
            return result
        if not HAS_PGLAST:
            result.update(failed=True, msg="the Python library pglast is required where the playbook runs")
            return result
        full = self._resolve(str(path))
        state = args.get("state", "applied")
        try:
            # Read without statements, except for a module that runs every one (the rehearsal): a status and a
            # plan need none, and an apply gets those of the migrations that are to run (with_statements).
            read = read_path(
                full,
                tracking_table=str(args.get("tracking_table") or "schema_migrations"),
                require_rollback=boolean(args.get("require_rollback", self.REQUIRE_ROLLBACK)),
                statements=self.STATEMENTS == "all",
            )
        except MigrationError as exc:
            result.update(failed=True, msg=str(exc))
            return result
        args["path"] = full
        hide = Redactor.merged(read.redactions)  # found when each file was parsed: kept in the parse cache
        hidden = [secret for secret, _mask in hide.secrets]

        def call(module_args: dict[str, Any], migrations: list[Migration]) -> dict[str, Any]:
            """The module with the migrations: handed over as they are (direct), or as JSON (shipped)."""
            if direct:
                ran = run_direct(self, module, {**module_args, "_migrations": ""}, task_vars or {}, migrations, hidden)
            else:
                shipped_args = {**module_args, "_migrations": _dumps(migrations, hidden)}
                ran = self._execute_module(module_name=module, module_args=shipped_args, task_vars=task_vars)
            return _short_invocation(ran)

        # Plan first only when no file changed since the files were last read here: then the run is most
        # likely a no-op (a scheduled run), and the plan spares reading and sending every statement. New or
        # edited files mean something is probably to run: one call with everything is cheaper then.
        if self.STATEMENTS == "plan" and state == "applied" and read.parsed == 0:
            planned = call({**args, "_phase": "plan"}, read.migrations)
            needs = planned.pop("_needs", None)
            setup = planned.pop("_needs_setup", None)  # the tracking tables to create or complete
            if planned.get("failed") or (not needs and not setup and not planned.get("changed")):
                result.update(hide.apply(planned))  # nothing to run: the plan is the result
                return result
            ran = call(args, read.with_statements(set(needs or ())))
        else:
            ran = call(args, read.migrations if self.STATEMENTS != "plan" else read.with_statements())
        result.update(hide.apply(ran))
        return result
