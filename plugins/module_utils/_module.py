# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the modules share: argument specs, AnsibleModule -> engine, results and diffs."""

from __future__ import annotations

import json
from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.tme.migrations.plugins.module_utils import _connection
from ansible_collections.tme.migrations.plugins.module_utils._engine import Engine, EngineError, Options
from ansible_collections.tme.migrations.plugins.module_utils._model import Migration, set_tool_version
from ansible_collections.tme.migrations.plugins.module_utils._pgtools import PgTools
from ansible_collections.tme.migrations.plugins.module_utils._status import (
    compare,
    migration_status,
    runner_active,
    summarize,
)
from ansible_collections.tme.migrations.plugins.module_utils._tracking import Tracking
from ansible_collections.tme.migrations.plugins.module_utils._versions import sort_key


def common_argument_spec() -> dict[str, Any]:
    spec = _connection.connection_argument_spec()
    spec.update(
        path=dict(type="path"),
        tracking_schema=dict(type="str", default="public"),
        tracking_table=dict(type="str", default="schema_migrations"),
        reference=dict(type="dict", options=_connection.reference_argument_spec()),
        require_rollback=dict(type="bool", default=True),
        # Set by the action plugin: the files of `path`, read and parsed on the controller, as one
        # JSON text (AnsibleModule deep-copies parameters: a list of dicts costs more than the run).
        # no_log: the statements may hold an accepted password literal; never in the target's syslog.
        _migrations=dict(type="str", no_log=True),
        # Set by the action plugin: "plan" runs as in check mode and returns `_needs`, the versions whose
        # statements a real run needs (the action sends only those with their statements).
        _phase=dict(type="str", choices=["plan", "run"], default="run"),
        # Set by the action plugin: the collection's version (galaxy.yml), recorded in the tracking rows.
        _tool_version=dict(type="str"),
    )
    return spec


def require_psycopg(module: AnsibleModule) -> None:
    if not _connection.HAS_PSYCOPG:
        module.fail_json(msg=missing_required_lib("psycopg"), exception=str(_connection.PSYCOPG_IMPORT_ERROR))


def files_of(module: AnsibleModule) -> tuple[list[Migration] | None, list[str]]:
    """What the action plugin read on the controller: the parsed files, and the password literals their
    statements hold (to keep out of what the module writes), as ``_migrations`` {"migrations", "hide"}
    or, run in the controller's worker, as they are. Sets the collection's version too."""
    set_tool_version(module.params.get("_tool_version"))
    given = getattr(module, "tme_migrations", None)  # run in the controller's worker: handed over as they are
    if given is not None:
        return list(given), list(getattr(module, "tme_hide", None) or ())
    if module.params.get("path") and module.params.get("_migrations") is None:
        module.fail_json(msg="the migration files were not read: call this module by its action, not directly")
    data = module.params.get("_migrations")
    if data is None:
        return None, []
    envelope = json.loads(data)
    return [Migration.from_dict(d) for d in envelope["migrations"]], [str(s) for s in envelope.get("hide") or ()]


def migrations_of(module: AnsibleModule) -> list[Migration] | None:
    return files_of(module)[0]


def reference_kwargs(module: AnsibleModule) -> dict[str, Any] | None:
    reference = module.params.get("reference")
    return _connection.connect_kwargs(reference) if reference else None


def invocation(module: AnsibleModule) -> dict[str, Any]:
    """The module's arguments as echoed in results, without the parsed files: echoing (and scrubbing)
    megabytes of migrations on every run would cost more than the run itself."""
    args = {k: v for k, v in module.params.items() if k != "_migrations"}
    if module.params.get("_migrations") is not None:
        args["_migrations"] = "(the migrations read on the controller)"
    return {"module_args": args}


def _diff(before: list[str], after: list[str], name: str) -> dict[str, str]:
    return {
        "before_header": f"{name} (applied versions)",
        "after_header": f"{name} (applied versions)",
        "before": "".join(v + "\n" for v in before),
        "after": "".join(v + "\n" for v in after),
    }


