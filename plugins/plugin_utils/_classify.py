# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""SAFE or BREAKING, lock hazards and transaction hygiene, read from PostgreSQL's parse tree.

SAFE means backward compatible: the running code keeps working after the migration (the
guide's list: new tables, nullable columns, indexes, enum values, backfills). BREAKING means
the migration must ship with a code release (drops, renames, type changes, NOT NULL without a
default, ...). What the analysis cannot see into (a DO block it cannot parse, dynamic SQL, an
unknown statement) counts as BREAKING.

Lock hazards are independent of the class: each names the safer way to reach the same schema.
Objects the same migration creates are new: changing them blocks nobody and breaks nothing.

Runs on the controller; no database is needed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from ansible_collections.tme.migrations.plugins.module_utils._model import BREAKING, SAFE, MigrationError
from ansible_collections.tme.migrations.plugins.plugin_utils._findings import ERROR, INFO, ROLLBACK_RULES, WARNING
from ansible_collections.tme.migrations.plugins.plugin_utils._redact import redact
from ansible_collections.tme.migrations.plugins.plugin_utils._sqlparse import (
    HAS_PGLAST,
    Parsed,
    is_transactional,
    parse_statements,
)

if HAS_PGLAST:
    import pglast.parser as _pg


_VOLATILE = {
    "random",
    "gen_random_uuid",
    "uuid_generate_v1",
    "uuid_generate_v1mc",
    "uuid_generate_v4",
    "uuidv4",
    "uuidv7",
    "clock_timestamp",
    "timeofday",
    "nextval",
    "txid_current",
    "setseed",
}
# Built-ins that are immutable or stable: a column default calling only these is computed once and kept in
# the catalog (PostgreSQL 11+), so ADD COLUMN rewrites no row. Anything else (a function of the application,
# an extension's function) cannot be told offline: the finding names it, and the engine settles it from
# pg_proc.provolatile on the target database (module_utils/_volatility.py).
_NON_VOLATILE = {
    "now",
    "transaction_timestamp",
    "statement_timestamp",
    "current_timestamp",
    "localtimestamp",
    "current_date",
    "current_time",
    "localtime",
    "current_setting",
    "current_database",
    "current_schema",
    "current_user",
    "session_user",
    "lower",
    "upper",
    "initcap",
    "length",
    "char_length",
    "substr",
    "substring",
    "trim",
    "btrim",
    "ltrim",
    "rtrim",
    "replace",
    "concat",
    "concat_ws",
    "format",
    "left",
    "right",
    "lpad",
    "rpad",
    "repeat",
    "split_part",
    "md5",
    "encode",
    "decode",
    "to_char",
    "to_date",
    "to_timestamp",
    "to_number",
    "date_trunc",
    "date_part",
    "extract",
    "make_date",
    "make_time",
    "make_timestamp",
    "make_timestamptz",
    "make_interval",
    "timezone",
    "abs",
    "round",
    "floor",
    "ceil",
    "ceiling",
    "trunc",
    "power",
    "to_json",
    "to_jsonb",
    "json_build_object",
    "jsonb_build_object",
    "json_build_array",
    "jsonb_build_array",
    "array_to_string",
    "string_to_array",
    "array_fill",
    "nullif",
    "int2",
    "int4",
    "int8",
    "float4",
    "float8",
    "numeric",
    "text",
    "bool",
    "uuid_nil",
    "to_tsvector",
    "to_regclass",
}
_SERIAL = {"serial", "serial2", "serial4", "serial8", "smallserial", "bigserial"}
_NO_REWRITE_TYPES = {"text", "varchar", "citext"}  # widening to these keeps the rows as they are

# Session settings the engine itself sets for each migration (SET LOCAL in its transaction).
_TIMEOUTS = {"lock_timeout", "statement_timeout", "idle_in_transaction_session_timeout", "transaction_timeout"}
_SESSION_ROLE = {"role": "SET ROLE", "session_authorization": "SET SESSION AUTHORIZATION"}
# Functions that read or write files of the database server (or list its directories).
_SERVER_FILE_FUNCTIONS = {
    "lo_import",
    "lo_export",
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_dir",
    "pg_stat_file",
    "pg_ls_logdir",
    "pg_ls_waldir",
    "pg_ls_tmpdir",
    "pg_ls_archive_statusdir",
    "pg_file_write",
    "pg_file_rename",
    "pg_file_unlink",
}
# Statements whose tree holds no call (a function's or DO block's body is a string; a DO block's statements
# are read one by one): their often long text is not searched.
_NO_CALLS = {"CreateFunctionStmt", "DoStmt", "CommentStmt"}
# Searched in the lower-cased text (much faster than a case-insensitive pattern) before the tree is walked.
_CALLS = re.compile(r"set_config|lo_import|lo_export|pg_read_|pg_ls_|pg_stat_file|pg_file_|dblink")
_PRIVILEGED_ROLE_OPTIONS = {
    "superuser": "SUPERUSER",
    "createrole": "CREATEROLE",
    "bypassrls": "BYPASSRLS",
    "isreplication": "REPLICATION",
}
# Statements on objects every database of the server shares (roles, databases, tablespaces, settings).
_CLUSTER_WIDE = {
    "AlterSystemStmt": "ALTER SYSTEM changes the server's configuration",
    "CreateRoleStmt": "roles belong to the whole server",
    "AlterRoleStmt": "roles belong to the whole server",
    "AlterRoleSetStmt": "a role's settings apply in every database",
    "DropRoleStmt": "roles belong to the whole server",
    "GrantRoleStmt": "role membership belongs to the whole server",
    "CreatedbStmt": "CREATE DATABASE adds a database to the server",
    "DropdbStmt": "DROP DATABASE removes a database of the server",
    "AlterDatabaseStmt": "ALTER DATABASE names a database of the server, not necessarily this one",
    "AlterDatabaseSetStmt": "ALTER DATABASE names a database of the server, not necessarily this one",
    "AlterDatabaseRefreshCollStmt": "ALTER DATABASE names a database of the server, not necessarily this one",
    "CreateTableSpaceStmt": "tablespaces belong to the whole server",
    "DropTableSpaceStmt": "tablespaces belong to the whole server",
    "AlterTableSpaceOptionsStmt": "tablespaces belong to the whole server",
}
_CLUSTER_WIDE_OBJECTS = {
    "OBJECT_ROLE": "roles belong to the whole server",
    "OBJECT_DATABASE": "it names a database of the server, not necessarily this one",
    "OBJECT_TABLESPACE": "tablespaces belong to the whole server",
}
_DROP_RULES = {
    "OBJECT_TABLE": "drop-table",
    "OBJECT_FOREIGN_TABLE": "drop-table",
    "OBJECT_VIEW": "drop-view",
    "OBJECT_MATVIEW": "drop-view",
    "OBJECT_TYPE": "drop-type",
    "OBJECT_DOMAIN": "drop-type",
    "OBJECT_FUNCTION": "drop-function",
    "OBJECT_PROCEDURE": "drop-function",
    "OBJECT_ROUTINE": "drop-function",
    "OBJECT_AGGREGATE": "drop-function",
    "OBJECT_SCHEMA": "drop-schema",
    "OBJECT_SEQUENCE": "drop-sequence",
}
# Dropping one of these and creating it again in the same file replaces it; the name stays.
_REPLACEABLE = {
    "OBJECT_FUNCTION",
    "OBJECT_PROCEDURE",
    "OBJECT_ROUTINE",
    "OBJECT_AGGREGATE",
    "OBJECT_TRIGGER",
    "OBJECT_POLICY",
    "OBJECT_RULE",
    "OBJECT_INDEX",
}
_HARMLESS_DROPS = {"OBJECT_TABCONSTRAINT", "OBJECT_STATISTIC_EXT", "OBJECT_CAST"}
_RENAME_BREAKING = {
    "OBJECT_TABLE": "rename-table",
    "OBJECT_FOREIGN_TABLE": "rename-table",
    "OBJECT_COLUMN": "rename-column",
    "OBJECT_ATTRIBUTE": "rename-column",
    "OBJECT_VIEW": "rename-view",
    "OBJECT_MATVIEW": "rename-view",
    "OBJECT_TYPE": "rename-type",
    "OBJECT_DOMAIN": "rename-type",
    "OBJECT_SCHEMA": "rename-schema",
    "OBJECT_FUNCTION": "rename-function",
    "OBJECT_PROCEDURE": "rename-function",
    "OBJECT_ROUTINE": "rename-function",
    "OBJECT_AGGREGATE": "rename-function",
    "OBJECT_SEQUENCE": "rename-sequence",
}
_SAFE_ALTER = {
    "AT_ColumnDefault",
    "AT_CookedColumnDefault",
    "AT_DropNotNull",
    "AT_DropConstraint",
    "AT_ValidateConstraint",
    "AT_AttachPartition",
    "AT_AlterConstraint",
    "AT_EnableTrig",
    "AT_EnableAlwaysTrig",
    "AT_EnableReplicaTrig",
    "AT_DisableTrig",
    "AT_EnableTrigAll",
    "AT_DisableTrigAll",
    "AT_EnableTrigUser",
    "AT_DisableTrigUser",
    "AT_EnableRule",
    "AT_EnableAlwaysRule",
    "AT_EnableReplicaRule",
    "AT_DisableRule",
    "AT_EnableRowSecurity",
    "AT_DisableRowSecurity",
    "AT_ForceRowSecurity",
    "AT_NoForceRowSecurity",
    "AT_ChangeOwner",
    "AT_SetRelOptions",
    "AT_ResetRelOptions",
    "AT_ReplaceRelOptions",
    "AT_SetStatistics",
    "AT_SetOptions",
    "AT_ResetOptions",
    "AT_SetStorage",
    "AT_SetCompression",
    "AT_ClusterOn",
    "AT_DropCluster",
    "AT_ReplicaIdentity",
    "AT_AddIdentity",
    "AT_SetIdentity",
    "AT_DropIdentity",
    "AT_AddInherit",
    "AT_DropInherit",
    "AT_AddOf",
    "AT_DropOf",
    "AT_DropExpression",
    "AT_GenericOptions",
    "AT_AlterColumnGenericOptions",
}
_REWRITE_ALTER = {
    "AT_SetLogged": "SET LOGGED",
    "AT_SetUnLogged": "SET UNLOGGED",
    "AT_SetTableSpace": "SET TABLESPACE",
    "AT_SetAccessMethod": "SET ACCESS METHOD",
}
# Statements that only add, document, grant or change data; nothing existing goes away.
_SAFE_KINDS = {
    "CreateStmt",
    "CreateTableAsStmt",
    "ViewStmt",
    "CreateSeqStmt",
    "AlterSeqStmt",
    "CreateSchemaStmt",
    "CreateFunctionStmt",
    "AlterFunctionStmt",
    "CreateTrigStmt",
    "CreateEventTrigStmt",
    "CreateEnumStmt",
    "CreateDomainStmt",
    "CompositeTypeStmt",
    "CreateRangeStmt",
    "DefineStmt",
    "CreateExtensionStmt",
    "AlterExtensionStmt",
    "CreateCastStmt",
    "CreateOpClassStmt",
    "CreateOpFamilyStmt",
    "CreateConversionStmt",
    "CreateStatsStmt",
    "AlterStatsStmt",
    "CreatePolicyStmt",
    "AlterPolicyStmt",
    "RuleStmt",
    "CommentStmt",
    "SecLabelStmt",
    "GrantStmt",
    "GrantRoleStmt",
    "AlterDefaultPrivilegesStmt",
    "AlterOwnerStmt",
    "CreateRoleStmt",
    "AlterRoleStmt",
    "AlterRoleSetStmt",
    "AlterDatabaseSetStmt",
    "CreatePublicationStmt",
    "AlterPublicationStmt",
    "InsertStmt",
    "UpdateStmt",
    "DeleteStmt",
    "MergeStmt",
    "SelectStmt",
    "CopyStmt",
    "VariableSetStmt",
    "VariableShowStmt",
    "RefreshMatViewStmt",
    "NotifyStmt",
    "ListenStmt",
    "CheckPointStmt",
    "DiscardStmt",
    "ExplainStmt",
    "AlterCollationStmt",
    "AlterTSDictionaryStmt",
    "AlterTSConfigurationStmt",
    "CreateFdwStmt",
    "CreateForeignServerStmt",
    "CreateUserMappingStmt",
    "CreateForeignTableStmt",
    "ImportForeignSchemaStmt",
}


@dataclass(frozen=True)
class Finding:
    """One thing the analysis noticed, with where it is."""

    rule: str
    severity: str
    path: str
    line: int
    statement: str
    message: str
    breaking: bool = False  # this finding makes the migration BREAKING
    # add-column-unknown-default: the functions whose volatility decides it, as written (schema included when
    # named), and those of them the same script creates; module_utils/_volatility.py reads the others' from pg_proc.
    functions: tuple[str, ...] = ()
    defined_here: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "rule": self.rule,
            "severity": self.severity,
            "path": self.path,
            "line": self.line,
            "statement": self.statement,
            "message": self.message,
            "breaking": self.breaking,
        }
        if self.functions:
            data["functions"] = list(self.functions)
            data["defined_here"] = list(self.defined_here)
        return data

    def __str__(self) -> str:
        return f"{self.path} line {self.line}: [{self.rule}] {self.message}"


