# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The guide's server for the workflow tests: the postgres container on its docker network with no
published port, `tme_user` its superuser, no PostgreSQL client on the host's PATH, and the modules
running in a virtualenv that playbooks/prepare.yml made with the host's own Python (which has no
psycopg), from a wheelhouse (`make wheelhouse`): the test talks to no package index."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest

from ..conftest import REPO, PgContainer, free_port, path_without_pg_clients
from .topology import Topology, common_hostvars, password_lookup

SYSTEM_PYTHON = "/usr/bin/python3"  # the server's Python: Debian's, without psycopg
WHEELHOUSE = REPO / ".local" / "wheelhouse"


def _no_psycopg(python: str) -> bool:
    done = subprocess.run([python, "-c", "import psycopg"], capture_output=True, check=False)
    return done.returncode != 0


@pytest.fixture(scope="session")
def server_python(docker_engine: Any) -> Iterator[str]:
    """playbooks/prepare.yml run once, as ops would on the server: returns the virtualenv's Python."""
    import ansible_runner

    if not os.path.exists(SYSTEM_PYTHON) or not _no_psycopg(SYSTEM_PYTHON):
        pytest.fail(f"{SYSTEM_PYTHON} must exist without psycopg: it plays the server's Python")
    if not any(WHEELHOUSE.glob("psycopg_binary-*.whl")):
        pytest.fail(f"no wheelhouse at {WHEELHOUSE}: run `make wheelhouse` (make test does)")
    root = Path(tempfile.mkdtemp(prefix="tme-server-"))
    venv = root / "venv"
    inventory = {
        "all": {
            "vars": {"ansible_connection": "local", "tme_venv_dir": str(venv), "tme_wheelhouse": str(WHEELHOUSE)},
            "children": {"staging": {"hosts": {"staging-db": {}}}, "production": {"hosts": {"production-db": {}}}},
        }
    }
    (root / "hosts.json").write_text(json.dumps(inventory))
    (root / "runner").mkdir()
    runner = ansible_runner.run(
        private_data_dir=str(root / "runner"),
        playbook=str(REPO / "playbooks" / "prepare.yml"),
        inventory=str(root / "hosts.json"),
        envvars={"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "PATH": path_without_pg_clients()},
        quiet=True,
    )
    assert runner.rc == 0, runner.stdout.read()[-3000:]
    python = str(venv / "bin" / "python")
    assert not _no_psycopg(python)
    yield python
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def guide_topology(
    pg_container: PgContainer, server_python: str, migrations_dir: Path, tmp_path: Path
) -> Iterator[Topology]:
    """The guide's server: staging and production in the postgres container, reached by its name only
    (tme_db_container; no host, no port, no client programs), the app on the same network."""
    staging_db, production_db = pg_container.new_databases(2)
    app_port, smoke_port = free_port(), free_port()
    suffix = tmp_path.name[-12:].replace("_", "-").lower()
    shared = {
        **common_hostvars(tmp_path, migrations_dir),
        "ansible_python_interpreter": server_python,
        "tme_db_password": password_lookup(pg_container.password),
        "tme_db_container": pg_container.name,
        "tme_app_container": "tme-app-" + suffix,
        "tme_app_network": pg_container.network,
        "tme_app_ports": [f"127.0.0.1:{app_port}:3000"],
        "tme_app_db_host": pg_container.alias,
        "tme_app_db_port": pg_container.port,
        "tme_app_health_path": "/cgi-bin/health",
        "tme_app_health_url": f"http://127.0.0.1:{app_port}/cgi-bin/health",
    }
    hostvars = {
        "staging-db": {**shared, "tme_db_name": staging_db},
        "production-db": {**shared, "tme_db_name": production_db, "tme_reference_host": "staging-db"},
    }
    env = {**pg_container.env, "PATH": path_without_pg_clients()}
    topo = Topology(tmp_path, hostvars, pg_container.password, pg_container, env)
    topo.production["smoke_port"] = smoke_port
    yield topo
    for name in (shared["tme_app_container"], "tme-test"):
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False, env={**os.environ, **env})
    for name in (staging_db, production_db):
        pg_container.psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE);')
