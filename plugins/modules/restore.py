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
    guide's C(zcat backup.sql.gz | psql) made safe. A custom-format dump goes through
    C(pg_restore --single-transaction); with O(clean), as the SQL script C(pg_restore -f -) writes, run by
    C(psql) in one transaction behind the clean step (committed only once C(pg_restore) read the whole dump);
    without, C(pg_restore --single-transaction --exit-on-error) into the database.
  - With O(clean), the same transaction first drops the database's objects (which ones depends on the connecting
    role, superuser or not, see O(clean)), so that objects created after the backup, by a migration for example,
    do not survive the restore, and a dump made without C(--clean) (the guide's C(pg_dump | gzip), CREATE
    statements only) restores over the existing objects.
  - On any error the transaction is rolled back and the database is left exactly as it was.
author:
  - TME Portal ops team (@tme-portal)
extends_documentation_fragment:
  - tme.migrations.connection
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
      - Empty the database, in the restore's transaction, before restoring.
      - When the connecting role is a superuser (on the postgres image, POSTGRES_USER is the bootstrap superuser,
        which owns everything), every schema that is neither a system schema nor an extension's is dropped with
        CASCADE, with the extensions installed in them (the dump creates them again), and so are event
        triggers, publications, foreign data wrappers and servers that no extension owns, and large objects.
        The schema C(public) is then created again with its previous owner, privileges and comment.
      - For any other role it is C(DROP OWNED BY CURRENT_USER), which drops only what the role owns (and revokes
        what was granted to it); objects of other roles stay, so they must not be in the dump.
      - When V(false), the dump is replayed as it is, and a dump made without C(--clean) into a database that still
        has its objects fails on the first one that already exists, and nothing is changed.
    type: bool
    default: true
  min_size:
    description:
      - Size floor in bytes for the verification.
    type: int
    default: 256
notes:
  - A plain dump that holds large objects is refused, as C(pg_dump) wraps their data in a C(BEGIN)/C(COMMIT) of its
    own, which would commit the restore half way. Restore a custom-format dump of that database instead.
  - The superuser's clean step does not drop subscriptions (they cannot be dropped in a transaction), casts or
    transforms between built-in types, or objects in an extension's own schema; a dump that creates those again
    fails, and changes nothing.
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
from ansible_collections.tme.migrations.plugins.module_utils._connection import connection_argument_spec
from ansible_collections.tme.migrations.plugins.module_utils._pgtools import PgTools, ToolError
from ansible_collections.tme.migrations.plugins.module_utils._restore import restore


def main() -> None:
    argument_spec = connection_argument_spec()
    argument_spec.update(
        src=dict(type="path", required=True),
        clean=dict(type="bool", default=True),
        min_size=dict(type="int", default=256),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    if not p["login_db"]:
        module.fail_json(msg="login_db is required: the database to restore into")
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
