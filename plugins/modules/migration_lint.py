#!/usr/bin/python
# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: migration_lint
short_description: Classify migrations as SAFE or BREAKING and find lock hazards, offline
version_added: 0.1.0
description:
  - Reads a directory of migration files (or one file) on the controller and analyses every statement from
    PostgreSQL's own parse tree (pglast); text in comments and string literals never counts.
  - Each migration gets a class. V(SAFE) is backward compatible (new tables, nullable columns or columns with a
    default, indexes, enum values, backfills, grants, comments). V(BREAKING) must ship with a code release
    (drops, renames, column type changes, C(NOT NULL) without a default, C(SET NOT NULL), C(SET SCHEMA),
    C(TRUNCATE), detaching a partition), and so does anything the analysis cannot see into (dynamic SQL in a
    C(DO) block, an unknown statement).
  - Lock hazards are reported whatever the class, each with the safer way to the same schema; transaction
    hygiene errors name what PostgreSQL or psql would refuse.
  - The declared C(-- Type:) header is checked. Declared SAFE but detected BREAKING is an error; without a
    declaration the detected class counts; declared BREAKING stays BREAKING.
  - The rollback must exist and parse; its class is reported too.
  - Needs no database and changes nothing; it runs on the controller only.
author:
  - TME Portal ops team (@tme-portal)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  check_mode:
    support: full
    details: Read-only, so it runs the same in check mode.
  diff_mode:
    support: N/A
    details: Nothing changes.
  platform:
    platforms: posix
  action:
    support: full
    details: Runs entirely on the controller.
  async:
    support: none
  bypass_host_loop:
    support: none
options:
  path:
    description:
      - A directory of migration files, or one migration file, on the controller.
      - Layouts are the ones M(tme.migrations.migration) reads, the guide's template (inline C(-- ROLLBACK) block or a
        C(NNN.rollback.sql) beside it), golang-migrate C(.up.sql)/C(.down.sql), Diesel directories.
    type: path
    required: true
  tracking_table:
    description:
      - The tracking table the files insert into themselves; those statements are not the migration's change.
    type: str
    default: schema_migrations
  fail_on:
    description:
      - V(error) fails the task when any finding is an error (declared SAFE but BREAKING, a rollback that is
        missing or does not parse, a file that does not parse, transaction hygiene, the engine's timeouts
        changed, the server's files or programs, privileged roles, password literals, cluster-wide
        statements).
      - V(warning) also fails on lock hazards and on statements the analysis cannot see into.
      - V(never) only reports; use the returned O(fail_on) counts in a later task.
    type: str
    choices: [error, warning, never]
    default: error
  ignore_rules:
    description:
      - Rule names (see RV(migrations[].findings[].rule)) to leave out of the report.
      - This affects the lint only. M(tme.migrations.migration) and M(tme.migrations.migration_rehearsal) still
        refuse a migration with an unaccepted error finding; only its file's C(-- Allow) header accepts one.
    type: list
    elements: str
    default: []