@dataclass
class Analysis:
    """The findings of one script, and its class."""

    path: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def classification(self) -> str:
        return BREAKING if any(f.breaking for f in self.findings) else SAFE


def _name(items: list[Any] | None) -> str:
    """The last part of a qualified name given as a list of String nodes."""
    if not items:
        return ""
    last = items[-1]
    return str(last.get("String", {}).get("sval", "")) if isinstance(last, dict) else ""


def _dotted(items: list[Any] | None) -> str:
    return ".".join(str(i.get("String", {}).get("sval", "")) for i in items or () if isinstance(i, dict))


def _bare(name: str) -> str:
    """A dotted name without its schema."""
    return name.rsplit(".", 1)[-1]


def _relname(relation: dict[str, Any] | None) -> str:
    return str((relation or {}).get("relname", ""))


def _qualified(relation: dict[str, Any] | None) -> str:
    relation = relation or {}
    schema = relation.get("schemaname")
    return f"{schema}.{relation.get('relname', '')}" if schema else str(relation.get("relname", ""))


def _label(sql: str) -> str:
    """The statement as findings show it: on one line, shortened, password literals hidden."""
    text = " ".join(redact(sql).split())
    return text if len(text) <= 160 else text[:157] + "..."


def _walk(node: Any) -> Iterable[Any]:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


