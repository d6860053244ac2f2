# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A password made of everything that breaks URLs, conninfo strings, shells and JSON goes through the
whole workflow (apply-safe, status, rollback, a backup, a restore, and a pg_dump that fails printing the
password), and no form of it (raw, percent-encoded either way in either case, libpq-quoted,
JSON-escaped) is in any output, runner artifact, report, log, backup or state file."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import sys
import tempfile
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote, quote_plus

import pytest

from .topology import Topology, common_hostvars

PASSWORD = "p/a@s:s%w#o?r&d 1 ü'\\\"x"  # / @ : % # ? & spaces, non-ASCII, both quotes, a backslash


def _lower_hex(encoded: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), encoded)


def password_forms(secret: str) -> dict[str, bytes]:
    libpq = "'" + secret.replace("\\", "\\\\").replace("'", "\\'") + "'"
    forms = {
        "raw": secret,
        "quote": quote(secret, safe=""),
        "quote keeping /": quote(secret),
        "quote_plus": quote_plus(secret),
        "quote, lower-case hex": _lower_hex(quote(secret, safe="")),
        "quote_plus, lower-case hex": _lower_hex(quote_plus(secret)),
        "libpq-quoted": libpq,
        "JSON": json.dumps(secret)[1:-1],
        "JSON, UTF-8": json.dumps(secret, ensure_ascii=False)[1:-1],
    }
    return {name: form.encode() for name, form in forms.items()}


@dataclass
class SecretTopology(Topology):
    """The bundled topology with a role of its own whose password is PASSWORD."""

    user: str = ""
    admin: dict[str, Any] | None = None

    def query(self, host: str, sql: str) -> list[tuple[Any, ...]]:
        import psycopg

        assert self.admin is not None
        with psycopg.connect(autocommit=True, **{**self.admin, "dbname": self.hostvars[host]["tme_db_name"]}) as conn:
            cur = conn.execute(sql)
            return cur.fetchall() if cur.description else []

    def assert_no_form_of_the_password(self) -> int:
        """Every run's output and every file under tmp (gzip backups decompressed): returns the files read."""
        forms = password_forms(self.password)
        for run in self.runs or []:
            for name, form in forms.items():
                assert form not in run.stdout.encode(), f"the password ({name}) is in a playbook's output"
        scanned = 0
        for path in self.tmp.rglob("*"):
            if not path.is_file() or path.is_symlink():
                continue
            data = path.read_bytes()
            if path.name.endswith(".gz"):
                try:
                    data = gzip.decompress(data)
                except (OSError, EOFError, zlib.error):
                    pass
            for name, form in forms.items():
                assert form not in data, f"the password ({name}) is in {path}"
            scanned += 1
        return scanned


@pytest.fixture
def secret_topology(pg_server: Any, tmp_path: Path, migrations_dir: Path) -> Iterator[SecretTopology]:
    import psycopg
    from psycopg import sql

    role = "tme_secret_" + uuid.uuid4().hex[:8]
    names = ["t_" + uuid.uuid4().hex[:12] for _index in range(2)]
    admin = pg_server.admin_kwargs()
    with psycopg.connect(autocommit=True, **admin) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(sql.Identifier(role), sql.Literal(PASSWORD))
        )
        for name in names:
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(role)))
    secret_dir = Path(tempfile.mkdtemp(prefix="tme-secret-"))  # outside tmp_path, as a vault is
    secret_file = secret_dir / "password"
    fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(PASSWORD)
    shared = {
        **common_hostvars(tmp_path, migrations_dir),
        "tme_db_user": role,
        "tme_db_host": "127.0.0.1",
        "tme_db_port": pg_server.port,
        "tme_db_password": f"{{{{ lookup('ansible.builtin.file', '{secret_file}') }}}}",
        "tme_pg_bin_dir": str(pg_server.bindir),
        "tme_breaking_allowed": True,
    }
    hostvars = {
        "staging-db": {**shared, "tme_db_name": names[0]},
        "production-db": {**shared, "tme_db_name": names[1], "tme_reference_host": "staging-db"},
    }
    topo = SecretTopology(tmp_path, hostvars, PASSWORD, user=role, admin=admin)
    try:
        yield topo
    finally:
        shutil.rmtree(secret_dir, ignore_errors=True)
        with psycopg.connect(autocommit=True, **admin) as conn:
            for name in names:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            scratch = conn.execute(
                "SELECT datname FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE r.rolname = %s", (role,)
            ).fetchall()
            for (name,) in scratch:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