notes:
  - Rules that make a migration BREAKING, severity C(info) - V(drop-table), V(drop-column), V(drop-view),
    V(drop-type), V(drop-function), V(drop-schema), V(drop-sequence), V(drop-object), V(rename-table),
    V(rename-column), V(rename-view), V(rename-type), V(rename-schema), V(rename-function), V(rename-sequence),
    V(rename-enum-value), V(change-column-type), V(add-column-not-null), V(set-not-null), V(set-schema),
    V(truncate), V(detach-partition).
  - Lock hazards, severity C(warning) - V(require-concurrent-index), V(drop-index-concurrently),
    V(add-column-volatile-default), V(column-type-rewrite), V(set-not-null-scan), V(foreign-key-not-valid),
    V(check-not-valid), V(constraint-builds-index), V(vacuum-full), V(cluster), V(lock-table),
    V(reindex-concurrently), V(table-rewrite).
  - Also severity C(warning), and BREAKING - V(opaque-do-block), V(unknown-statement),
    V(add-column-volatile-default) (an C(ADD COLUMN) that rewrites every row under an ACCESS EXCLUSIVE lock -
    a volatile default such as C(random()), C(clock_timestamp()), C(gen_random_uuid()), C(nextval()), a serial,
    identity or stored generated column), V(add-column-unknown-default) (a default calling a function that is
    not a known immutable or stable built-in, such as the application's own; its volatility cannot be told
    offline; the finding lists them in C(functions), and in C(defined_here) those the same migration creates).
    C(now()), C(CURRENT_DATE), constants and casts of constants stay SAFE. M(tme.migrations.migration) reads
    such a function's volatility from C(pg_proc) when it plans; when immutable or stable, the finding becomes
    the info V(add-column-stable-default) there.
  - Session changes the engine resets after each migration, severity C(warning) - V(set-role) (C(SET ROLE),
    C(SET SESSION AUTHORIZATION), their C(RESET)), V(set-search-path) (C(SET [LOCAL] search_path),
    C(set_config('search_path', ...))).
  - Errors - V(declared-safe-but-breaking), V(missing-rollback), V(rollback-syntax), V(invalid-migration),
    V(invalid-layout), V(concurrently-in-transaction), V(enum-value-used-in-same-transaction),
    V(begin-without-commit).
  - Errors a migration may accept deliberately (see the C(-- Allow:) header below) - V(override-timeout)
    (C(SET)/C(RESET)/C(set_config) of C(lock_timeout), C(statement_timeout),
    C(idle_in_transaction_session_timeout), C(RESET ALL); use the module's
    O(tme.migrations.migration#module:lock_timeout) and O(tme.migrations.migration#module:statement_timeout)
    instead), V(copy-program) (C(COPY ... PROGRAM)),
    V(copy-server-file) (C(COPY) to or from a file of the database server; use C(COPY FROM STDIN) outside
    migrations), V(server-file-access) (C(lo_import), C(lo_export), C(pg_read_file), C(pg_read_binary_file),
    C(pg_ls_dir), C(pg_stat_file), ...), V(role-privileged-attribute) (C(SUPERUSER), C(CREATEROLE),
    C(BYPASSRLS), C(REPLICATION)), V(password-literal) (a role's C(PASSWORD '...'), a user mapping's or
    server's C(password) option, a C(dblink) connection string with a password; secrets do not belong in
    migration files), V(cluster-wide) (C(ALTER SYSTEM), C(CREATE/ALTER/DROP ROLE|USER|GROUP), C(GRANT)/C(REVOKE)
    of role membership, C(CREATE/ALTER/DROP DATABASE), tablespaces; they affect every database of the server,
    production included, and the rollback rehearsal would run them on the real server). Rollbacks are
    checked for these too.
  - "A header line C(-- Allow: cluster-wide, password-literal) among the file's leading comments accepts those
    rules for that migration; the findings stay in the report with severity C(info) and C(accepted=true), and no
    longer fail the lint. Adding the header to an applied migration is no drift (comments do not count).
    O(ignore_rules) drops rules from the whole report instead, but not from what the apply refuses."
  - Password literals are never shown - findings, RV(summary_lines) and the statements and messages other
    modules of the collection return carry C('***') in their place; the SQL itself runs as written.
  - Notes, severity C(info), shown in the summary - V(same-number) (files sharing a date number, the
    guide's C(YYYYMMDD_name.sql) of one day, run in name order; a shared sequence number is an error),
    V(declared-breaking-but-safe).
  - Objects created by the same migration are new; changing them blocks nobody and breaks nothing.
seealso:
  - module: tme.migrations.migration
"""

EXAMPLES = r"""
- name: Lint every migration (fails on errors)
  tme.migrations.migration_lint:
    path: database/migrations

- name: Report only, then decide
  tme.migrations.migration_lint:
    path: database/migrations
    fail_on: never
  register: lint

- name: Refuse an unattended run when a BREAKING migration is pending
  ansible.builtin.assert:
    that: lint.summary.breaking == 0
    fail_msg: >-
      BREAKING migrations wait for a release:
      {{ lint.migrations | selectattr('classification', '==', 'BREAKING') | map(attribute='version') | join(', ') }}
"""

RETURN = r"""
path:
  description: The absolute path that was read.
  returned: always
  type: str
migrations:
  description: One entry per migration, in version order.
  returned: always
  type: list
  elements: dict
  contains:
    version:
      description: The migration's version (its file name stem).
      type: str
    path:
      description: The forward file.
      type: str
    classification:
      description: V(SAFE) or V(BREAKING) as it counts for gating; null when the file could not be read.
      type: str
    declared:
      description: The class its C(-- Type:) header declares, or null.
      type: str
    detected:
      description: The class read from the SQL.
      type: str
    rollback_classification:
      description: The class of the rollback SQL (usually V(BREAKING), since it drops what the migration added).
      type: str
    transactional:
      description: Whether the migration runs in one transaction (false with C(CREATE INDEX CONCURRENTLY)).
      type: bool
    findings:
      description: What the analysis found.
      type: list
      elements: dict
      contains:
        rule:
          description: The rule's name, see the notes.
          type: str
        severity:
          description: V(error), V(warning) or V(info).
          type: str
        path:
          description: The file.
          type: str
        line:
          description: The statement's first line in that file.
          type: int
        statement:
          description: The statement, on one line, shortened to 160 characters, password literals shown as
            C('***').
          type: str
        message:
          description: What is wrong and, for hazards, the safer alternative.
          type: str
        breaking:
          description: Whether this finding makes the migration BREAKING.
          type: bool
        accepted:
          description: Present and true when the file's C(-- Allow:) header accepts the finding (then its
            severity is V(info)).
          type: bool
  sample:
    - version: 017_rename_client_fields
      path: /srv/app/database/migrations/017_rename_client_fields.sql
      classification: BREAKING
      declared: BREAKING
      detected: BREAKING
      rollback_classification: BREAKING
      transactional: true
      findings:
        - rule: rename-column
          severity: info
          path: /srv/app/database/migrations/017_rename_client_fields.sql
          line: 9
          statement: ALTER TABLE clients RENAME COLUMN company_name TO legal_name
          message: "renames column clients.company_name to legal_name: code using the old name fails"
          breaking: true
summary:
  description: Counts over all migrations.
  returned: always
  type: dict
  sample: {migrations: 15, safe: 14, breaking: 1, unreadable: 0, errors: 0, warnings: 1, infos: 1}
summary_lines:
  description: A readable report, one line per migration and one per finding that is not an info.
  returned: always
  type: list
  elements: str
"""
