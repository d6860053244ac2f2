# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Direct execution: a module of this collection run inside the task's worker on the controller.

When a task would run its module on the controller itself, in the controller's own Python (connection
``local``, no become, no async, ``ansible_python_interpreter`` = the Python running the playbook),
shipping the module through AnsiballZ only adds a Python start, a zip and two JSON copies of the
migrations. Then the action imports the module and runs its ``main()`` in the worker process, the way
ansible.netcommon's ``import_modules`` does, through the hooks ansible-core keeps for it: an
``AnsibleModule`` whose ``_load_params`` takes the arguments given and whose ``_record_module_result``
keeps the result. The arguments are validated by the same argument spec, no_log values are stripped
by the same code, and the result goes through the same JSON encoder and ``_parse_returned_data`` as a
shipped module's. Anything else (a remote host, become, another interpreter, psycopg missing here)
runs the module as usual. ``tme_migrations_direct: false`` (a host or task variable) turns it off.

Controller only.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import sys
import traceback
from typing import Any

from ansible.module_utils import basic
from ansible.module_utils.common import json as _json
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.vars.clean import remove_internal_keys

# Imported with the action plugin, which the strategy loads before it forks a worker per host: psycopg,
# AnsibleModule and the engine (through the modules imported below) once per run, not once per host.
from ansible_collections.tme.migrations.plugins.module_utils import _connection

DIRECT_VAR = "tme_migrations_direct"
# The modules run this way, imported (compiled: the collection loader keeps no bytecode) once, before the fork.
DIRECT_MODULES = ("migration", "migration_info", "migration_rehearsal")
for _name in DIRECT_MODULES:
    importlib.import_module(f"ansible_collections.tme.migrations.plugins.modules.{_name}")


def _templated(action: ActionBase, value: Any) -> Any:
    """A variable's value as the task sees it (task_vars hold them untemplated); None when it cannot be."""
    if isinstance(value, str) and ("{{" in value or "{%" in value):
        try:
            return action._templar.template(value)
        except Exception:  # pylint: disable=broad-exception-caught  # an untemplatable value: not eligible
            return None
    return value


def _target_vars(action: ActionBase, task_vars: dict[str, Any]) -> dict[str, Any] | None:
    """The variables of the host the module runs on: the delegated host's under delegate_to (its
    interpreter is the one a shipped module would use), else the task's; None when unknown."""
    delegated = action._task.delegate_to
    if not delegated:
        return task_vars
    found = (task_vars.get("ansible_delegated_vars") or {}).get(delegated)
    return found if isinstance(found, dict) else None


def why_not_direct(action: ActionBase, task_vars: dict[str, Any]) -> str:
    """Empty when the task's module may run in this worker; otherwise the reason it may not."""
    target = _target_vars(action, task_vars)
    if target is None:
        return "the variables of the host it is delegated to are not known here"
    wanted = _templated(action, target.get(DIRECT_VAR, task_vars.get(DIRECT_VAR, True)))
    if wanted is None or not boolean(wanted, strict=False):
        return f"{DIRECT_VAR} is false"
    transport = getattr(action._connection, "_load_name", "") or getattr(action._connection, "transport", "")
    if transport not in ("local", "ansible.builtin.local"):
        return f"connection {transport or '?'} is not local"
    if action._play_context.become:
        return "become is set"
    if action._task.async_val:
        return "the task is async"
    interpreter = _templated(action, target.get("ansible_python_interpreter"))
    if not isinstance(interpreter, str) or os.path.abspath(interpreter) != os.path.abspath(sys.executable):
        return "the module's interpreter is not the Python running the playbook"
    if not _connection.HAS_PSYCOPG:
        return "psycopg is not importable here"
    return ""


def run_direct(
    action: ActionBase,
    module_name: str,
    module_args: dict[str, Any],
    task_vars: dict[str, Any],
    migrations: list[Any] | None = None,
    hide: list[str] | None = None,
) -> dict[str, Any]:
    """Run module ``module_name`` (an FQCN of this collection) in this process with ``module_args``;
    ``migrations`` (parsed on the controller) and ``hide`` (their password literals) are handed over as
    they are, not as JSON. The result is what ``ActionBase._execute_module`` would return for the
    shipped module."""

    context = action._shared_loader_obj.module_loader.find_plugin_with_context(
        module_name, collection_list=action._task.collections
    )
    if not context.resolved:
        return {"failed": True, "msg": f"module {module_name} not found"}
    module = importlib.import_module(context.plugin_resolved_name)

    # The arguments as a shipped module gets them: through the same encoder and decoder (plain values,
    # no templating tags), with the _ansible_* settings of the task.
    given = dict(module_args)
    action._update_module_args(module_name, given, task_vars)
    encoded = json.dumps(given, cls=_json.get_module_encoder("legacy", _json.Direction.CONTROLLER_TO_MODULE))
    args = json.loads(encoded, cls=_json.get_module_decoder("legacy", _json.Direction.CONTROLLER_TO_MODULE))
    recorded: list[str] = []
    warned: list[str] = []

    class DirectModule(basic.AnsibleModule):
        """AnsibleModule with its arguments given and its result kept (ansible-core's direct-execution hooks)."""

        tme_migrations = migrations  # read by module_utils/_module.py: the parsed files, no JSON
        tme_hide = hide  # and the password literals their statements hold

        def _load_params(self) -> None:
            self.params = args

        def warn(self, warning: str, *_args: Any, **_kwargs: Any) -> None:
            # On the controller AnsibleModule.warn would print at once; a shipped module returns its
            # warnings in the result, which the action redacts: keep them for the result.
            warned.append(str(warning))

        def _record_module_result(self, o: dict[str, Any]) -> None:
            if warned:
                o["warnings"] = list(o.get("warnings") or []) + warned
            encoder = _json.get_module_encoder("legacy", _json.Direction.MODULE_TO_CONTROLLER)
            recorded.append(json.dumps(o, cls=encoder))

    environment: dict[str, str] = {}
    action._compute_environment_string(environment)
    saved_environ = dict(os.environ)
    saved_module_class = getattr(module, "AnsibleModule", None)
    saved_streams = (sys.stdout, sys.stderr)
    module.AnsibleModule = DirectModule  # type: ignore[attr-defined]
    try:
        os.environ.update({k: str(v) for k, v in environment.items()})
        # What a shipped module prints beside its result is dropped; here it would reach the worker's
        # streams, unredacted.
        sys.stdout, sys.stderr = io.StringIO(), io.StringIO()
        module.main()
    except SystemExit:
        pass  # exit_json / fail_json
    except Exception as exc:  # pylint: disable=broad-exception-caught  # reported like a shipped module's crash
        return {
            "failed": True,
            "msg": f"module {module_name} failed: {type(exc).__name__}: {exc}",
            "exception": traceback.format_exc(),
        }
    finally:
        sys.stdout, sys.stderr = saved_streams
        module.AnsibleModule = saved_module_class  # type: ignore[attr-defined]
        os.environ.clear()
        os.environ.update(saved_environ)
    if not recorded:
        return {"failed": True, "msg": f"module {module_name} ended without a result"}
    data = action._parse_returned_data({"stdout": recorded[-1], "stderr": "", "rc": 0}, "legacy")
    remove_internal_keys(data)
    return data
