# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PgTools.from_params reads the connection options as the connection layer does (connect_kwargs): a
password given only in connect_params reaches the client programs in PGPASSWORD, never an argv, and
is scrubbed from their messages. Pure logic; the stand-in client program is a shell script."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.tme.migrations.plugins.module_utils import _connection
from ansible_collections.tme.migrations.plugins.module_utils._connection import connect_kwargs
from ansible_collections.tme.migrations.plugins.module_utils._pgtools import PgTools, ToolError

SECRET = "Cp-only s3cret'\\x"  # a space, a quote and a backslash: every form is scrubbed

BASE: dict[str, Any] = {
    "login_host": "127.0.0.1",
    "login_port": 5432,
    "login_user": "tme_user",
    "login_password": None,
    "login_db": "tme_portal",
    "login_unix_socket": None,
    "ssl_mode": None,
    "ca_cert": None,
    "connect_params": {},
    "container": None,
    "container_network": None,
    "docker_bin": "docker",
    "pg_bin_dir": "/pg",
}


def params(**changes: Any) -> dict[str, Any]:
    return {**BASE, **changes}


def test_a_password_only_in_connect_params_goes_to_pgpassword_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    tools = PgTools.from_params(params(connect_params={"password": SECRET}))
    assert tools.password == SECRET
    assert tools.env()["PGPASSWORD"] == SECRET
    argv = tools.argv("pg_dump", ["--format=plain"])
    assert all(SECRET not in a for a in argv)
    assert " ".join(argv) == "/pg/pg_dump -h 127.0.0.1 -p 5432 -U tme_user -w --format=plain -d tme_portal"
    assert tools.scrub(f"FATAL: password {SECRET} refused") == "FATAL: password ******** refused"


@pytest.mark.parametrize(
    "given",
    [
        params(),
        params(login_password="from-login"),
        params(connect_params={"password": SECRET}),
        params(login_password="from-login", connect_params={"password": SECRET}),  # connect_params win
        params(login_password="", connect_params={"sslcert": "/c.pem"}),
        params(connect_params={"password": 12345}),  # YAML read it as a number
    ],
)
def test_the_same_effective_password_as_the_connection_layer(given: dict[str, Any]) -> None:
    expected = connect_kwargs(given).get("password")
    tools = PgTools.from_params(given)
    assert tools.password == (None if expected in (None, "") else str(expected))


def test_connect_params_take_precedence_for_the_target_too() -> None:
    given = params(connect_params={"user": "other", "dbname": "elsewhere", "port": "5433", "host": "db.internal"})
    kwargs = connect_kwargs(given)
    tools = PgTools.from_params(given)
    assert (tools.user, tools.dbname, tools.host, str(tools.port)) == (
        kwargs["user"],
        kwargs["dbname"],
        kwargs["host"],
        str(kwargs["port"]),
    )
    assert tools.argv("psql", [])[1:8] == ["-h", "db.internal", "-p", "5433", "-U", "other", "-w"]


def test_other_connect_params_reach_the_programs_as_libpq_variables() -> None:
    """hostaddr, service, a client certificate, options: pg_dump and psql must reach the server the module's
    connection reaches, the same way (as PG* variables: nothing of them on the command line)."""
    given = params(
        connect_params={
            "hostaddr": "10.0.0.7",
            "service": "tme",
            "sslcert": "/etc/tme/client.crt",
            "sslkey": "/etc/tme/client.key",
            "options": "-c search_path=app",
            "target_session_attrs": "read-write",
            "keepalives": 1,
        },
        ssl_mode="verify-full",
        ca_cert="/etc/tme/ca.crt",
    )
    env = PgTools.from_params(given).env()
    assert {k: env.get(k) for k in ("PGHOSTADDR", "PGSERVICE", "PGSSLCERT", "PGSSLKEY", "PGOPTIONS")} == {
        "PGHOSTADDR": "10.0.0.7",
        "PGSERVICE": "tme",
        "PGSSLCERT": "/etc/tme/client.crt",
        "PGSSLKEY": "/etc/tme/client.key",
        "PGOPTIONS": "-c search_path=app",
    }
    assert (env["PGTARGETSESSIONATTRS"], env["PGSSLMODE"], env["PGSSLROOTCERT"]) == (
        "read-write",
        "verify-full",
        "/etc/tme/ca.crt",
    )
    assert "PGAPPNAME" not in env or env["PGAPPNAME"] == os.environ.get("PGAPPNAME")
    argv = " ".join(PgTools.from_params(given).argv("pg_dump", []))
    assert "10.0.0.7" not in argv and "client.key" not in argv


def test_in_a_container_the_password_is_passed_by_name_and_docker_inspect_is_not_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_inspect(*_args: Any) -> str:
        raise AssertionError("docker inspect must not run: the container's programs use its local socket")

    monkeypatch.setattr(_connection, "container_address", no_inspect)
    tools = PgTools.from_params(
        params(login_host=None, container="tme-user-postgres-1", connect_params={"password": SECRET})
    )
    argv = tools.argv("psql", ["-f", "-"], stdin=True)
    assert argv[:6] == ["docker", "exec", "-i", "-e", "PGPASSWORD", "tme-user-postgres-1"]
    assert all(SECRET not in a for a in argv)
    assert tools.env()["PGPASSWORD"] == SECRET


def test_the_programs_message_is_scrubbed_of_the_connect_params_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stand-in psql that prints its argv and echoes PGPASSWORD back on stderr, then fails."""
    monkeypatch.delenv("PGPASSWORD", raising=False)
    script = tmp_path / "psql"
    script.write_text(
        '#!/bin/sh\nprintf "%s\\n" "$@" > "$(dirname "$0")/argv"\necho "FATAL: bad password $PGPASSWORD" >&2\nexit 2\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    tools = PgTools.from_params(params(pg_bin_dir=str(tmp_path), connect_params={"password": SECRET}))
    with pytest.raises(ToolError) as info:
        tools.query("SELECT 1")
    message = str(info.value)
    assert "FATAL: bad password ********" in message, message  # the child got it, the message hides it
    assert SECRET not in message and "s3cret" not in message
    assert "s3cret" not in (tmp_path / "argv").read_text()
    assert "PGPASSWORD" not in os.environ
