#!/usr/bin/python
# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: migration_rehearsal
short_description: Prove that pending migrations roll back cleanly, on a scratch copy of a database's schema
version_added: 0.1.0
description:
  - The guide's verification step. Creates a scratch database on the same server, copies the schema of the
    database it connects to (staging) into it with C(pg_dump --schema-only) and C(pg_restore), and for each
    migration pending there, in order - takes a catalog snapshot, applies the migration, applies its rollback,
    compares with the snapshot, applies the migration again and compares with the first result.
  - The snapshot covers schemas, extensions, tables, columns (type, NOT NULL, default, identity, generated),
    constraints, indexes, views and materialized views, sequences, functions, triggers, enums, domains,
    composite types and policies. Every difference is named. Column order is not compared.
  - A rollback that fails, or does not restore the schema, fails the task. The scratch database is always
    dropped, also on failure. The database it connects to is only read; nothing is recorded anywhere.
  - A migration with an error finding that its file's C(-- Allow) header does not accept (a cluster-wide
    statement such as C(ALTER SYSTEM) or C(CREATE ROLE) would change the real server the scratch database
    shares) is refused before the scratch database is made, naming the file, line and rule.
author:
  - TME Portal ops team (@tme-portal)
extends_documentation_fragment:
  - tme.migrations.connection
  - tme.migrations.connection.tracking
  - tme.migrations.connection.internal
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  check_mode:
    support: full
    details: Runs the same in check mode; the only thing it writes is the scratch database, which it drops.
  diff_mode:
    support: N/A
    details: Nothing changes.
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
      - A directory of migration files, or one migration file, on the controller.
    type: path
    required: true
  versions:
    description:
      - Rehearse only these pending versions. By default every migration pending on the database.
    type: list
    elements: str
    default: []
  up_to:
    description:
      - Rehearse the pending migrations up to and including this version only (a release's last migration).
    type: str
    version_added: 0.2.0
  from_empty:
    description:
      - Start from an empty scratch database and rehearse every migration of O(path), the whole history,
        instead of the pending ones on a copy of the schema. Needs no C(pg_dump).
    type: bool
    default: false
  scratch_prefix:
    description:
      - Name prefix of the scratch database; the process id and a random suffix follow.
    type: str
    default: tme_rehearsal
  pg_bin_dir:
    description:
      - Directory of C(pg_dump) and C(pg_restore), on the host the module runs on. They must be at least the
        server's version. By default they are looked up in E(PATH).
    type: path
  require_rollback:
    description:
      - Not used; a migration without rollback SQL fails its rehearsal.
    type: bool
    default: false
notes:
  - The login role needs C(CREATEDB). The password reaches C(pg_dump) and C(pg_restore) through their
    environment, never their command line.
seealso:
  - module: tme.migrations.migration
  - module: tme.migrations.migration_lint
"""

EXAMPLES = r"""
- name: Verify the rollbacks of what is pending on staging
  tme.migrations.migration_rehearsal:
    path: database/migrations
    login_host: 127.0.0.1
    login_user: tme_user
    login_password: "{{ tme_db_password }}"
    login_db: tme_portal_test

- name: Rehearse the whole history from an empty database
  tme.migrations.migration_rehearsal:
    path: database/migrations
    from_empty: true
    login_db: tme_portal_test
"""

RETURN = r"""
rehearsed:
  description: One entry per migration rehearsed, in order.
  returned: always
  type: list
  elements: dict
  contains:
    version:
      description: The migration.
      type: str
    passed:
      description: Whether forward, rollback and forward again ran and the schema matched each time.
      type: bool
    failed_step:
      description: V(forward), V(rollback), V(forward again) or V(compare); null when it passed.
      type: str
    error:
      description: What went wrong, with file and line for SQL errors.
      type: str
    differences:
      description: Each object that differs - V(object) (kind and name), V(expected), V(found), V(message).
      type: list
      elements: dict
    timings_ms:
      description: Milliseconds per step.
      type: dict
  sample:
    - version: 016_add_invoice_index
      passed: false
      failed_step: compare
      error: "the rollback does not restore the schema: index public.idx_invoices_due is left over after the rollback"
      differences:
        - object: index public.idx_invoices_due
          expected: null
          found: CREATE INDEX idx_invoices_due ON public.invoices USING btree (due_date)
          message: index public.idx_invoices_due is left over after the rollback (CREATE INDEX ...)
      timings_ms: {forward: 12, rollback: 3, forward again: 9}
passed_versions:
  description: The versions whose rehearsal passed.
  returned: always
  type: list
  elements: str
failed_versions:
  description: The versions whose rehearsal failed.
  returned: always
  type: list
  elements: str
not_rehearsed:
  description: Versions after a failure that left the scratch database unusable.
  returned: always
  type: list
  elements: str
scratch_database:
  description: The scratch database's name (already dropped), or null when nothing was pending.
  returned: always
  type: str
database:
  description: The database whose schema was copied.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.tme.migrations.plugins.module_utils._module import common_argument_spec, run_rehearsal


def main() -> None:
    argument_spec = common_argument_spec()
    argument_spec.pop("reference")
    argument_spec["require_rollback"]["default"] = False
    argument_spec.update(
        versions=dict(type="list", elements="str", default=[]),
        from_empty=dict(type="bool", default=False),
        scratch_prefix=dict(type="str", default="tme_rehearsal"),
        up_to=dict(type="str"),
    )
    argument_spec["path"]["required"] = True
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_rehearsal(module)


if __name__ == "__main__":
    main()