CONNECT_PARAMS_PLAY = """
- name: The password in connect_params
  hosts: staging
  gather_facts: false
  tasks:
    - name: Read the status with the password in connect_params only
      tme.migrations.migration_info:
        login_host: "{{ tme_db_host }}"
        login_port: "{{ tme_db_port }}"
        login_user: "{{ tme_db_user }}"
        login_db: "{{ tme_db_name }}"
        connect_params:
          password: "{{ tme_db_password }}"
      register: info

    - name: Show everything the module returned
      ansible.builtin.debug:
        var: info
"""


FAILING_PG_DUMP = """#!{python}
# pg_dump that fails printing the password it was given, in every form a careless program might
import json, os, sys
from urllib.parse import quote, quote_plus
pw = os.environ.get("PGPASSWORD", "")
libpq = "'" + pw.replace("\\\\", "\\\\\\\\").replace("'", "\\\\'") + "'"
lines = [
    "pg_dump: error: connection to server failed for password " + pw,
    "DATABASE_URL=postgresql://u:" + quote(pw, safe="") + "@h/db",
    "quote_plus " + quote_plus(pw) + " lower " + quote(pw, safe="").lower(),
    "conninfo password=" + libpq + " json " + json.dumps(pw),
]
sys.stderr.write("\\n".join(lines) + "\\n")
sys.exit(1)
"""


def test_a_password_of_every_reserved_character_never_shows(secret_topology: SecretTopology, tmp_path: Path) -> None:
    import psycopg

    topo = secret_topology
    staging = topo.staging
    target = {"host": "127.0.0.1", "port": staging["tme_db_port"], "user": topo.user, "dbname": staging["tme_db_name"]}
    # TCP needs the password (scram-sha-256 in pg_hba): the workflow below really uses it.
    for wrong in ({}, {"password": PASSWORD + "x"}):
        with pytest.raises(psycopg.OperationalError, match="password authentication failed|no password supplied"):
            psycopg.connect(connect_timeout=5, **target, **wrong).close()
    psycopg.connect(connect_timeout=5, password=PASSWORD, **target).close()

    applied = topo.run("apply-safe.yml")
    assert applied.rc == 0, applied.stdout[-3000:]
    everything = [f"{n:03d}" for n in range(1, 16)]
    assert topo.versions("staging-db") == everything and topo.versions("production-db") == everything

    status = topo.run("status.yml")
    assert status.rc == 0, status.stdout[-3000:]

    back = topo.run("rollback.yml", target="production", steps=2)
    assert back.rc == 0, back.stdout[-3000:]
    assert topo.versions("production-db") == everything[:13]
    before_rollback = topo.backups()[-1]

    restored = topo.run(
        "restore.yml", target="production", backup=str(before_rollback), confirm_restore=topo.production["tme_db_name"]
    )
    assert restored.rc == 0, restored.stdout[-3000:]
    assert topo.versions("production-db") == everything
    assert len(topo.backups()) == 3  # apply-safe's, before the rollback, before the restore

    # The password given in connect_params only: used, and nowhere in what the module returns (checked below).
    play = tmp_path / "connect_params.yml"
    play.write_text(CONNECT_PARAMS_PLAY)
    echoed = topo.run(str(play))
    assert echoed.rc == 0, echoed.stdout[-3000:]
    assert f"database {staging['tme_db_name']} on 127.0.0.1" in echoed.stdout, echoed.stdout[-3000:]

    # A pg_dump that fails printing the password: the task fails with its message, scrubbed.
    fake = tmp_path / "fake-bin"
    fake.mkdir()
    for program in ("psql", "pg_restore"):
        (fake / program).symlink_to(Path(staging["tme_pg_bin_dir"]) / program)
    (fake / "pg_dump").write_text(FAILING_PG_DUMP.format(python=sys.executable))
    (fake / "pg_dump").chmod(0o755)
    topo.hostvars["staging-db"] = {**staging, "tme_pg_bin_dir": str(fake)}
    failed = topo.run("restore.yml", target="staging", backup=str(before_rollback))
    assert failed.rc != 0
    assert "pg_dump failed for database" in failed.stdout and "connection to server failed for password ********" in (
        failed.stdout
    )
    assert "DATABASE_URL=postgresql://u:********@h/db" in failed.stdout
    assert topo.versions("staging-db") == everything  # nothing restored without its backup

    scanned = topo.assert_no_form_of_the_password()
    assert scanned > 20  # artifacts, reports, backups, logs were read


