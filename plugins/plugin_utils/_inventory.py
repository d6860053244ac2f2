# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The inventory's database variables (``tme_db_*``) as the modules' connection options: the one
place where that mapping is written. Playbooks and roles pass the result through module_defaults on
the action group ``tme.migrations.all``, or as the ``reference`` of the promotion gate."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

# inventory variable -> module option (tme.migrations.connection)
VARIABLES = {
    "tme_db_host": "login_host",
    "tme_db_port": "login_port",
    "tme_db_user": "login_user",
    "tme_db_password": "login_password",
    "tme_db_name": "login_db",
    "tme_db_unix_socket": "login_unix_socket",
    "tme_db_ssl_mode": "ssl_mode",
    "tme_db_ca_cert": "ca_cert",
    "tme_db_container": "container",
    "tme_db_network": "container_network",
    "tme_docker_bin": "docker_bin",
    "tme_pg_bin_dir": "pg_bin_dir",
}
# Options the reference (staging, read for the promotion gate) has no use for.
NOT_FOR_REFERENCE = ("pg_bin_dir",)


def urlquote(value: Any) -> str:
    """A user name or password inside a URL (DATABASE_URL): every reserved character encoded, ``/``,
    ``@``, ``:``, ``%``, ``#``, ``?``, ``&`` and spaces included (Jinja's ``urlencode`` leaves ``/``)."""
    return quote(str(value), safe="")


def connection_options(hostvars: Mapping[str, Any], reference: bool = False) -> dict[str, Any]:
    """``{login_host: ..., login_db: ..., container: ...}`` from one host's variables; unset or empty
    variables are left out, so libpq's environment and the modules' defaults apply."""
    if "tme_db_name" not in hostvars:
        raise KeyError("tme_db_name is not set for this host: every database host of the inventory needs it")
    options: dict[str, Any] = {}
    for variable, option in VARIABLES.items():
        if reference and option in NOT_FOR_REFERENCE:
            continue
        value = hostvars.get(variable) if variable in hostvars else None
        if value not in (None, ""):
            options[option] = value
    return options