def run_migration(module: AnsibleModule) -> None:
    require_psycopg(module)
    p = module.params
    migrations, hidden = files_of(module)
    if migrations is None:
        if p["state"] == "applied":
            module.fail_json(msg="state=applied needs path: a migration file or a directory of them")
        migrations = []
    options = Options(
        lock_timeout_ms=p["lock_timeout"],
        statement_timeout_ms=p["statement_timeout"],
        lock_retries=p["lock_retries"],
        retry_delay=p["lock_retry_delay"],
        runner_lock_timeout=p["runner_lock_timeout"],
        allow_drift=p["allow_drift"],
        accept_drift=tuple(p["accept_drift"] or ()),
        only_safe=p["only_safe"],
        up_to=p["up_to"],
        tracking_schema=p["tracking_schema"],
        tracking_table=p["tracking_table"],
        backup_path=p["backup"],
        hide=tuple(hidden),
    )
    planning = p["_phase"] == "plan"
    setup: str | None = None
    kwargs = _connection.connect_kwargs(p)
    target = _connection.describe(kwargs)
    dry = module.check_mode or planning  # nothing is written
    engine = Engine(kwargs, options, check_mode=dry)
    try:
        with engine:
            if p["state"] == "tracked":
                report = engine.setup(migrations if p.get("path") else None)
            elif p["state"] == "applied":
                report = engine.apply(migrations, p["version"], reference_kwargs(module))
                if dry:  # what a real run would do on entry, before any migration (see Engine.__enter__)
                    setup = engine.tracking.setup_needed(engine.conn)
            else:
                report = engine.rollback(migrations, p["version"], p["steps"])
    except EngineError as exc:
        details = exc.report.as_dict() if exc.report else {}
        details["changed"] = bool(exc.report and exc.report.changed and not dry)
        if exc.report and exc.report.warnings:
            details["warnings"] = exc.report.warnings
        if getattr(exc, "located", False):  # file, line and PostgreSQL's message stay the first line
            first, _sep, rest = exc.message.partition("\n")
            message = f"{first}\n{target}: {rest}" if rest else f"{first}\n{target}"
        else:
            message = f"{target}: {exc.message}"
        module.fail_json(msg=message, invocation=invocation(module), **details)
    except (ConnectionError, TimeoutError, RuntimeError) as exc:
        module.fail_json(msg=f"{target}: {exc}", changed=False, invocation=invocation(module))
    except _connection.DatabaseError as exc:  # outside a migration (the server stopped, the connection lost)
        details = engine.report.as_dict()
        details["changed"] = bool(engine.report.changed and not dry)
        done = ", ".join(str(e["version"]) for e in engine.report.applied)
        committed = f"committed in this run: {done}" if done else "nothing was applied in this run"
        module.fail_json(
            msg=f"{target}: {_connection.scrub(str(exc).strip(), kwargs.get('password'))} "
            f"({type(exc).__name__}); {committed}",
            invocation=invocation(module),
            **details,
        )
    if planning:
        needs = [e["version"] for e in report.applied] + [d["version"] for d in report.drift_accepted]
        if needs or setup:  # a real run follows and reports (and warns) itself: the plan says only what it needs
            module.exit_json(changed=True, _needs=needs, _needs_setup=setup, invocation=invocation(module))
    elif setup:  # check mode: the tracking tables a real run would create or complete
        report.tracking, report.changed = setup, True
    for warning in report.warnings:
        module.warn(warning)
    result = report.as_dict()
    result["database"] = target
    if module._diff:
        result["diff"] = _diff(report.before, report.after, target)
    module.exit_json(invocation=invocation(module), **result)


