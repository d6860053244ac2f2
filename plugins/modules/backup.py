#!/usr/bin/python
# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: backup
short_description: Verified, compressed backup of a PostgreSQL database before a change
version_added: 0.1.0
description:
  - Runs C(pg_dump) of one database, on the managed host or inside the database container with C(docker exec)
    (the team guide's topology), and writes it compressed into O(dest), a directory of mode C(0700), as a file
    of mode C(0600).
  - The backup is verified before it gets its final name. V(plain) (gzip-compressed SQL made with
    C(--clean --if-exists), restorable with C(zcat | psql)) is verified by reading the whole gzip stream, a size
    floor and pg_dump's closing line, which a dump cut short lacks; V(custom) by C(pg_restore --list).
    A backup that does not verify is removed and the task fails, so no later task relies on it.
  - The file is written as C(NAME.partial), fsynced, verified, renamed and the directory fsynced. On any failure
    (pg_dump's error, a full disk, which the message names with the space left) C(pg_dump) is stopped and the
    partial file removed; the C(.partial) files of this O(prefix) that a killed run left are removed by the next
    run, which holds the prefix's lock, and reported in RV(stale_removed).
  - Never two at once for one database on one host (a lock file in O(dest)), and never while another C(pg_dump)
    of the database runs (a cron backup, for example); it waits up to O(wait_timeout) seconds.
  - Old backups of the same O(prefix) are removed by the retention rules O(keep) and O(max_age_days).
author:
  - TME Portal ops team (@tme-portal)
extends_documentation_fragment:
  - tme.migrations.connection
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reports the file it would write; nothing is dumped, written or removed.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  dest:
    description:
      - Directory of the backups on the managed host, created with mode C(0700) when missing.
    type: path
    required: true
  prefix:
    description:
      - First part of the file names; defaults to O(login_db). Retention only ever touches files of this prefix.
      - Letters, digits, C(.), C(_) and C(-) only, not starting with C(.); anything else fails the task before
        anything is written (a O(login_db) that does not fit needs an explicit O(prefix)).
    type: str
  format:
    description:
      - V(plain) writes C(PREFIX_YYYYmmddTHHMMSSZ.sql.gz), V(custom) writes C(PREFIX_YYYYmmddTHHMMSSZ.dump).
    type: str
    choices: [plain, custom]
    default: plain
  keep:
    description:
      - Keep at least the newest O(keep) backups of this prefix; V(0) sets no count rule.
    type: int
    default: 10
  max_age_days:
    description:
      - Keep every backup younger than this many days; V(0) sets no age rule. A backup is removed only when
        every rule that is set allows it. With both rules at V(0), nothing is removed.
    type: float
    default: 0
  min_size:
    description:
      - Size floor in bytes; a smaller file fails verification.
    type: int
    default: 256
  wait_timeout:
    description:
      - Seconds to wait for another backup or C(pg_dump) of this database to finish before failing.
    type: float
    default: 600
seealso:
  - module: tme.migrations.restore
  - module: community.postgresql.postgresql_db
"""

EXAMPLES = r"""
- name: Back up production inside the postgres container, as the guide's backup-daily.sh
  tme.migrations.backup:
    container: tme-user-postgres-1
    login_user: tme_user
    login_db: tme_portal
    dest: /home/tme-user/backups
    keep: 14
  register: backup

- name: Back up with the host's pg_dump over TCP
  tme.migrations.backup:
    login_host: 127.0.0.1
    login_user: tme_user
    login_password: "{{ vault_tme_db_password }}"
    login_db: tme_portal
    pg_bin_dir: /usr/lib/postgresql/15/bin
    dest: /var/backups/tme
"""

RETURN = r"""
path:
  description: The verified backup (in check mode, the file it would write).
  returned: always
  type: str
  sample: /home/tme-user/backups/tme_portal_20250915T101500Z.sql.gz
format:
  description: V(plain) or V(custom).
  returned: always
  type: str
size:
  description: Size of the file in bytes.
  returned: success and not check mode
  type: int
sha256:
  description: SHA-256 of the file.
  returned: success and not check mode
  type: str
verified:
  description: What the verification read.
  returned: success and not check mode
  type: str
  sample: gzip stream intact, 48213 bytes of SQL, pg_dump's closing line present
removed:
  description: Older backups removed by the retention rules.
  returned: always
  type: list
  elements: str
stale_removed:
  description: Partial files of this prefix that an earlier, killed run left behind, removed before the dump.
  returned: success and not check mode
  type: list
  elements: str
  sample: [/home/tme-user/backups/tme_portal_20250915T101500Z.sql.gz.partial]
waited_s:
  description: Seconds spent waiting for another backup or pg_dump to finish.
  returned: success and not check mode
  type: float
database:
  description: The database backed up (never the password).
  returned: always
  type: str
"""

import os
from datetime import datetime, timezone

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.tme.migrations.plugins.module_utils._backup import (
    BackupError,
    backup_name,
    make_backup,
    validate_prefix,
)
from ansible_collections.tme.migrations.plugins.module_utils._connection import connection_argument_spec
from ansible_collections.tme.migrations.plugins.module_utils._pgtools import PgTools, ToolError


def main() -> None:
    argument_spec = connection_argument_spec()
    argument_spec.update(
        dest=dict(type="path", required=True),
        prefix=dict(type="str"),
        format=dict(type="str", default="plain", choices=["plain", "custom"]),
        keep=dict(type="int", default=10),
        max_age_days=dict(type="float", default=0),
        min_size=dict(type="int", default=256),
        wait_timeout=dict(type="float", default=600),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    if not p["login_db"]:
        module.fail_json(msg="login_db is required: the database to back up")
    tools = PgTools.from_params(p)
    prefix = p["prefix"] or p["login_db"]
    try:
        validate_prefix(prefix)
    except BackupError as exc:
        hint = "" if p["prefix"] else f" (the default, login_db {p['login_db']!r}: set prefix)"
        module.fail_json(msg=f"{exc}{hint}", changed=False, database=tools.where)
    if module.check_mode:
        path = os.path.join(p["dest"], backup_name(prefix, p["format"], datetime.now(timezone.utc)))
        module.exit_json(changed=True, path=path, format=p["format"], removed=[], database=tools.where)
    try:
        result = make_backup(
            tools,
            p["dest"],
            prefix,
            fmt=p["format"],
            min_size=p["min_size"],
            keep=p["keep"],
            max_age_days=p["max_age_days"],
            wait_timeout=p["wait_timeout"],
        )
    except (BackupError, ToolError) as exc:
        module.fail_json(msg=str(exc), changed=False, database=tools.where)
    module.exit_json(changed=True, **result.as_dict())


if __name__ == "__main__":
    main()