class _Classifier:
    """Walks one script's statements in order; knows what the script itself created."""

    def __init__(self, path: str, transactional: bool) -> None:
        self.analysis = Analysis(path)
        self.path = path
        self.transactional = transactional  # the engine runs the script in one transaction
        self.new_tables: set[str] = set()
        self.new_objects: set[str] = set()
        self.later: set[str] = set()  # objects created somewhere in the script
        self.new_enum_values: dict[str, int] = {}
        self.explicit_txn_line = 0  # line of the file's open BEGIN, 0 when none is open
        self.current = Parsed("", {}, 0, "", 0, 0)
        self.line_offset = 0

    # -- reporting ---------------------------------------------------------
    def add(
        self,
        rule: str,
        severity: str,
        message: str,
        breaking: bool = False,
        functions: tuple[str, ...] = (),
        defined_here: tuple[str, ...] = (),
    ) -> None:
        self.analysis.findings.append(
            Finding(
                rule,
                severity,
                self.path,
                self.current.line + self.line_offset,
                _label(self.current.sql),
                message,
                breaking,
                functions,
                defined_here,
            )
        )

    def breaking(self, rule: str, message: str) -> None:
        self.add(rule, INFO, message + " (BREAKING: deploy it together with the code release)", True)

    def hazard(self, rule: str, message: str) -> None:
        self.add(rule, WARNING, message)

    # -- driver --------------------------------------------------------------
    def run(self, statements: list[Parsed]) -> Analysis:
        self.later = {name for s in statements for name in _created_names(s.kind, s.body)}
        for statement in statements:
            self.current = statement
            self.statement(statement.kind, statement.body)
        if self.explicit_txn_line:
            self.current = Parsed("TransactionStmt", {}, self.explicit_txn_line, "BEGIN", 0, 0)
            self.add(
                "begin-without-commit",
                ERROR,
                "BEGIN without a matching COMMIT: psql would roll the whole file back when it exits",
            )
        return self.analysis

    def statement(self, kind: str, body: dict[str, Any]) -> None:
        if self.new_enum_values and self.transactional:
            self.enum_use(body)
        if kind not in _NO_CALLS and _CALLS.search(self.current.sql.lower()):
            self.calls(body)
        if kind in _CLUSTER_WIDE:
            self.cluster_wide(_CLUSTER_WIDE[kind])
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(self, body)
        elif kind not in _SAFE_KINDS and kind not in _CLUSTER_WIDE:
            self.add(
                "unknown-statement",
                WARNING,
                f"{kind} is not one the analysis knows; it counts as BREAKING until a person checks it",
                True,
            )
        self.remember(kind, body)

    def remember(self, kind: str, body: dict[str, Any]) -> None:
        names = _created_names(kind, body)
        self.new_objects.update(names)
        if kind in ("CreateStmt", "CreateTableAsStmt", "ViewStmt", "CreateForeignTableStmt"):
            self.new_tables.update(names)

    def is_new(self, name: str) -> bool:
        return bool(name) and name in self.new_tables

    # -- hygiene -------------------------------------------------------------
    def enum_use(self, body: dict[str, Any]) -> None:
        for node in _walk(body):
            value = node.get("sval")
            if isinstance(value, dict):
                value = value.get("sval")
            if isinstance(value, str) and value in self.new_enum_values:
                self.add(
                    "enum-value-used-in-same-transaction",
                    ERROR,
                    f"enum value '{value}' is used in the transaction that adds it (line "
                    f"{self.new_enum_values[value]}); PostgreSQL refuses this (55P04): add the value in a "
                    "migration of its own",
                )
                return

    def transaction(self, body: dict[str, Any]) -> None:
        kind = body.get("kind")
        if kind in ("TRANS_STMT_BEGIN", "TRANS_STMT_START"):
            self.explicit_txn_line = self.current.line
        elif kind in ("TRANS_STMT_COMMIT", "TRANS_STMT_ROLLBACK"):
            self.explicit_txn_line = 0

    def concurrently(self, what: str) -> None:
        if self.explicit_txn_line:
            self.add(
                "concurrently-in-transaction",
                ERROR,
                f"{what} CONCURRENTLY inside the file's BEGIN (line {self.explicit_txn_line}) fails: "
                "it cannot run in a transaction block; put it in a migration of its own without BEGIN/COMMIT",
            )

    # -- session settings, server files, roles, the cluster ----------------------------------
    def timeout(self, what: str) -> None:
        self.add(
            "override-timeout",
            ERROR,
            f"{what} defeats the engine's lock_timeout/statement_timeout: a migration waiting for a lock "
            "without them stalls every query queued behind it; remove it and set the module's lock_timeout / "
            "statement_timeout options (role variables migrate_lock_timeout, ...) for the run instead",
        )

    def session_role(self, what: str) -> None:
        self.hazard(
            "set-role",
            f"{what} changes who runs the rest of the migration (the engine resets it after each migration); "
            "connect as the role that should own the objects, or ALTER ... OWNER TO / GRANT explicitly",
        )

    def search_path(self, what: str) -> None:
        self.hazard(
            "set-search-path",
            f"{what} changes how every later name of the migration resolves (the engine resets it after each "
            "migration); schema-qualify the names instead",
        )

    def variable_set(self, body: dict[str, Any]) -> None:
        kind = str(body.get("kind", ""))
        name = str(body.get("name") or "")
        verb = "RESET" if kind == "VAR_RESET" else "SET LOCAL" if body.get("is_local") else "SET"
        if kind == "VAR_RESET_ALL":
            self.timeout("RESET ALL (it resets every setting, the engine's timeouts and search_path included)")
        elif name in _TIMEOUTS:
            self.timeout(f"{verb} {name}")
        elif name in _SESSION_ROLE:
            self.session_role(_SESSION_ROLE[name].replace("SET", verb, 1))
        elif name == "search_path":
            self.search_path(f"{verb} search_path")

    def calls(self, body: dict[str, Any]) -> None:
        """Function calls anywhere in the statement: set_config, server files, dblink with a password."""
        for node in _walk(body):
            call = node.get("FuncCall")
            if not isinstance(call, dict):
                continue
            name = _name(call.get("funcname"))
            args = call.get("args") or []
            if name == "set_config":
                setting = _const_string(args[0]) if args else None
                if setting in _TIMEOUTS:
                    self.timeout(f"set_config('{setting}', ...)")
                elif setting == "search_path":
                    self.search_path("set_config('search_path', ...)")
                elif setting in _SESSION_ROLE:
                    self.session_role(f"set_config('{setting}', ...)")
            elif name in _SERVER_FILE_FUNCTIONS:
                self.add(
                    "server-file-access",
                    ERROR,
                    f"{name}() reads or writes files on the database server, which a migration must not depend on "
                    "(and which needs superuser or pg_read_server_files); load data with COPY FROM STDIN outside "
                    "migrations, or put it in the migration as SQL",
                )
            elif name.startswith("dblink") and any(_has_password(_const_string(a) or "") for a in args):
                self.password_literal(f"{name}() with a connection string holding a password")

    def password_literal(self, what: str) -> None:
        self.add(
            "password-literal",
            ERROR,
            f"{what}: secrets do not belong in migration files (they stay in git, backups and logs); create the "
            "role or mapping without one and set the password outside migrations (community.postgresql."
            "postgresql_user with a vaulted password, or psql's \\password)",
        )

    def options(self, what: str, options: list[Any] | None) -> None:
        """Role attributes and OPTIONS: privileged attributes, password literals."""
        for option in options or []:
            elem = option.get("DefElem", {}) if isinstance(option, dict) else {}
            name = elem.get("defname")
            arg = elem.get("arg") or {}
            if name in _PRIVILEGED_ROLE_OPTIONS and arg.get("Boolean", {}).get("boolval"):
                self.add(
                    "role-privileged-attribute",
                    ERROR,
                    f"{what} grants {_PRIVILEGED_ROLE_OPTIONS[name]}, which bypasses the database's permission "
                    "checks server-wide; give such attributes by hand, reviewed, never from a migration",
                )
            elif name == "password" and "String" in arg:
                self.password_literal(f"{what} sets a password literal")

    def role(self, body: dict[str, Any]) -> None:
        role = body.get("role")
        name = role.get("rolename", "") if isinstance(role, dict) else str(role or "")
        self.options(f"role {name}", body.get("options"))

    def foreign_options(self, body: dict[str, Any]) -> None:
        what = f"server {body['servername']}" if body.get("servername") else "the foreign server"
        if isinstance(body.get("user"), dict):
            what = f"the user mapping of {body['user'].get('rolename') or 'PUBLIC'} for {what}"
        self.options(what, body.get("options"))

    def copy(self, body: dict[str, Any]) -> None:
        direction = "FROM" if body.get("is_from") else "TO"
        if body.get("is_program"):
            self.add(
                "copy-program",
                ERROR,
                f"COPY ... {direction} PROGRAM runs a shell command on the database server as its operating "
                "system user; keep it out of migrations (load data with COPY FROM STDIN from a task instead)",
            )
        elif body.get("filename") is not None:
            self.add(
                "copy-server-file",
                ERROR,
                f"COPY ... {direction} a file reads or writes a file on the database server, which the migration "
                "cannot count on (another host, the container, the rehearsal's copy); use COPY FROM STDIN outside "
                "migrations, or put the rows in the migration as INSERTs",
            )

    def cluster_wide(self, why: str) -> None:
        self.add(
            "cluster-wide",
            ERROR,
            f"{why}: the statement affects every database of the server, production included (staging and "
            "production share it in the guide's setup), and the rollback rehearsal would run it on the real server; "
            "make such changes by hand or with community.postgresql, reviewed, or accept it with '-- Allow: "
            "cluster-wide' in the file's header",
        )

    def cluster_object(self, body: dict[str, Any]) -> None:
        kind = body.get("renameType") or body.get("objectType")
        if kind in _CLUSTER_WIDE_OBJECTS:
            self.cluster_wide(_CLUSTER_WIDE_OBJECTS[kind])

    # -- statements ----------------------------------------------------------
    def index(self, body: dict[str, Any]) -> None:
        table = _qualified(body.get("relation"))
        if body.get("concurrent"):
            self.concurrently("CREATE INDEX")
        elif not self.is_new(_relname(body.get("relation"))):
            self.hazard(
                "require-concurrent-index",
                f"CREATE INDEX on existing table {table} blocks writes to it while the index builds; "
                "use CREATE INDEX CONCURRENTLY, in a migration of its own without BEGIN/COMMIT",
            )

    def drop(self, body: dict[str, Any]) -> None:
        kind = body.get("removeType", "")
        names = [_object_name(o) for o in body.get("objects") or []]
        if kind == "OBJECT_INDEX":
            if body.get("concurrent"):
                self.concurrently("DROP INDEX")
            elif not all(n in self.new_objects for n in names):
                self.hazard(
                    "drop-index-concurrently",
                    f"DROP INDEX {', '.join(names)} takes an ACCESS EXCLUSIVE lock on its table; use DROP INDEX "
                    "CONCURRENTLY, in a migration of its own without BEGIN/COMMIT",
                )
            return
        if kind in _HARMLESS_DROPS:
            return
        gone = [n for n in names if n not in self.new_objects and not (kind in _REPLACEABLE and n in self.later)]
        if not gone:
            return
        rule = _DROP_RULES.get(kind, "drop-object")
        what = kind.replace("OBJECT_", "").lower().replace("_", " ")
        self.breaking(rule, f"drops {what} {', '.join(gone)}: code that still uses it fails")

    def rename(self, body: dict[str, Any]) -> None:
        kind = body.get("renameType", "")
        self.cluster_object(body)
        rule = _RENAME_BREAKING.get(kind)
        if rule is None:
            return  # indexes, constraints, triggers, policies, rules: no query names them
        table = _relname(body.get("relation"))
        if table and self.is_new(table):
            return
        if kind in ("OBJECT_COLUMN", "OBJECT_ATTRIBUTE"):
            what = f"column {_qualified(body.get('relation'))}.{body.get('subname')}"
        elif body.get("relation"):
            what = f"{kind.replace('OBJECT_', '').lower()} {_qualified(body.get('relation'))}"
        else:
            what = f"{kind.replace('OBJECT_', '').lower()} {_object_name(body.get('object'))}"
        self.breaking(rule, f"renames {what} to {body.get('newname')}: code using the old name fails")

    def alter_enum(self, body: dict[str, Any]) -> None:
        enum = _dotted(body.get("typeName"))
        if body.get("oldVal"):
            self.breaking(
                "rename-enum-value",
                f"renames value '{body['oldVal']}' of enum {enum} to '{body.get('newVal')}': code writing the old "
                "value fails",
            )
        elif body.get("newVal"):
            self.new_enum_values[body["newVal"]] = self.current.line + self.line_offset

    def set_schema(self, body: dict[str, Any]) -> None:
        table = _relname(body.get("relation"))
        if table and self.is_new(table):
            return
        what = _qualified(body.get("relation")) if body.get("relation") else _object_name(body.get("object"))
        self.breaking("set-schema", f"moves {what} to schema {body.get('newschema')}: code using the old name fails")

    def truncate(self, body: dict[str, Any]) -> None:
        tables = [_qualified(r.get("RangeVar")) for r in body.get("relations") or []]
        if all(self.is_new(t) for t in tables):
            return
        self.breaking("truncate", f"TRUNCATE {', '.join(tables)} deletes every row")

    def alter_table(self, body: dict[str, Any]) -> None:
        relation = body.get("relation")
        table = _qualified(relation)
        new = self.is_new(_relname(relation))
        for wrapper in body.get("cmds") or []:
            cmd = wrapper.get("AlterTableCmd", {})
            subtype = cmd.get("subtype", "")
            if subtype == "AT_AddColumn":
                self.add_column(table, cmd.get("def", {}).get("ColumnDef", {}), new)
            elif subtype == "AT_AddConstraint":
                self.add_constraint(table, cmd.get("def", {}).get("Constraint", {}), new)
            elif new or subtype in _SAFE_ALTER:
                continue
            elif subtype == "AT_DropColumn":
                self.breaking("drop-column", f"drops column {table}.{cmd.get('name')}: code that reads it fails")
            elif subtype == "AT_AlterColumnType":
                self.alter_type(table, cmd)
            elif subtype == "AT_SetNotNull":
                self.set_not_null(table, str(cmd.get("name")))
            elif subtype in ("AT_DetachPartition", "AT_DetachPartitionFinalize"):
                self.breaking("detach-partition", f"detaches a partition of {table}: its rows leave the table")
            elif subtype in _REWRITE_ALTER:
                self.hazard(
                    "table-rewrite",
                    f"ALTER TABLE {table} {_REWRITE_ALTER[subtype]} rewrites the table under an ACCESS EXCLUSIVE "
                    "lock; schedule it in a maintenance window",
                )
            elif subtype in ("AT_SetExpression",):
                self.hazard("table-rewrite", f"changing a generated column of {table} rewrites the table")
            else:
                self.add(
                    "unknown-statement",
                    WARNING,
                    f"ALTER TABLE {table} {subtype} is not one the analysis knows; it counts as BREAKING",
                    True,
                )

    def add_column(self, table: str, column: dict[str, Any], new: bool) -> None:
        if new:
            return
        name = f"{table}.{column.get('colname')}"
        type_name = _name(column.get("typeName", {}).get("names"))
        kinds = {
            c.get("Constraint", {}).get("contype"): c.get("Constraint", {}) for c in column.get("constraints") or []
        }
        default = kinds.get("CONSTR_DEFAULT")
        filled = default is not None or type_name in _SERIAL or {"CONSTR_IDENTITY", "CONSTR_GENERATED"} & set(kinds)
        if ("CONSTR_NOTNULL" in kinds or "CONSTR_PRIMARY" in kinds) and not filled:
            self.breaking(
                "add-column-not-null",
                f"adds column {name} NOT NULL without a default: inserts from the running code fail; add it "
                "nullable or with a DEFAULT, backfill, and set NOT NULL in a release",
            )
        volatility, functions = _default_volatility(default.get("raw_expr") if default else None)
        if volatility or type_name in _SERIAL or "CONSTR_IDENTITY" in kinds:
            calls = ", ".join(f"{function}()" for function in functions)
            if volatility == "unknown":
                why = (
                    f"default {calls}, whose volatility cannot be told offline (not a known immutable or "
                    "stable built-in; if it is volatile"
                )
                rule, rewrite = "add-column-unknown-default", "), every row is rewritten"
            else:
                why = f"volatile default {calls}" if volatility else "a generated sequence value"
                rule, rewrite = "add-column-volatile-default", ": every row is rewritten"
            self.add(
                rule,
                WARNING,
                f"adds column {name} with {why}{rewrite} under an ACCESS EXCLUSIVE lock (PostgreSQL 11+ skips the "
                "rewrite only for non-volatile defaults), so it waits for a release (BREAKING); add the column "
                "without a default, SET DEFAULT, then backfill in batches",
                True,
                functions=tuple(functions) if volatility == "unknown" else (),
                # Created (or replaced) by this script: pg_proc holds the earlier definition, if any.
                defined_here=tuple(f for f in functions if _bare(f) in {_bare(n) for n in self.later})
                if volatility == "unknown"
                else (),
            )
        if "CONSTR_GENERATED" in kinds:
            self.add(
                "add-column-volatile-default",
                WARNING,
                f"adds stored generated column {name}: every row is rewritten under an ACCESS EXCLUSIVE lock, so it "
                "waits for a release (BREAKING)",
                True,
            )
        for contype, constraint in kinds.items():
            if contype in ("CONSTR_PRIMARY", "CONSTR_UNIQUE", "CONSTR_FOREIGN", "CONSTR_CHECK", "CONSTR_EXCLUSION"):
                self.add_constraint(table, constraint, False, column=str(column.get("colname")))

    def add_constraint(self, table: str, constraint: dict[str, Any], new: bool, column: str = "") -> None:
        if new:
            return
        contype = constraint.get("contype")
        name = constraint.get("conname") or (f"on {table}.{column}" if column else f"on {table}")
        not_valid = bool(constraint.get("skip_validation"))
        if contype == "CONSTR_FOREIGN" and not not_valid:
            self.hazard(
                "foreign-key-not-valid",
                f"foreign key {name} is checked against every row while both tables are locked; add it NOT VALID, "
                "then VALIDATE CONSTRAINT in a later migration",
            )
        elif contype == "CONSTR_CHECK" and not not_valid:
            self.hazard(
                "check-not-valid",
                f"check constraint {name} scans the whole table under an ACCESS EXCLUSIVE lock; add it NOT VALID, "
                "then VALIDATE CONSTRAINT in a later migration",
            )
        elif contype in ("CONSTR_PRIMARY", "CONSTR_UNIQUE") and not constraint.get("indexname"):
            kind = "primary key" if contype == "CONSTR_PRIMARY" else "unique constraint"
            self.hazard(
                "constraint-builds-index",
                f"{kind} {name} builds its index while writes to {table} are blocked; CREATE UNIQUE INDEX "
                "CONCURRENTLY first, then ADD CONSTRAINT ... USING INDEX",
            )
        elif contype == "CONSTR_EXCLUSION":
            self.hazard(
                "constraint-builds-index",
                f"exclusion constraint {name} builds its index while writes to {table} are blocked",
            )
        elif contype == "CONSTR_NOTNULL" and not column:
            self.set_not_null(table, _name(constraint.get("keys")))

    def alter_type(self, table: str, cmd: dict[str, Any]) -> None:
        column = f"{table}.{cmd.get('name')}"
        type_node = cmd.get("def", {}).get("ColumnDef", {}).get("typeName", {})
        target = _name(type_node.get("names"))
        self.breaking(
            "change-column-type", f"changes the type of column {column} to {target}: code may read or write it wrongly"
        )
        if target in _NO_REWRITE_TYPES and not type_node.get("typmods"):
            return
        self.hazard(
            "column-type-rewrite",
            f"changing column {column} to {target} rewrites the table and its indexes under an ACCESS EXCLUSIVE "
            "lock unless the types are binary compatible (e.g. varchar(n) to text); add a new column, backfill, "
            "and switch in a release",
        )

    def set_not_null(self, table: str, column: str) -> None:
        self.breaking(
            "set-not-null",
            f"sets NOT NULL on existing column {table}.{column}: inserts from the running code that omit it fail",
        )
        self.hazard(
            "set-not-null-scan",
            f"SET NOT NULL on {table}.{column} scans the whole table under an ACCESS EXCLUSIVE lock; add CHECK "
            f"({column} IS NOT NULL) NOT VALID, VALIDATE it, then SET NOT NULL (PostgreSQL 12+ skips the scan)",
        )

    def lock(self, body: dict[str, Any]) -> None:
        tables = [_qualified(r.get("RangeVar")) for r in body.get("relations") or []]
        self.hazard(
            "lock-table",
            f"LOCK TABLE {', '.join(tables)} blocks other sessions until the migration commits; keep it out of "
            "migrations, or keep the transaction short and set lock_timeout",
        )

    def vacuum(self, body: dict[str, Any]) -> None:
        options = {o.get("DefElem", {}).get("defname") for o in body.get("options") or []}
        if "full" in options:
            self.hazard(
                "vacuum-full",
                "VACUUM FULL rewrites the table under an ACCESS EXCLUSIVE lock; use pg_repack or plain VACUUM",
            )

    def cluster(self, _body: dict[str, Any]) -> None:
        self.hazard(
            "cluster",
            "CLUSTER rewrites the table under an ACCESS EXCLUSIVE lock; use pg_repack, or run it in a maintenance "
            "window",
        )

    def reindex(self, body: dict[str, Any]) -> None:
        params = {p.get("DefElem", {}).get("defname") for p in body.get("params") or []}
        if "concurrently" in params:
            self.concurrently("REINDEX")
        else:
            self.hazard(
                "reindex-concurrently",
                "REINDEX blocks writes to the table while it runs; use REINDEX CONCURRENTLY (PostgreSQL 12+)",
            )

    def alter_domain(self, body: dict[str, Any]) -> None:
        if body.get("subtype") == "C" and not (body.get("def", {}).get("Constraint", {}).get("skip_validation")):
            self.hazard(
                "check-not-valid",
                f"a domain constraint on {_dotted(body.get('typeName'))} checks every column of that type; add it "
                "NOT VALID, then VALIDATE it",
            )
        elif body.get("subtype") == "O":
            self.breaking("set-not-null", f"sets NOT NULL on domain {_dotted(body.get('typeName'))}")

    def do(self, body: dict[str, Any]) -> None:
        code, language = "", "plpgsql"
        for arg in body.get("args") or []:
            elem = arg.get("DefElem", {})
            value = elem.get("arg", {}).get("String", {}).get("sval", "")
            if elem.get("defname") == "as":
                code = value
            elif elem.get("defname") == "language":
                language = value
        reason = "" if language == "plpgsql" else f"language {language}"
        inner: list[tuple[int, str]] = []
        if not reason:
            reason = _plpgsql_statements(code, inner)
        if reason:
            self.add(
                "opaque-do-block",
                WARNING,
                f"the DO block's effect cannot be read ({reason}); it counts as BREAKING until a person checks it",
                True,
            )
            return
        outer, offset = self.current, self.line_offset
        for lineno, query in inner:
            try:
                statements = parse_statements(query, self.path)
            except MigrationError as exc:
                self.current = outer
                self.add(
                    "opaque-do-block",
                    WARNING,
                    f"a statement of the DO block does not parse ({exc.message}); it counts as BREAKING",
                    True,
                )
                continue
            for statement in statements:
                self.current = statement._replace(line=outer.line, sql=statement.sql)
                self.line_offset = offset + max(lineno - 1, 0)
                self.statement(statement.kind, statement.body)
        self.current, self.line_offset = outer, offset


