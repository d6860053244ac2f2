# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Connection options with community.postgresql's names; what is not given falls back to libpq's
environment (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGPASSFILE, PGSSLMODE, ...)."""

from __future__ import annotations

from typing import Any

try:
    import psycopg

    HAS_PSYCOPG = True
    PSYCOPG_IMPORT_ERROR = None
except ImportError as _exc:  # pragma: no cover - reported by the module
    HAS_PSYCOPG = False
    PSYCOPG_IMPORT_ERROR = _exc

APPLICATION_NAME = "tme.migrations"


def connection_argument_spec() -> dict[str, Any]:
    """The connection options of every module; see the doc fragment tme.migrations.connection."""
    return dict(
        login_host=dict(type="str", aliases=["host"]),
        login_port=dict(type="int", aliases=["port"]),
        login_user=dict(type="str", aliases=["login"]),
        login_password=dict(type="str", no_log=True),
        login_db=dict(type="str", aliases=["db", "database"]),
        login_unix_socket=dict(type="str", aliases=["unix_socket"]),
        ssl_mode=dict(type="str", choices=["allow", "disable", "prefer", "require", "verify-ca", "verify-full"]),
        ca_cert=dict(type="str", aliases=["ssl_rootcert"]),
        connect_params=dict(type="dict", default={}),
    )


def reference_argument_spec() -> dict[str, Any]:
    """The same options as a sub-dictionary: the reference (staging) database of the promotion gate."""
    spec = connection_argument_spec()
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
    # A Unix socket directory takes the host's place, as in libpq.
    host = params.get("login_unix_socket") or params.get("login_host")
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
    """Open a connection; an error names the target but never carries the password."""
    try:
        return psycopg.connect(autocommit=autocommit, **kwargs)
    except psycopg.OperationalError as exc:
        message = str(exc).strip()
        password = kwargs.get("password")
        if password:
            message = message.replace(str(password), "********")
        raise ConnectionError(f"cannot connect to {describe(kwargs)}: {message}") from None
