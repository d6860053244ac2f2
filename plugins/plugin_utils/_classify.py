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
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from ansible_collections.tme.migrations.plugins.module_utils._model import BREAKING, SAFE, MigrationError
from ansible_collections.tme.migrations.plugins.plugin_utils._sqlparse import (
    HAS_PGLAST,
    Parsed,
    is_transactional,
    parse_statements,
)

if HAS_PGLAST:
    import pglast.parser as _pg

ERROR = "error"  # the migration must not run as written (lint fails)
WARNING = "warning"  # a lock hazard or something the analysis cannot see into
INFO = "info"  # why a migration is BREAKING, and other notes

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
    "statement_timestamp",
}
_SERIAL = {"serial", "serial2", "serial4", "serial8", "smallserial", "bigserial"}
_NO_REWRITE_TYPES = {"text", "varchar", "citext"}  # widening to these keeps the rows as they are

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

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": self.severity,
            "path": self.path,
            "line": self.line,
            "statement": self.statement,
            "message": self.message,
            "breaking": self.breaking,
        }

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


def _relname(relation: dict[str, Any] | None) -> str:
    return str((relation or {}).get("relname", ""))


def _qualified(relation: dict[str, Any] | None) -> str:
    relation = relation or {}
    schema = relation.get("schemaname")
    return f"{schema}.{relation.get('relname', '')}" if schema else str(relation.get("relname", ""))


def _label(sql: str) -> str:
    text = " ".join(sql.split())
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
    def add(self, rule: str, severity: str, message: str, breaking: bool = False) -> None:
        self.analysis.findings.append(
            Finding(
                rule,
                severity,
                self.path,
                self.current.line + self.line_offset,
                _label(self.current.sql),
                message,
                breaking,
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
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(self, body)
        elif kind not in _SAFE_KINDS:
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
        volatile = _volatile_call(default.get("raw_expr") if default else None)
        if volatile or type_name in _SERIAL or "CONSTR_IDENTITY" in kinds:
            why = f"default {volatile}()" if volatile else "a generated sequence value"
            self.hazard(
                "add-column-volatile-default",
                f"adds column {name} with {why}: every row is rewritten under an ACCESS EXCLUSIVE lock; add the "
                "column without a default, set the default, then backfill in batches",
            )
        if "CONSTR_GENERATED" in kinds:
            self.hazard(
                "add-column-volatile-default",
                f"adds stored generated column {name}: every row is rewritten under an ACCESS EXCLUSIVE lock",
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


def _volatile_call(expr: Any) -> str:
    """The name of a volatile function the default expression calls, or ''."""
    if not expr:
        return ""
    for node in _walk(expr):
        call = node.get("FuncCall")
        if call:
            name = _name(call.get("funcname"))
            if name in _VOLATILE:
                return name
    return ""


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
        rollback_class = classify_statements(rollback, rollback_path, transactional_rollback).classification
    return detected, rollback_class, findings