def _object_name(node: Any) -> str:
    if isinstance(node, dict):
        if "List" in node:
            return _dotted(node["List"].get("items"))
        if "ObjectWithArgs" in node:
            return _dotted(node["ObjectWithArgs"].get("objname"))
        if "String" in node:
            return str(node["String"].get("sval", ""))
        if "TypeName" in node:
            return _dotted(node["TypeName"].get("names"))
    if isinstance(node, list):
        return _dotted(node)
    return ""


def _created_names(kind: str, body: dict[str, Any]) -> list[str]:
    """Names a statement creates, as a later DROP in the same file would spell them."""
    if kind in ("CreateStmt", "CreateForeignTableStmt"):
        relation = body.get("relation") or body.get("base", {}).get("relation")
        return [_relname(relation), _qualified(relation)]
    if kind == "CreateTableAsStmt":
        relation = body.get("into", {}).get("IntoClause", {}).get("rel")
        return [_relname(relation), _qualified(relation)]
    if kind == "ViewStmt":
        if body.get("replace"):
            return []  # CREATE OR REPLACE VIEW may replace an existing view: it is not new
        return [_relname(body.get("view")), _qualified(body.get("view"))]
    if kind == "IndexStmt" and body.get("idxname"):
        schema = body.get("relation", {}).get("schemaname")
        return [body["idxname"]] + ([f"{schema}.{body['idxname']}"] if schema else [])
    if kind == "CreateFunctionStmt":
        return [_dotted(body.get("funcname"))]
    if kind == "CreateTrigStmt":
        return [
            f"{_relname(body.get('relation'))}.{body.get('trigname')}",
            f"{_qualified(body.get('relation'))}.{body.get('trigname')}",
        ]
    if kind == "CreatePolicyStmt":
        return [f"{_relname(body.get('table'))}.{body.get('policy_name')}"]
    if kind == "RuleStmt":
        return [f"{_relname(body.get('relation'))}.{body.get('rulename')}"]
    if kind in ("CreateEnumStmt", "CompositeTypeStmt", "CreateRangeStmt", "CreateDomainStmt"):
        names = body.get("typeName") or body.get("domainname") or body.get("typevar")
        if isinstance(names, dict):  # CompositeTypeStmt's RangeVar
            return [_relname(names), _qualified(names)]
        return [_dotted(names)]
    if kind == "CreateSeqStmt":
        return [_relname(body.get("sequence")), _qualified(body.get("sequence"))]
    if kind == "CreateSchemaStmt":
        return [str(body.get("schemaname", ""))]
    return []


