# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # PostgreSQL's client programs (pg_dump, pg_restore, psql) on the managed host, or inside the
    # database container through docker exec (the team guide's topology).
    DOCUMENTATION = r"""
options:
  login_host:
    description:
      - Host of the database for the client programs on the managed host. Ignored with O(container),
        where the container's local socket is used, as the guide's C(docker exec ... psql) does.
    type: str
    aliases: [host]
  login_port:
    description:
      - Port of the database. Ignored with O(container) (the container's E(PGPORT) applies).
    type: int
    aliases: [port]
  login_unix_socket:
    description:
      - Unix socket directory on the managed host; it takes the place of O(login_host).
    type: str
    aliases: [unix_socket]
  login_user:
    description:
      - The role the client programs connect as, for example C(tme_user).
    type: str
    aliases: [login]
  login_password:
    description:
      - The role's password. Never logged, returned or put on a command line; the programs get it as
        E(PGPASSWORD) in their environment (with O(container), through C(docker exec -e PGPASSWORD)).
    type: str
  login_db:
    description:
      - The database, for example C(tme_portal).
    type: str
    required: true
    aliases: [db, database]
  pg_bin_dir:
    description:
      - Directory of C(pg_dump), C(pg_restore) and C(psql) on the managed host, when they are not in
        E(PATH). They must be at least the server's major version. Ignored with O(container).
    type: path
  container:
    description:
      - Run the client programs inside this container with C(docker exec), for example
        C(tme-user-postgres-1). The file itself stays on the managed host.
    type: str
  docker_bin:
    description:
      - The docker client used with O(container). E(DOCKER_HOST) and the like apply.
    type: str
    default: docker
requirements:
  - PostgreSQL's client programs on the managed host, or in the container named by O(container)
"""
