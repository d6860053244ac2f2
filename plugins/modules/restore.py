#!/usr/bin/python
# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: restore
short_description: Restore a PostgreSQL backup into a database in one transaction
version_added: 0.1.0
description:
  - Verifies the backup first (as M(tme.migrations.backup) does), then restores it all or nothing.
  - Gzip-compressed or plain SQL goes through C(psql) with C(ON_ERROR_STOP) and C(--single-transaction), the
    guide's C(zcat backup.sql.gz | psql) made safe; a custom-format dump through
    C(pg_restore --single-transaction --exit-on-error).
  - With O(clean), the same transaction first drops everything the connecting role owns
    (C(DROP OWNED BY CURRENT_USER)), so that objects created after the backup, by a migration for example, do not
    survive the restore. Refused when the role is a superuser.
  - On any error the transaction is rolled back and the database is left exactly as it was.
author:
  - TME Portal ops team (@tme-portal)
extends_documentation_fragment:
  - tme.migrations.pg_tools
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Verifies the backup and reports what would be restored; the database is not touched.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  src:
    description:
      - The backup file on the managed host (C(.sql.gz), C(.sql) or a custom-format C(.dump)).
    type: path
    required: true
  clean:
    description:
      - Drop what the connecting role owns, in the restore's transaction, before restoring.
    type: bool
    default: true
  min_size:
    description:
      - Size floor in bytes for the verification.
    type: int
    default: 256
seealso:
  - module: tme.migrations.backup
"""

EXAMPLES = r"""
- name: Restore production from the backup taken before the deploy
  tme.migrations.restore:
    container: tme-user-postgres-1
    login_user: tme_user
    login_db: tme_portal
    src: /home/tme-user/backups/tme_portal_20250915T101500Z.sql.gz
"""

RETURN = r"""
path:
  description: The backup restored.
  returned: always
  type: str
format:
  description: V(plain) (gzip), V(sql) or V(custom).
  returned: always
  type: str
sha256:
  description: SHA-256 of the backup file.
  returned: always
  type: str
verified:
  description: What the verification read.
  returned: always
  type: str
database:
  description: The database restored into (never the password).
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.tme.migrations.plugins.module_utils._backup import BackupError, verify
from ansible_collections.tme.migrations.plugins.module_utils._pgtools import PgTools, ToolError, pg_tools_argument_spec
from ansible_collections.tme.migrations.plugins.module_utils._restore import restore


def main() -> None:
    argument_spec = pg_tools_argument_spec()
    argument_spec.update(
        src=dict(type="path", required=True),
        clean=dict(type="bool", default=True),
        min_size=dict(type="int", default=256),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    tools = PgTools.from_params(p)
    try:
        if module.check_mode:
            checked = verify(p["src"], p["min_size"], tools)
            module.exit_json(
                changed=True,
                path=checked.path,
                format=checked.format,
                sha256=checked.sha256,
                verified=checked.detail,
                database=tools.where,
            )
        result = restore(tools, p["src"], clean=p["clean"], min_size=p["min_size"])
    except (BackupError, ToolError) as exc:
        module.fail_json(msg=str(exc), changed=False, database=tools.where)
    module.exit_json(changed=True, **result.as_dict())


if __name__ == "__main__":
    main()
