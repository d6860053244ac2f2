# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Two inventory hosts (staging, production) as the workflow playbooks see them, run through
ansible-runner, and what the tests read back: the databases (independently of the collection),
backups, the app container, and every file for the password."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..conftest import REPO, PgContainer

PLAYBOOKS = REPO / "playbooks"
SAFE_BEFORE_013 = [f"{n:03d}" for n in range(1, 13)]


@dataclass
class Run:
    rc: int
    stdout: str
    artifacts: Path


@dataclass
class Topology:
    """Two inventory hosts (staging, production) and everything the playbooks write, in tmp_path."""

    tmp: Path
    hostvars: dict[str, dict[str, Any]]
    password: str
    container: PgContainer | None = None
    env: dict[str, str] | None = None
    runs: list[Run] | None = None

    @property
    def staging(self) -> dict[str, Any]:
        return self.hostvars["staging-db"]

    @property
    def production(self) -> dict[str, Any]:
        return self.hostvars["production-db"]

    def run(self, playbook: str, check: bool = False, **extravars: Any) -> Run:
        import ansible_runner

        private = Path(tempfile.mkdtemp(prefix="runner-", dir=self.tmp))
        inventory = {
            "all": {
                "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
                "children": {
                    "staging": {"hosts": {"staging-db": self.staging}},
                    "production": {"hosts": {"production-db": self.production}},
                },
            }
        }
        path = private / "hosts.json"
        path.write_text(json.dumps(inventory))
        runner = ansible_runner.run(
            private_data_dir=str(private),
            playbook=str(PLAYBOOKS / playbook),
            inventory=str(path),
            extravars=extravars,
            envvars={"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1", **(self.env or {})},
            cmdline="--check" if check else None,
            quiet=True,
        )
        run = Run(runner.rc, runner.stdout.read(), private / "artifacts")
        self.runs = (self.runs or []) + [run]
        return run

    # -- reading the databases independently of the collection --------------------------------
    def query(self, host: str, sql: str) -> list[tuple[Any, ...]]:
        import psycopg

        v = self.hostvars[host]
        if self.container is not None:  # the container's address on its network, as the host reaches it
            kwargs = self.container.kwargs(v["tme_db_name"])
        else:
            kwargs = {"host": v["tme_db_host"], "port": v["tme_db_port"], "dbname": v["tme_db_name"]}
            kwargs.update(user="tme_user", password=self.password)
        with psycopg.connect(**kwargs) as conn:
            cur = conn.execute(sql)
            return cur.fetchall() if cur.description else []

    def versions(self, host: str) -> list[str]:
        if self.query(host, "SELECT to_regclass('schema_migrations')") == [(None,)]:
            return []  # no tracking table: the database was never touched
        rows = self.query(host, "SELECT version FROM schema_migrations ORDER BY version")
        return [str(r[0])[:3] for r in rows]

    def backups(self) -> list[Path]:
        directory = Path(self.production["tme_backup_dir"])
        return sorted(directory.glob("*.sql.gz")) if directory.exists() else []

    def assert_no_secret(self) -> None:
        """The password appears in no playbook output, runner artifact, report, log, backup or state file."""
        needle = self.password
        for run in self.runs or []:
            assert needle not in run.stdout
        for root in [self.tmp]:
            for path in root.rglob("*"):
                if path.is_file() and not path.is_symlink():
                    data = path.read_bytes()
                    if path.name.endswith(".gz"):
                        try:
                            data = gzip.decompress(data)
                        except (OSError, EOFError, zlib.error):
                            pass  # a deliberately damaged backup: its raw bytes are scanned
                    assert needle.encode() not in data, f"the password is in {path}"


def password_lookup(password: str) -> str:
    """The inventory's reference to the password: a 0600 file outside what the test scans, as a
    real inventory keeps it in a vault."""
    directory = Path(tempfile.mkdtemp(prefix="tme-secret-"))
    path = directory / "tme_user.password"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password)
    return f"{{{{ lookup('ansible.builtin.file', '{path}') }}}}"


def common_hostvars(tmp: Path, migrations: Path) -> dict[str, Any]:
    return {
        "tme_migrations_dir": str(migrations),
        "tme_db_user": "tme_user",
        "tme_backup_dir": str(tmp / "backups"),
        "tme_pending_file": str(tmp / "reports" / "PENDING_MIGRATIONS.md"),  # a directory not made yet
        "tme_state_dir": str(tmp / "state"),
        "tme_log_dir": str(tmp / "logs"),
        "tme_business_hours": {"days": []},  # never in business hours: the tests may run any time
    }


def docker_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], text=True, capture_output=True, check=False)


def start_app(topo: Topology, image: str) -> None:
    """What ops had running before the release, the guide's way: the app container on the docker
    network, reaching production as postgres:5432, published on the host (here on loopback)."""
    assert topo.container is not None
    p = topo.production
    env = {**os.environ, "DATABASE_URL": topo.container.url(p["tme_db_name"])}
    done = subprocess.run(
        [
            "docker",
            "run",
            "-d",
            "--name",
            p["tme_app_container"],
            "--network",
            p["tme_app_network"],
            "-p",
            p["tme_app_ports"][0],
            "-e",
            "DATABASE_URL",
            image,
        ],
        env=env,
        text=True,
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert health(topo)[0] == 200


def health(topo: Topology, url: str | None = None) -> tuple[int, str]:
    import time

    target = url or topo.production["tme_app_health_url"]
    for _attempt in range(40):
        try:
            with urllib.request.urlopen(target, timeout=5) as response:  # noqa: S310 - loopback only
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError:
            time.sleep(0.25)
    return -1, "no answer"


def app_image(topo: Topology) -> str:
    done = docker_cli("inspect", "--format", "{{.Config.Image}}", topo.production["tme_app_container"])
    return done.stdout.strip()


def remove_app(topo: Topology) -> None:
    docker_cli("rm", "-f", topo.production["tme_app_container"])


def table_fingerprint(topo: Topology, table: str) -> tuple[int, str]:
    row = topo.query(
        "production-db",
        f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t",  # noqa: S608
    )[0]
    return int(row[0]), str(row[1])


def bundled_topology(
    tmp: Path, db: Any, db2: Any, migrations: Path, pg_bin_dir: str | None = None, **extra: Any
) -> Topology:
    shared = {
        **common_hostvars(tmp, migrations),
        "tme_db_host": "127.0.0.1",
        "tme_db_port": db.server.port,
        "tme_db_password": password_lookup(db.kwargs["password"]),
        "tme_pg_bin_dir": pg_bin_dir or str(db.server.bindir),
        "tme_breaking_allowed": True,  # no app runs against these databases
        **extra,
    }
    hostvars = {
        "staging-db": {**shared, "tme_db_name": db.name},
        "production-db": {**shared, "tme_db_name": db2.name, "tme_reference_host": "staging-db"},
    }
    return Topology(tmp, hostvars, db.kwargs["password"])


def deploy(topo: Topology, image: str, check: bool = False, **extra: Any) -> Run:
    """deploy-breaking.yml as ops run it, the candidate on the topology's free port (3001 by default)."""
    port = topo.production["smoke_port"]
    extra.setdefault("release_target", "015_create_user_preferences")  # the examples' last migration
    return topo.run("deploy-breaking.yml", check=check, app_image=image, smoke_test_port=port, **extra)
