# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The test topology is the guide's server: PostgreSQL in a container on a user-defined network
under the alias `postgres`, no port published on the host, `tme_user` its bootstrap superuser
(`docker exec <pg> psql -U tme_user` needs no password), the app container on the same network
with DATABASE_URL=postgresql://tme_user:...@postgres:5432/..., and a host without any PostgreSQL
client program."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from ..conftest import PgContainer, free_port, path_without_pg_clients


def docker(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], text=True, capture_output=True, check=False, env=env)


def inspect(container: str, template: str) -> Any:
    done = docker("inspect", "--format", "{{json " + template + "}}", container)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def guide_host_env() -> dict[str, str]:
    """The guide's host: Docker, no PostgreSQL client, no PostgreSQL password in the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PATH"] = path_without_pg_clients()
    return env


def http_get(url: str, timeout: float = 15.0) -> tuple[int, str]:
    """(status, body) of a GET; retried while the server is not listening yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_postgres_is_on_the_network_as_postgres_and_publishes_nothing(pg_container: PgContainer) -> None:
    assert inspect(pg_container.name, ".NetworkSettings.Ports") in ({}, None)
    assert inspect(pg_container.name, ".HostConfig.PortBindings") in ({}, None)
    assert inspect(pg_container.name, ".HostConfig.NetworkMode") == pg_container.network
    networks = inspect(pg_container.name, ".NetworkSettings.Networks")
    assert list(networks) == [pg_container.network]
    assert "postgres" in networks[pg_container.network]["Aliases"]
    assert networks[pg_container.network]["IPAddress"] == pg_container.host
    assert pg_container.port == 5432


def test_docker_exec_psql_needs_no_password(pg_container: PgContainer) -> None:
    (db,) = pg_container.new_databases(1)
    env = guide_host_env()
    assert shutil.which("psql", path=env["PATH"]) is None
    done = subprocess.run(
        ["docker", "exec", pg_container.name, "psql", "-U", "tme_user", "-d", db, "-c", "select 1"],
        text=True,
        capture_output=True,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "(1 row)" in done.stdout
    container_env = inspect(pg_container.name, ".Config.Env")
    assert not any(item.startswith("PGPASSWORD=") for item in container_env)


def test_tme_user_is_the_superuser_and_owns_the_databases(pg_container: PgContainer) -> None:
    (db,) = pg_container.new_databases(1)
    assert pg_container.psql(db, "SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user;") == (
        "tme_user|t"
    )
    assert pg_container.psql(
        db, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database();"
    ) == ("tme_user")
    # As in the official image there is no `postgres` role: tme_user bootstrapped the cluster.
    assert pg_container.psql("postgres", "SELECT count(*) FROM pg_roles WHERE rolname = 'postgres';") == "0"


def test_the_host_reaches_the_container_address_with_the_password(pg_container: PgContainer) -> None:
    import psycopg

    (db,) = pg_container.new_databases(1)
    with psycopg.connect(**pg_container.kwargs(db)) as conn:
        assert conn.execute("SELECT current_user, current_database()").fetchone() == ("tme_user", db)
        assert conn.info.host == pg_container.host
    wrong = {**pg_container.kwargs(db), "password": "not-the-password"}
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(**wrong)


def test_the_app_on_the_network_reaches_postgres_by_its_alias(pg_container: PgContainer, docker_engine: Any) -> None:
    (db,) = pg_container.new_databases(1)
    pg_container.psql(db, "CREATE TABLE clients (company_name text); INSERT INTO clients VALUES ('ACME');")
    name = "tme-test-app-" + uuid.uuid4().hex[:6]
    port = free_port()
    started = docker(
        "run",
        "-d",
        "--name",
        name,
        "--network",
        pg_container.network,
        "-p",
        f"127.0.0.1:{port}:3000",  # the guide's `-p 3001:3000`, on loopback only
        "-e",
        f"DATABASE_URL={pg_container.url(db)}",
        "tme-local/portal:2.3",
    )
    assert started.returncode == 0, started.stderr
    try:
        assert f"@postgres:5432/{db}" in pg_container.url(db)
        # Publishing works on a user-defined network without iptables (docker-proxy): the guide's
        # `curl http://localhost:3001`.
        assert docker_engine.published(name, 3000) == ("127.0.0.1", port)
        status, body = http_get(f"http://127.0.0.1:{port}/cgi-bin/health")
        assert (status, body.strip()) == (200, "TME Portal 2.3 ok (1)")
        # The container's address on the network is the other way in.
        app_ip = docker_engine.container_ip(name, pg_container.network)
        status, body = http_get(f"http://{app_ip}:3000/cgi-bin/health")
        assert status == 200, body
    finally:
        docker("rm", "-f", name)


def test_the_app_reports_a_failing_query(pg_container: PgContainer, docker_engine: Any) -> None:
    """The health check really runs against the database: 2.4 reads a column 2.3's schema lacks."""
    (db,) = pg_container.new_databases(1)
    pg_container.psql(db, "CREATE TABLE clients (company_name text);")
    name = "tme-test-app-" + uuid.uuid4().hex[:6]
    started = docker(
        "run", "-d", "--name", name, "--network", pg_container.network, "-e", f"DATABASE_URL={pg_container.url(db)}",
        "tme-local/portal:2.4",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:
        app_ip = docker_engine.container_ip(name, pg_container.network)
        status, body = http_get(f"http://{app_ip}:3000/cgi-bin/health")
        assert status == 503 and "legal_name" in body, body
    finally:
        docker("rm", "-f", name)


def test_path_without_pg_clients_is_the_guide_host(docker_engine: Any) -> None:
    path = path_without_pg_clients()
    for program in ("psql", "pg_dump", "pg_restore", "pg_dumpall", "pg_ctl", "pg_isready", "createdb", "initdb"):
        assert shutil.which(program, path=path) is None, program
    assert shutil.which("docker", path=path) is not None
    python = shutil.which("python", path=path)
    assert python is not None and Path(python).parent == Path(sys.executable).parent  # .venv/bin first
    env = {**os.environ, "PATH": path}
    assert subprocess.run(["docker", "version"], env=env, capture_output=True, check=False).returncode == 0
    done = subprocess.run(
        ["python", "-c", "import sys; print(sys.prefix)"], env=env, text=True, capture_output=True, check=False
    )
    assert done.stdout.strip() == sys.prefix


def test_an_engine_stops_with_its_containerd(docker_engine: Any) -> None:
    """What the session does at its end, on an engine of its own: nothing keeps running."""
    from localdocker import LocalDocker

    engine = LocalDocker(Path(tempfile.mkdtemp(prefix="tme-docker-")))
    try:
        engine.start()
        pids = engine.daemon_pids()
        commands = [Path(f"/proc/{pid}/comm").read_text().strip() for pid in pids]
        assert "dockerd" in commands and "containerd" in commands, commands
        engine.create_network("tme-test-net-" + uuid.uuid4().hex[:8])
    finally:
        engine.destroy()
    assert engine.daemon_pids() == []
    for pid in pids:
        stat = Path(f"/proc/{pid}/stat")
        assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z", pid
    assert not engine.root.exists() and not engine.exec_root.exists()