def _const_string(node: Any) -> str | None:
    """The text of a string constant (also cast: 'x'::text), else None."""
    if not isinstance(node, dict):
        return None
    if "TypeCast" in node:
        return _const_string(node["TypeCast"].get("arg"))
    value = node.get("A_Const", {}).get("sval")
    return value.get("sval") if isinstance(value, dict) else None


def _has_password(conninfo: str) -> bool:
    """Whether a libpq connection string or URI carries a password."""
    return bool(re.search(r"(?i)(?:^|\s)password\s*=|://[^/@\s:]*:[^/@\s]+@", conninfo))


def _default_volatility(expr: Any) -> tuple[str, list[str]]:
    """('volatile', [name]) when the default expression calls a known volatile function, ('unknown', names)
    when it calls functions that are not known immutable or stable built-ins (each name as written, schema
    included when the SQL names one), else ('', []).

    Offline only: a function of the application (or an extension's) is 'unknown'. Where a database is at
    hand, module_utils/_volatility.py settles those names from pg_proc.provolatile (the finding's
    ``functions``).
    """
    if not expr:
        return "", []
    unknown: list[str] = []
    for node in _walk(expr):
        call = node.get("FuncCall")
        if not isinstance(call, dict):
            continue
        parts = [str(i.get("String", {}).get("sval", "")) for i in call.get("funcname") or () if isinstance(i, dict)]
        name = parts[-1] if parts else ""
        if name in _VOLATILE:
            return "volatile", [".".join(parts)]
        if name not in _NON_VOLATILE or parts[:-1] not in ([], ["pg_catalog"]):
            unknown.append(".".join(parts))
    return ("unknown", list(dict.fromkeys(unknown))) if unknown else ("", [])


