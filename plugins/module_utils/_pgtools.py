# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PostgreSQL's client programs (pg_dump, pg_restore, psql) as argv lists, run on this host or,
as the team's guide does, inside the database container with ``docker exec``.

The password never goes into an argv: on this host it is PGPASSWORD in the child's environment;
with docker it is ``docker exec -e PGPASSWORD`` (the name only: docker copies the value from its
own environment, which is the child's).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field, replace
from typing import IO, Any

from ansible_collections.tme.migrations.plugins.module_utils._connection import connect_kwargs, scrub


class ToolError(Exception):
    """A client program failed; the message names the program and the target, never the password."""


# libpq's connection keywords and the environment variables that set them (PostgreSQL's "Environment
# Variables" chapter), but for those PgTools passes itself (host, port, user, dbname, password) and
# application_name (the programs keep their own names: "tme.migrations" sessions are the engine's).
LIBPQ_ENV = {
    "hostaddr": "PGHOSTADDR",
    "passfile": "PGPASSFILE",
    "channel_binding": "PGCHANNELBINDING",
    "service": "PGSERVICE",
    "options": "PGOPTIONS",
    "sslmode": "PGSSLMODE",
    "sslnegotiation": "PGSSLNEGOTIATION",
    "sslcompression": "PGSSLCOMPRESSION",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslcertmode": "PGSSLCERTMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcrl": "PGSSLCRL",
    "sslcrldir": "PGSSLCRLDIR",
    "sslsni": "PGSSLSNI",
    "requirepeer": "PGREQUIREPEER",
    "require_auth": "PGREQUIREAUTH",
    "ssl_min_protocol_version": "PGSSLMINPROTOCOLVERSION",
    "ssl_max_protocol_version": "PGSSLMAXPROTOCOLVERSION",
    "gssencmode": "PGGSSENCMODE",
    "krbsrvname": "PGKRBSRVNAME",
    "gsslib": "PGGSSLIB",
    "gssdelegation": "PGGSSDELEGATION",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "client_encoding": "PGCLIENTENCODING",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "load_balance_hosts": "PGLOADBALANCEHOSTS",
}


@dataclass
class PgTools:
    """How to reach one database with PostgreSQL's client programs."""

    dbname: str
    user: str | None = None
    password: str | None = None
    host: str | None = None
    port: int | str | None = None  # a string from connect_params: libpq's list of ports, say
    bin_dir: str | None = None
    container: str | None = None  # run inside this container (docker exec), over its local socket
    docker_bin: str = "docker"
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> PgTools:
        """From the modules' connection options (tme.migrations.connection), as the connection layer
        reads them (_connection.connect_kwargs): connect_params take precedence, so a password given
        only there is the one the client programs use (in PGPASSWORD) and the one scrubbed."""
        # Without the container: its client programs use its local socket, not its network address
        # (which connect_kwargs would read with docker inspect).
        kwargs = connect_kwargs({**params, "container": None})
        # Every other libpq keyword psycopg connects with (connect_params: hostaddr, service, sslcert,
        # options, ...) goes to the programs as its PG* environment variable, so that they reach the
        # same server the same way. Keywords libpq has no variable for (keepalives, ...) change nothing
        # of where the programs connect.
        extra = {LIBPQ_ENV[k]: v for k, v in kwargs.items() if k in LIBPQ_ENV and v not in (None, "")}
        password = kwargs.get("password")
        port = kwargs.get("port")
        return cls(
            dbname=kwargs.get("dbname") or params["login_db"],
            user=kwargs.get("user"),
            password=None if password in (None, "") else str(password),
            host=kwargs.get("host"),
            port=None if port in (None, "") else port,
            bin_dir=params.get("pg_bin_dir"),
            container=params.get("container"),
            docker_bin=params.get("docker_bin") or "docker",
            extra_env={k: str(v) for k, v in extra.items()},
        )

    def on(self, dbname: str) -> PgTools:
        """The same server and role, another database (a scratch copy, for example)."""
        return replace(self, dbname=dbname)

    @property
    def where(self) -> str:
        inside = f" in container {self.container}" if self.container else ""
        if self.container:
            return f"database {self.dbname}{inside}"
        return f"database {self.dbname} on {self.host or '(libpq default host)'}:{self.port or '(default port)'}"

    def _program(self, name: str) -> str:
        if self.container:
            return name  # the container's PATH
        return os.path.join(self.bin_dir, name) if self.bin_dir else name

    def argv(self, program: str, args: list[str], stdin: bool = False, with_db: bool = True) -> list[str]:
        """The argv of one client program call; connection options come first, the database last."""
        conn: list[str] = []
        if not self.container:
            # In the container the local socket (the image's PGHOST/PGPORT) is used, as in the guide.
            if self.host:
                conn += ["-h", str(self.host)]
            if self.port:
                conn += ["-p", str(self.port)]
        if self.user:
            conn += ["-U", self.user]
        conn.append("-w")  # never prompt: no standard input is there for a password
        tail = ["-d", self.dbname] if with_db else []
        command = [self._program(program), *conn, *args, *tail]
        if not self.container:
            return command
        prefix = [self.docker_bin, "exec"]
        if stdin:
            prefix.append("-i")
        if self.password:
            prefix += ["-e", "PGPASSWORD"]
        return [*prefix, self.container, *command]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.extra_env)
        if self.password:
            env["PGPASSWORD"] = self.password
        env.setdefault("PGCONNECT_TIMEOUT", "10")
        return env

    def scrub(self, text: str) -> str:
        return scrub(text, self.password).strip()

    def popen(
        self, argv: list[str], stdin: int | IO[bytes] | None = None, stdout: int | IO[bytes] | None = None
    ) -> Any:
        try:
            return subprocess.Popen(  # noqa: S603 - argv list, no shell
                argv, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, env=self.env()
            )
        except FileNotFoundError:
            where = f"in PATH or pg_bin_dir ({self.bin_dir})" if not self.container else "(docker_bin)"
            raise ToolError(f"{argv[0]} not found {where}") from None

    def capture(self, program: str, args: list[str], data: bytes | None = None, with_db: bool = True) -> bytes:
        """Run to completion; returns standard output as bytes. Fails with the program's own message."""
        argv = self.argv(program, args, stdin=data is not None, with_db=with_db)
        proc = self.popen(
            argv, stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL, stdout=subprocess.PIPE
        )
        out, err = proc.communicate(data)
        if proc.returncode != 0:
            message = self.scrub(err.decode(errors="replace"))
            raise ToolError(f"{program} failed for {self.where} (exit {proc.returncode}): {message}")
        return bytes(out)

    def run(self, program: str, args: list[str], data: bytes | None = None, with_db: bool = True) -> str:
        """Run to completion; returns standard output as text."""
        return self.capture(program, args, data, with_db).decode(errors="replace")

    def query(self, text: str) -> list[str]:
        """One SQL query through psql (unaligned, tuples only): the rows as lines."""
        out = self.run("psql", ["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", text])
        return [line for line in out.splitlines() if line]
