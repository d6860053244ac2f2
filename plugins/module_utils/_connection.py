# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one way to reach PostgreSQL: connection options with community.postgresql's names (what is not
given falls back to libpq's environment: PGHOST, PGPORT, PGUSER, PGPASSWORD, PGPASSFILE, ...), the
database container of the team's server (its address on the docker network; client programs through
``docker exec``, see _pgtools). The scrubber that keeps the password out of every message is _secrets'
``scrub``, imported here for the modules."""

from __future__ import annotations

from typing import Any

from ansible_collections.tme.migrations.plugins.module_utils._docker import ContainerError, container_address
from ansible_collections.tme.migrations.plugins.module_utils._secrets import scrub

try:
    import psycopg

    HAS_PSYCOPG = True
    PSYCOPG_IMPORT_ERROR = None
except ImportError as _exc:  # pragma: no cover - reported by the module
    HAS_PSYCOPG = False
    PSYCOPG_IMPORT_ERROR = _exc

APPLICATION_NAME = "tme.migrations"
# What psycopg raises for anything the server or the connection did (AdminShutdown, a lost connection,
# ...): the modules report it as a failure naming the target, never as a crash.
DatabaseError: type[Exception] = psycopg.Error if HAS_PSYCOPG else ConnectionError


def connection_argument_spec() -> dict[str, Any]:
    """The connection options of every module (one set, so that module_defaults on the action group
    fits them all); see the doc fragment tme.migrations.connection."""
    return dict(
        login_host=dict(type="str", aliases=["host"]),
        login_port=dict(type="int", aliases=["port"]),
        login_user=dict(type="str", aliases=["login"]),
        login_password=dict(type="str", no_log=True),
        login_db=dict(type="str", aliases=["db", "database"]),
        login_unix_socket=dict(type="str", aliases=["unix_socket"]),
        ssl_mode=dict(type="str", choices=["allow", "disable", "prefer", "require", "verify-ca", "verify-full"]),
        ca_cert=dict(type="str", aliases=["ssl_rootcert"]),
        connect_params=dict(type="dict", default={}, no_log=True),  # may carry a password or a key
        container=dict(type="str"),
        container_network=dict(type="str"),
        docker_bin=dict(type="str", default="docker"),
        pg_bin_dir=dict(type="path"),
    )


_NOT_IN_REFERENCE = ("pg_bin_dir",)


def reference_argument_spec() -> dict[str, Any]:
    """The same options as a sub-dictionary: the reference (staging) database of the promotion gate."""
    spec = connection_argument_spec()
    for name in _NOT_IN_REFERENCE:
        spec.pop(name)
    for option in spec.values():
        option.pop("aliases", None)
    return spec


def connect_kwargs(params: dict[str, Any], connect_timeout: int = 10) -> dict[str, Any]:
    """psycopg.connect() keyword arguments. Unset options are left out so libpq's environment applies."""
    kwargs: dict[str, Any] = {"application_name": APPLICATION_NAME, "connect_timeout": connect_timeout}
    mapping = {
        "login_port": "port",
        "login_user": "user",
        "login_password": "password",
        "login_db": "dbname",
        "ssl_mode": "sslmode",
        "ca_cert": "sslrootcert",
    }
    for option, keyword in mapping.items():
        value = params.get(option)
        if value not in (None, ""):
            kwargs[keyword] = value
    # A Unix socket directory takes the host's place, as in libpq; a database container without a
    # published port is reached at its address on its docker network.
    host = params.get("login_unix_socket") or params.get("login_host")
    if not host and params.get("container"):
        try:
            host = container_address(
                params["container"], params.get("container_network"), params.get("docker_bin") or "docker"
            )
        except ContainerError as exc:
            raise ConnectionError(str(exc)) from None
    if host:
        kwargs["host"] = host
    kwargs.update(params.get("connect_params") or {})
    return kwargs


def describe(kwargs: dict[str, Any]) -> str:
    """Where a connection goes, for messages: never the password."""
    host = kwargs.get("host") or "(libpq default host)"
    port = kwargs.get("port") or "(default port)"
    db = kwargs.get("dbname") or "(default database)"
    return f"database {db} on {host}:{port}"


def connect(kwargs: dict[str, Any], autocommit: bool = True) -> psycopg.Connection[Any]:
    """Open a connection; an error names the target but never carries the password.

    No server-side prepared statements (``prepare_threshold=None``): the tool sends few repeated queries,
    and psycopg's bookkeeping of candidates costs more per query than preparing would save (a run of a
    thousand migrations sends three thousand distinct texts); it also keeps a connection through a
    transaction-pooling PgBouncer working."""
    try:
        return psycopg.connect(autocommit=autocommit, prepare_threshold=None, **kwargs)
    except psycopg.OperationalError as exc:
        message = scrub(str(exc).strip(), kwargs.get("password"))
        raise ConnectionError(f"cannot connect to {describe(kwargs)}: {message}") from None