_BODY_QUOTE = "$tme_do_body$"


def _plpgsql_statements(code: str, out: list[tuple[int, str]]) -> str:
    """Collect the SQL statements a PL/pgSQL block runs as (line, text); return why it can't, or ''."""
    if _BODY_QUOTE in code:
        return "it contains the wrapper's quote"
    source = f"CREATE FUNCTION tme_do_block() RETURNS void LANGUAGE plpgsql AS {_BODY_QUOTE}{code}{_BODY_QUOTE}"
    try:
        tree = json.loads(_pg.parse_plpgsql_json(source))
    except _pg.ParseError as exc:
        return f"PL/pgSQL does not parse: {exc.args[0]}"
    for node in _walk(tree):
        for key, value in node.items():
            if key in ("PLpgSQL_stmt_dynexecute", "PLpgSQL_stmt_dynfors"):
                literal = _string_literal(value.get("query", {}).get("PLpgSQL_expr", {}).get("query", ""))
                if literal is None:
                    return "EXECUTE of SQL built at run time"
                out.append((int(value.get("lineno", 1)), literal))
            elif key == "PLpgSQL_stmt_execsql":
                out.append((int(value.get("lineno", 1)), value["sqlstmt"]["PLpgSQL_expr"]["query"]))
            elif key == "PLpgSQL_stmt_perform":
                out.append((int(value.get("lineno", 1)), value["expr"]["PLpgSQL_expr"]["query"]))
            elif isinstance(value, dict) and key not in ("PLpgSQL_stmt_dynfors", "PLpgSQL_stmt_open"):
                # Expressions (IF conditions, assignments): read for the calls every statement is checked for.
                for slot in ("expr", "cond"):
                    expr = value[slot].get("PLpgSQL_expr", {}) if isinstance(value.get(slot), dict) else {}
                    query = str(expr.get("query", ""))
                    if query and _CALLS.search(query.lower()):
                        if expr.get("parseMode") == 3:  # an assignment: "x := expression"
                            query = query.split(":=", 1)[-1]
                        out.append((int(value.get("lineno", 1)), "SELECT " + query))
            elif key == "PLpgSQL_stmt_open" and value.get("dynquery"):
                return "OPEN ... FOR EXECUTE"
    out.sort()
    return ""