# -- DATABASE_URL: the smoke test's candidate reaches staging with this password (Docker) ----------
SMOKE_PLAY = """
- name: Smoke test of a candidate whose DATABASE_URL carries the password
  hosts: production
  gather_facts: false
  roles:
    - role: tme.migrations.smoke_test
      smoke_test_image: tme-local/portal:2.4
      smoke_test_port: "{{ smoke_port }}"
"""
# psql runs it in the candidate's shell: the answer and the container's log (its PID 1's stderr) get it.
ECHO_URL = '\\! echo "the app says: DATABASE_URL=$DATABASE_URL" | tee -a /proc/1/fd/2'


def test_database_url_with_the_password_through_the_smoke_test(guide_topology: Topology, tmp_path: Path) -> None:
    topo = guide_topology
    container = topo.container
    assert container is not None
    role = "tme_secret_" + uuid.uuid4().hex[:8]
    literal = PASSWORD.replace("'", "''")
    container.psql("postgres", f"CREATE ROLE {role} LOGIN PASSWORD '{literal}';")
    [database] = container.new_databases(1)
    container.psql("postgres", f'ALTER DATABASE "{database}" OWNER TO {role};')
    secret_dir = Path(tempfile.mkdtemp(prefix="tme-secret-"))
    secret_file = secret_dir / "password"
    secret_file.write_text(PASSWORD, encoding="utf-8")
    secret_file.chmod(0o600)
    try:
        for host in ("staging-db", "production-db"):
            topo.hostvars[host] = {
                **topo.hostvars[host],
                "tme_db_user": role,
                "tme_db_password": f"{{{{ lookup('ansible.builtin.file', '{secret_file}') }}}}",
            }
        topo.hostvars["staging-db"]["tme_db_name"] = database
        topo.hostvars["staging-db"]["tme_smoke_env"] = {"PORTAL_HEALTH_SQL": "SELECT current_user"}
        topo.hostvars["production-db"]["tme_smoke_env"] = {"PORTAL_HEALTH_SQL": "SELECT current_user"}
        play = tmp_path / "smoke.yml"
        play.write_text(SMOKE_PLAY)
        port = topo.production["smoke_port"]

        # The candidate's psql logs in over the network (scram) with the password read from DATABASE_URL.
        passed = topo.run(str(play), smoke_port=port)
        assert passed.rc == 0, passed.stdout[-3000:]
        assert "answered 200" in passed.stdout

        # A candidate that prints its DATABASE_URL and never answers as expected: the failure shows what it
        # answered, and the kept log, with the password scrubbed in its percent-encoded form.
        topo.hostvars["production-db"]["tme_smoke_env"] = {"PORTAL_HEALTH_SQL": ECHO_URL}
        failed = topo.run(str(play), smoke_port=port, smoke_test_status=299, smoke_test_timeout=4)
        assert failed.rc != 0
        assert "smoke test failed" in failed.stdout
        scrubbed = f"DATABASE_URL=postgresql://{role}:********@postgres:5432/{database}"
        assert scrubbed in failed.stdout, failed.stdout[-3000:]
        [log] = (Path(topo.production["tme_log_dir"])).glob("tme-test-*.log")
        assert log.stat().st_mode & 0o777 == 0o600
        assert scrubbed in log.read_text(), log.read_text()[-3000:]
        assert subprocess_free_of_containers("tme-test")
    finally:
        shutil.rmtree(secret_dir, ignore_errors=True)
        container.psql("postgres", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE); DROP ROLE IF EXISTS {role};')
    forms = password_forms(PASSWORD)
    for run in topo.runs or []:
        for name, form in forms.items():
            assert form not in run.stdout.encode(), f"the password ({name}) is in a playbook's output"
    for path in tmp_path.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            for name, form in forms.items():
                assert form not in data, f"the password ({name}) is in {path}"


def subprocess_free_of_containers(name: str) -> bool:
    from .topology import docker_cli

    return docker_cli("inspect", name).returncode != 0