def run_info(module: AnsibleModule) -> None:
    require_psycopg(module)
    p = module.params
    migrations = migrations_of(module)
    tracking = Tracking(p["tracking_schema"], p["tracking_table"])
    kwargs = _connection.connect_kwargs(p)
    target = _connection.describe(kwargs)
    try:
        with _connection.connect(kwargs) as conn:
            exists = tracking.exists(conn)
            applied = tracking.applied(conn)
            progress = tracking.progress(conn)
            active = runner_active(conn, tracking)
        ref = reference_kwargs(module)
        reference_rows = None
        if ref:
            with _connection.connect(ref) as conn:
                reference_rows = tracking.applied(conn)
    except ConnectionError as exc:
        module.fail_json(msg=str(exc), invocation=invocation(module))
    except _connection.DatabaseError as exc:  # the server stopped, the connection lost
        module.fail_json(
            msg=f"{target}: {_connection.scrub(str(exc).strip(), kwargs.get('password'))} ({type(exc).__name__})",
            invocation=invocation(module),
        )
    entries = migration_status(migrations, applied, progress, active)
    result: dict[str, Any] = {
        "changed": False,
        "database": target,
        "tracking_table_exists": exists,
        "runner_active": active,
        "migrations": entries,
    }
    result.update(summarize(entries))
    if reference_rows is not None and ref is not None:
        result["reference"] = dict(database=_connection.describe(ref), **compare(migrations, applied, reference_rows))
    module.exit_json(invocation=invocation(module), **result)


def run_rehearsal(module: AnsibleModule) -> None:
    """Rehearse the pending migrations (or, with from_empty, every one) on a scratch database."""
    from ansible_collections.tme.migrations.plugins.module_utils._rehearsal import Outcome, RehearsalError, rehearse

    require_psycopg(module)
    p = module.params
    given = migrations_of(module)
    if given is None:
        module.fail_json(msg="path is required: the migrations to rehearse")
    migrations: list[Migration] = given or []
    tracking = Tracking(p["tracking_schema"], p["tracking_table"])
    kwargs = _connection.connect_kwargs(p)
    target = _connection.describe(kwargs)

    outcomes: list[Outcome] = []
    chosen: list[Migration] = []
    tools = None if p["from_empty"] else PgTools.from_params({**p, "login_db": kwargs.get("dbname") or p["login_db"]})
    try:
        if p["from_empty"]:
            chosen = migrations
        else:
            with _connection.connect(kwargs) as conn:
                applied = tracking.applied(conn)
            chosen = [m for m in migrations if m.version not in applied]
        if p["up_to"]:
            limit = sort_key(p["up_to"])
            chosen = [m for m in chosen if sort_key(m.version) <= limit]
        if p["versions"]:
            unknown = sorted(set(p["versions"]) - {m.version for m in chosen})
            if unknown:
                module.fail_json(msg=f"{target}: not pending, or not among the files: {', '.join(unknown)}")
            chosen = [m for m in chosen if m.version in p["versions"]]
        scratch = ""
        if chosen:
            scratch, outcomes = rehearse(kwargs, chosen, tools, prefix=p["scratch_prefix"])
    except (ConnectionError, RehearsalError) as exc:
        module.fail_json(msg=f"{target}: {exc}", changed=False, invocation=invocation(module))
    results = [o.as_dict() for o in outcomes]
    skipped = [m.version for m in chosen[len(outcomes) :]]
    failed = [o for o in outcomes if not o.passed]
    result: dict[str, Any] = {
        "changed": False,
        "database": target,
        "scratch_database": scratch or None,
        "rehearsed": results,
        "passed_versions": [o.version for o in outcomes if o.passed],
        "failed_versions": [o.version for o in failed],
        "not_rehearsed": skipped,
    }
    if failed:
        first = failed[0]
        module.fail_json(
            msg=f"rollback rehearsal failed for {first.version} ({first.step}): {first.error}",
            invocation=invocation(module),
            **result,
        )
    module.exit_json(invocation=invocation(module), **result)