def _string_literal(expr: str) -> str | None:
    """The text of an expression that is one string literal, else None."""
    try:
        tree = json.loads(_pg.parse_sql_json("SELECT " + expr))["stmts"]
    except _pg.ParseError:
        return None
    if len(tree) != 1:
        return None
    targets = tree[0]["stmt"].get("SelectStmt", {}).get("targetList") or []
    if len(targets) != 1:
        return None
    value = targets[0].get("ResTarget", {}).get("val", {}).get("A_Const", {}).get("sval", {})
    return value.get("sval") if isinstance(value, dict) and "sval" in value else None


_HANDLERS: dict[str, Callable[[_Classifier, dict[str, Any]], None]] = {
    "TransactionStmt": _Classifier.transaction,
    "IndexStmt": _Classifier.index,
    "DropStmt": _Classifier.drop,
    "RenameStmt": _Classifier.rename,
    "AlterEnumStmt": _Classifier.alter_enum,
    "AlterObjectSchemaStmt": _Classifier.set_schema,
    "TruncateStmt": _Classifier.truncate,
    "AlterTableStmt": _Classifier.alter_table,
    "LockStmt": _Classifier.lock,
    "VacuumStmt": _Classifier.vacuum,
    "ClusterStmt": _Classifier.cluster,
    "ReindexStmt": _Classifier.reindex,
    "AlterDomainStmt": _Classifier.alter_domain,
    "DoStmt": _Classifier.do,
    "VariableSetStmt": _Classifier.variable_set,
    "CopyStmt": _Classifier.copy,
    "CreateRoleStmt": _Classifier.role,
    "AlterRoleStmt": _Classifier.role,
    "CreateUserMappingStmt": _Classifier.foreign_options,
    "AlterUserMappingStmt": _Classifier.foreign_options,
    "CreateForeignServerStmt": _Classifier.foreign_options,
    "AlterForeignServerStmt": _Classifier.foreign_options,
    "AlterOwnerStmt": _Classifier.cluster_object,
}


