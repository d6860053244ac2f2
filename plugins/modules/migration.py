#!/usr/bin/python
# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: migration
short_description: Apply or roll back numbered SQL migrations on a PostgreSQL database
version_added: 0.1.0
description:
  - Applies pending migrations of a directory (or one migration) in version order, each in its own
    transaction together with its row in the tracking table, over one connection; or rolls back one
    version or the last N, newest first.
  - Migration files are the team guide's template (header comments, C(BEGIN)/C(COMMIT), the file's own
    C(INSERT INTO schema_migrations), a commented C(-- ROLLBACK) block), optionally with the rollback in
    C(NNN_name.rollback.sql) beside it; golang-migrate (C(.up.sql)/C(.down.sql)) and Diesel
    (C(NNN_name/up.sql), C(down.sql)) layouts are read too. The files are read on the controller.
  - The tracking table is created when missing; an existing one (created by hand as the guide shows) is
    adopted by adding nullable columns, its rows kept.
  - Statements that cannot run in a transaction (C(CREATE INDEX CONCURRENTLY), C(VACUUM), ...) run outside
    one; the migration's progress is recorded so an interruption is visible (M(tme.migrations.migration_info))
    and the next run resumes, dropping and rebuilding an invalid index left by an interrupted build.
  - One runner per database at a time (an advisory lock). Each migration runs under O(lock_timeout) and
    is retried on lock conflicts; when it gives up, the error names the blocking session.
  - By default a migration waits at most 100 ms for a lock, then rolls back, sleeps and tries again
    (0.1 s doubling up to 5 s between attempts, 20 retries, about 78 seconds in all). The application's
    queries queued behind its waiting C(ALTER TABLE) wait at most about 100 ms, and the migration still
    gets its lock once the blocking session leaves. A C(CONCURRENTLY) statement, whose wait blocks no
    application query, waits that whole time in one attempt instead.
  - Each migration starts from a clean session and cannot turn the engine's timeouts off. What it sets
    for the session (C(SET ROLE), C(SET SESSION AUTHORIZATION), C(SET search_path), other settings,
    temporary tables, session advisory locks) holds until its end, then is reset (C(RESET ALL) and the
    like) before its tracking row is written by the login role. C(lock_timeout) and C(statement_timeout)
    are set again after each of its statements, so its own C(SET lock_timeout = 0) or C(RESET ALL) does
    not reach its next statement.
  - A pending migration with an error finding of the session, server-file, role, password or cluster-wide
    rules (see M(tme.migrations.migration_lint)) that its file's C(-- Allow) header does not accept
    is refused before anything runs, in check mode too; the message names the file, line and rule, and
    nothing of the run is applied.
  - A column default calling a function the controller cannot classify offline is settled from
    C(pg_proc.provolatile) when the run plans. An immutable or stable function lets the migration be SAFE
    (see C(settled) in R(applied,return-applied)); a volatile one keeps it BREAKING.
  - The checksum covers the SQL's tokens, not its comments or whitespace. Editing the header
    (the C(-- Tested on) or C(-- Description) lines) is not drift, any change to a statement is. Checksums
    recorded by the earlier scheme (the whole forward text) still verify; C(playbooks/setup-tracking.yml)
    moves them to the current one.
  - A migration whose applied checksum differs from its file (drift) is refused unless O(accept_drift) names it
    (recorded, audited) or O(allow_drift=true) (this run only).
  - With O(reference), the promotion gate refuses any migration the reference database (staging) has not
    applied with the same checksum, and applies nothing. In check mode a migration the reference has not applied
    yet is a warning instead (a dry run of the whole workflow simulated the reference's apply too); another
    checksum there is still refused.
author:
  - TME Portal ops team (@tme-portal)
extends_documentation_fragment:
  - tme.migrations.connection
  - tme.migrations.connection.tracking
  - tme.migrations.connection.reference
  - tme.migrations.connection.internal
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  check_mode:
    support: full
    details: Lists what would be applied or rolled back; nothing is written, not even the tracking table.
  diff_mode:
    support: full
    details: The applied versions before and after.
  platform:
    platforms: posix
  action:
    support: full
    details: The migration files are read and parsed on the controller.
  async:
    support: none
  bypass_host_loop:
    support: none
options:
  path:
    description:
      - A directory of migration files, or one migration file, on the controller. Relative paths are
        looked up like other files (the role's C(files/), then the playbook's directory).
      - Required with O(state=applied). With O(state=rolled_back), the files provide the rollback SQL;
        without them the copy stored at apply time is used.
    type: path
  state:
    description:
      - V(applied) applies pending migrations (all, or only O(version)).
      - V(rolled_back) rolls back O(version), or the last O(steps) applied migrations, newest first.
      - V(tracked) only creates the tracking tables, or adopts an existing C(schema_migrations) made by hand
        as the guide shows (the guide's one-time setup). With O(path), every row applied by hand (no checksum)
        whose file exists is adopted, the file's checksum recorded with C(adopted_at) and C(adopted_by) and
        an audit row (action C(adopt)), so the promotion gate accepts it; rows of the earlier checksum scheme get
        the current one (RV(rechecksummed)); rows that no file accounts for are reported in RV(unmatched) and
        as warnings, never adopted.
    type: str
    choices: [applied, rolled_back, tracked]
    default: applied
  version:
    description:
      - One migration, by version (the file name stem, for example C(016_add_feature_x)).
      - With O(state=applied), it is refused while earlier migrations are pending.
      - With O(state=rolled_back), nothing happens when it is not applied.
    type: str
  steps:
    description:
      - With O(state=rolled_back) and no O(version), how many of the newest applied migrations to roll back.
    type: int
    default: 1
  only_safe:
    description:
      - Apply pending migrations only up to the first one that is not SAFE, and report that one and every
        later one in RV(waiting). Order is never skipped.
      - A migration is SAFE when its SQL reads as SAFE (the parse-tree analysis of M(tme.migrations.migration_lint))
        and its C(-- Type:) header does not declare it BREAKING.
    type: bool
    default: false
  up_to:
    description:
      - With O(state=applied), apply pending migrations up to and including this version only (a release's
        last migration); later ones stay pending and are reported in RV(beyond).
    type: str
    version_added: 0.2.0
  allow_drift:
    description:
      - Proceed although applied migration files were edited since (their checksum differs); each drifted
        file is still reported in RV(drifted) and as a warning.
    type: bool
    default: false
  accept_drift:
    description:
      - Versions whose applied file was edited afterwards (drift) and whose current file is accepted as what
        the database has, after review. The file's checksum is recorded with C(drift_accepted_at) and
        C(drift_accepted_by) and an audit row (action C(accept_drift)) naming the old and new checksum; later
        runs and M(tme.migrations.migration_info) then show it as applied, with the acceptance.
      - Only the schema is not changed by this; a version that has not drifted here is a warning.
    type: list
    elements: str
    default: []
    version_added: 0.2.0
  require_rollback:
    description:
      - Refuse migrations without rollback SQL (no C(-- ROLLBACK) block and no rollback file). An empty
        rollback file counts as a deliberate no-op rollback.
    type: bool
    default: true
  lock_timeout:
    description:
      - PostgreSQL C(lock_timeout) of each migration, in milliseconds. A migration that waits longer for a
        lock is rolled back and retried, so that other sessions queued behind it are never stalled longer.
      - Keep it short (GitLab's lock retries start at 100 ms), since every query on the table waits behind the
        migration while it waits for its lock. A migration cannot turn it off for its own statements.
      - Up to version 0.2.0 the default was V(5000), with 3 retries starting 1 second apart.
    type: int
    default: 100
  lock_retries:
    description:
      - How many times a migration (or one step of a migration run in steps) is retried after reaching
        O(lock_timeout). When the last retry times out too, the run fails naming the blocking sessions
        (pid, application, user, state, since when, query).
      - With the defaults the retries take about 78 seconds in all, O(lock_timeout) and sleeps included;
        a C(CONCURRENTLY) statement waits for its lock up to that long in one attempt.
    type: int
    default: 20
  lock_retry_delay:
    description:
      - Seconds to sleep before the first retry; the sleep doubles on each retry, up to 5 seconds (or
        this value when it is longer).
    type: float
    default: 0.1
  statement_timeout:
    description:
      - PostgreSQL C(statement_timeout) of each statement, in milliseconds; V(0) means none.
    type: int
    default: 0
  runner_lock_timeout:
    description:
      - Seconds to wait for another runner on the same database to finish before giving up; the error
        names the other runner's session.
    type: float
    default: 300
  backup:
    description:
      - Path of the verified backup taken before this run (see M(tme.migrations.backup)). It is recorded in the
        C(backup_path) column of every migration this run applies, so each row names the backup that protects it.
    type: str
seealso:
  - module: tme.migrations.backup
  - module: tme.migrations.migration_info
  - module: community.postgresql.postgresql_script
"""

EXAMPLES = r"""
- name: Apply pending migrations to staging
  tme.migrations.migration:
    path: "{{ playbook_dir }}/../database/migrations"
    login_host: 127.0.0.1
    login_user: tme_user
    login_password: "{{ vault_tme_db_password }}"
    login_db: tme_portal_test

- name: Apply SAFE migrations to production, only those staging applied with the same checksum
  tme.migrations.migration:
    path: database/migrations
    login_db: tme_portal
    login_user: tme_user
    login_password: "{{ vault_tme_db_password }}"
    only_safe: true
    reference:
      login_db: tme_portal_test
      login_user: tme_user
      login_password: "{{ vault_tme_db_password }}"
  register: production

- name: Roll back the newest migration of staging
  tme.migrations.migration:
    path: database/migrations
    state: rolled_back
    steps: 1
    login_db: tme_portal_test
"""

RETURN = r"""
applied:
  description: Migrations applied (in check mode, those that would be), in order.
  returned: always
  type: list
  elements: dict
  sample:
    - version: 016_add_feature_x
      path: /srv/app/database/migrations/016_add_feature_x.sql
      classification: SAFE
      transactional: true
      execution_ms: 12
      statements: ["ALTER TABLE users ADD COLUMN IF NOT EXISTS feature_x BOOLEAN DEFAULT false"]
      settled:
        - "line 3: default app.token() is stable in tme_portal: no table rewrite"
        - "SAFE in tme_portal for this run: nothing else makes it BREAKING"
rolled_back:
  description: Migrations rolled back (in check mode, those that would be), newest first, with the SQL run.
  returned: always
  type: list
  elements: dict
  sample:
    - version: 016_add_feature_x
      rollback_source: /srv/app/database/migrations/016_add_feature_x.sql (ROLLBACK block)
      execution_ms: 4
      statements: ["ALTER TABLE users DROP COLUMN IF EXISTS feature_x"]
pending:
  description: Versions that were pending when the run started.
  returned: always
  type: list
  elements: str
waiting:
  description: With O(only_safe), the first migration that is not SAFE and every one after it.
  returned: always
  type: list
  elements: dict
  sample:
    - version: 017_rename_client_fields
      classification: BREAKING
      declared: BREAKING
      path: /srv/app/database/migrations/017_rename_client_fields.sql
      reasons:
        - "line 12: renames column public.clients.name to full_name: code using the old name fails"
      blocked_by: null
beyond:
  description: With O(up_to), the pending migrations after it, left for a later release (version, class, reasons).
  returned: always
  type: list
  elements: dict
drifted:
  description: Applied migrations whose file changed since (checksum in the database, checksum of the file).
  returned: always
  type: list
  elements: dict
drift_accepted:
  description: Drifted migrations accepted with O(accept_drift) (in check mode, those that would be).
  returned: always
  type: list
  elements: dict
adopted:
  description: With O(state=tracked) and O(path), rows applied by hand that were adopted (or would be, in check mode).
  returned: always
  type: list
  elements: dict
  sample:
    - version: 016_add_feature_x
      path: /srv/app/database/migrations/016_add_feature_x.sql
      checksum: 9f2c0e...
      applied_at: "2025-09-15 10:12:03.120511"
rechecksummed:
  description: Rows whose checksum of the earlier scheme (the whole forward text) was replaced by the current one.
  returned: always
  type: list
  elements: dict
unmatched:
  description: Rows of the tracking table that no migration file accounts for; never adopted.
  returned: always
  type: list
  elements: dict
tracking:
  description: V(created) or V(adopted) when the tracking tables were created or completed, else null.
  returned: always
  type: str
database:
  description: Where the run went (database, host and port; never the password).
  returned: success
  type: str
  sample: database tme_portal on 127.0.0.1:5432
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.tme.migrations.plugins.module_utils._module import common_argument_spec, run_migration


def main() -> None:
    argument_spec = common_argument_spec()
    argument_spec.update(
        state=dict(type="str", default="applied", choices=["applied", "rolled_back", "tracked"]),
        version=dict(type="str"),
        steps=dict(type="int", default=1),
        only_safe=dict(type="bool", default=False),
        up_to=dict(type="str"),
        allow_drift=dict(type="bool", default=False),
        accept_drift=dict(type="list", elements="str", default=[]),
        lock_timeout=dict(type="int", default=100),
        lock_retries=dict(type="int", default=20),
        lock_retry_delay=dict(type="float", default=0.1),
        statement_timeout=dict(type="int", default=0),
        runner_lock_timeout=dict(type="float", default=300),
        backup=dict(type="str"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_migration(module)


if __name__ == "__main__":
    main()
