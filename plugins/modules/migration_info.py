#!/usr/bin/python
# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: migration_info
short_description: Migration status of a PostgreSQL database, optionally against a reference database
version_added: 0.1.0
description:
  - Read-only. Reports every migration known to the files or to the tracking table with its status
    (applied, pending, drifted, missing, unverified, failed, interrupted, in_progress), and with
    O(reference) what this database lacks of the reference (staging).
  - Never writes, so it also runs in check mode; a database without tracking table reports everything pending.
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
    details: Read-only, so it runs the same in check mode.
  diff_mode:
    support: N/A
    details: Nothing changes, so there is nothing to show.
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
      - A directory of migration files, or one file, on the controller. Without it, only the tracking
        table is read (no pending, drifted or missing can be told).
    type: path
  require_rollback:
    description:
      - Refuse to read migrations without rollback SQL, as M(tme.migrations.migration) does by default.
    type: bool
    default: false
seealso:
  - module: tme.migrations.migration
"""

EXAMPLES = r"""
- name: Status of production against staging
  tme.migrations.migration_info:
    path: database/migrations
    login_db: tme_portal
    login_user: tme_user
    login_password: "{{ vault_tme_db_password }}"
    reference:
      login_db: tme_portal_test
      login_user: tme_user
      login_password: "{{ vault_tme_db_password }}"
  register: status

- name: Fail when an applied file was edited
  ansible.builtin.assert:
    that: status.drifted | length == 0
    fail_msg: "edited after being applied: {{ status.drifted | join(', ') }}"
"""

RETURN = r"""
migrations:
  description: One entry per version, ordered by version.
  returned: always
  type: list
  elements: dict
  sample:
    - version: 016_add_feature_x
      status: applied
      path: /srv/app/database/migrations/016_add_feature_x.sql
      checksum: 3f9a...
      declared_type: SAFE
      applied: {applied_at: "2025-09-15 10:00:00", applied_by: tme_user, checksum: 3f9a...}
applied:
  description: Versions applied with the checksum of their file.
  returned: always
  type: list
  elements: str
pending:
  description: Versions with a file but not applied.
  returned: always
  type: list
  elements: str
drifted:
  description: Versions applied with another checksum than their file's now.
  returned: always
  type: list
  elements: str
missing:
  description: Versions applied but without a file among O(path).
  returned: always
  type: list
  elements: str
unverified:
  description: >-
    Versions applied by hand without a checksum and not adopted yet: C(playbooks/setup-tracking.yml)
    (M(tme.migrations.migration) with O(tme.migrations.migration#module:state=tracked) and a path) adopts them.
  returned: always
  type: list
  elements: str
adopted:
  description: Applied versions that were applied by hand and adopted (their status is V(applied) or V(drifted)).
  returned: always
  type: list
  elements: str
drift_accepted:
  description: Applied versions whose edited file was accepted with O(tme.migrations.migration#module:accept_drift).
  returned: always
  type: list
  elements: str
failed:
  description: Versions whose statements outside a transaction failed part way; the next run resumes them.
  returned: always
  type: list
  elements: str
interrupted:
  description: Versions whose run stopped part way (killed, connection lost); the next run resumes them.
  returned: always
  type: list
  elements: str
in_progress:
  description: Versions being applied right now by another runner.
  returned: always
  type: list
  elements: str
tracking_table_exists:
  description: Whether the tracking table exists.
  returned: always
  type: bool
runner_active:
  description: Whether a migration runner holds this database's lock now.
  returned: always
  type: bool
reference:
  description: With O(reference), the comparison.
  returned: when reference is given
  type: dict
  contains:
    lacks:
      description: Versions applied on the reference but not here.
      type: list
      elements: str
    ahead:
      description: Versions applied here but not on the reference.
      type: list
      elements: str
    checksum_mismatch:
      description: Versions applied on both with different checksums.
      type: list
      elements: str
    promotable:
      description: Versions this database lacks whose file matches what the reference applied.
      type: list
      elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.tme.migrations.plugins.module_utils._module import common_argument_spec, run_info


def main() -> None:
    argument_spec = common_argument_spec()
    argument_spec["require_rollback"]["default"] = False
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_info(module)


if __name__ == "__main__":
    main()