def classify_statements(statements: list[Parsed], path: str, transactional: bool = True) -> Analysis:
    """Findings and class of one script's statements (transaction control included, in file order)."""
    return _Classifier(path, transactional).run(statements)


def classify_sql(text: str, path: str = "<sql>") -> Analysis:
    """Findings and class of a piece of SQL text."""
    statements = parse_statements(text, path)
    return classify_statements(statements, path, all(is_transactional(s.kind, s.body) for s in statements))


def review(
    forward: list[Parsed],
    path: str,
    transactional: bool,
    declared: str | None,
    rollback: list[Parsed] | None,
    rollback_path: str,
    rollback_error: str | None = None,
) -> tuple[str, str | None, list[Finding]]:
    """Class of the forward script, class of the rollback, and every finding of the migration.

    Adds the checks that need the whole migration: the declared ``-- Type:`` against the detected
    class, and a rollback that must exist and parse.
    """
    analysis = classify_statements(forward, path, transactional)
    findings = analysis.findings
    detected = analysis.classification
    first = forward[0] if forward else Parsed("", {}, 1, "", 0, 0)
    if declared == SAFE and detected == BREAKING:
        causes = [f for f in findings if f.breaking]
        reasons = "; ".join(f"line {f.line}: {f.rule}" for f in causes)
        findings.append(
            Finding(
                "declared-safe-but-breaking",
                ERROR,
                path,
                causes[0].line,
                causes[0].statement,
                f"declared '-- Type: SAFE' but the SQL is BREAKING ({reasons}); fix the SQL or declare BREAKING",
            )
        )
    elif declared == BREAKING and detected == SAFE:
        findings.append(
            Finding(
                "declared-breaking-but-safe",
                INFO,
                path,
                first.line,
                _label(first.sql),
                "declared BREAKING though the SQL reads as SAFE; it is treated as BREAKING, as declared",
            )
        )
    rollback_class: str | None = None
    if rollback_error:
        findings.append(Finding("rollback-syntax", ERROR, rollback_path, first.line, "", rollback_error))
    elif rollback is None:
        findings.append(
            Finding(
                "missing-rollback",
                ERROR,
                path,
                first.line,
                _label(first.sql),
                "no rollback SQL: add a commented '-- ROLLBACK' block, as in the guide's template, or a "
                "rollback file beside the migration",
            )
        )
    else:
        transactional_rollback = all(is_transactional(s.kind, s.body) for s in rollback)
        rollback_analysis = classify_statements(rollback, rollback_path, transactional_rollback)
        rollback_class = rollback_analysis.classification
        # A rollback runs like a migration (and in the rehearsal): what no migration may do, it may not either.
        findings.extend(f for f in rollback_analysis.findings if f.rule in ROLLBACK_RULES)
    return detected, rollback_class, findings
