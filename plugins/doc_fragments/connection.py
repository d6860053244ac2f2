# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # Connection options: community.postgresql's names. Unset options fall back to libpq's
    # environment variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGPASSFILE, PGDATABASE, ...).
    DOCUMENTATION = r"""
options:
  login_host:
    description:
      - Host running the database. Unset, the address of O(container) on its docker network when that is
        given, else libpq's E(PGHOST) or its default (the local socket) applies.
    type: str
    aliases: [host]
  login_port:
    description:
      - Database port. Unset, E(PGPORT) or 5432 applies.
    type: int
    aliases: [port]
  login_user:
    description:
      - The role to connect as. Unset, E(PGUSER) or the operating system user applies.
    type: str
    aliases: [login]
  login_password:
    description:
      - The role's password. Never logged or returned. Unset, E(PGPASSWORD) or the C(~/.pgpass) file applies.
    type: str
  login_db:
    description:
      - The database to migrate, for example C(tme_portal_test) (staging) or C(tme_portal) (production).
    type: str
    aliases: [db, database]
  login_unix_socket:
    description:
      - Directory of a Unix domain socket for local connections; it takes the place of O(login_host).
    type: str
    aliases: [unix_socket]
  ssl_mode:
    description:
      - Whether or with what priority a TLS connection is negotiated, as libpq's C(sslmode).
    type: str
    choices: [allow, disable, prefer, require, verify-ca, verify-full]
  ca_cert:
    description:
      - File of certificate authority certificates that the server's certificate must be signed by.
    type: str
    aliases: [ssl_rootcert]
  connect_params:
    description:
      - Further libpq connection parameters, for example C(sslcert) or C(options). They take precedence.
    type: dict
    default: {}
  container:
    description:
      - The container the database runs in, on the host that runs the module, for example
        C(tme-user-postgres-1) (the team guide's server). Nothing needs to be published or installed for it;
        without O(login_host) the module connects to the container's address on its docker network (read
        with C(docker inspect)), and PostgreSQL's client programs (C(pg_dump), C(pg_restore), C(psql)) run
        inside it with C(docker exec), over its local socket, as the guide's commands do.
    type: str
  container_network:
    description:
      - The docker network whose address of O(container) is used, when the container is on several.
    type: str
  docker_bin:
    description:
      - The docker client used with O(container). E(DOCKER_HOST) and the like apply.
    type: str
    default: docker
  pg_bin_dir:
    description:
      - Directory of C(pg_dump), C(pg_restore) and C(psql) on the host that runs the module, when they are
        not in E(PATH) (backups, restores and the rollback rehearsal run them). They must be at least the
        server's major version. Ignored with O(container), whose own programs are used.
    type: path
requirements:
  - psycopg >= 3.1 on the host that runs the module (C(playbooks/prepare.yml) installs it in a virtualenv there)
notes:
  - Migration files are read and parsed where the playbook runs (the controller), which needs the
    Python library C(pglast); the host that runs the module needs only Python and C(psycopg).
  - The password never appears on a command line, in results or in messages; client programs get it as
    E(PGPASSWORD) in their environment (with O(container), through C(docker exec -e PGPASSWORD)).
"""

    TRACKING = r"""
options:
  tracking_schema:
    description:
      - Schema of the tracking tables.
    type: str
    default: public
  tracking_table:
    description:
      - The tracking table, compatible with the guide's C(schema_migrations) (version, description,
        applied_at, applied_by). Its companions are named after it with C(_audit) and C(_progress).
    type: str
    default: schema_migrations
"""

    REFERENCE = r"""
options:
  reference:
    description:
      - The reference database, normally staging (C(tme_portal_test)), with the same option names as the
        connection. M(tme.migrations.migration) applies only what the reference recorded with the same
        checksum (the promotion gate); M(tme.migrations.migration_info) reports what this database lacks of it.
    type: dict
    suboptions:
      login_host:
        description: Host of the reference database.
        type: str
      login_port:
        description: Port of the reference database.
        type: int
      login_user:
        description: Role to connect to the reference as.
        type: str
      login_password:
        description: Password of that role. Never logged or returned.
        type: str
      login_db:
        description: The reference database, for example C(tme_portal_test).
        type: str
      login_unix_socket:
        description: Unix socket directory of the reference server.
        type: str
      ssl_mode:
        description: TLS mode, as libpq's C(sslmode).
        type: str
        choices: [allow, disable, prefer, require, verify-ca, verify-full]
      ca_cert:
        description: Certificate authority file for the reference server.
        type: str
      connect_params:
        description: Further libpq parameters.
        type: dict
        default: {}
      container:
        description: The container the reference database runs in (its address on the docker network is used).
        type: str
      container_network:
        description: The docker network of that container whose address is used.
        type: str
      docker_bin:
        description: The docker client.
        type: str
        default: docker
"""

    INTERNAL = r"""
options:
  _migrations:
    description:
      - Internal, set by the action plugin; do not set it. The files of O(path), read and parsed on the
        controller, as one JSON text.
    type: str
  _phase:
    description:
      - Internal, set by the action plugin; do not set it. V(plan) plans without changing anything and names the
        migrations whose statements a real run needs; V(run) runs.
    type: str
    choices: [plan, run]
    default: run
  _tool_version:
    description:
      - Internal, set by the action plugin; do not set it. The collection's version (its C(galaxy.yml)), recorded
        in the tracking rows; unset, V(unknown) is.
    type: str
"""
