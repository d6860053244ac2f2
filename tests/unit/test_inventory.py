# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The inventory's tme_db_* variables as connection options, and passwords inside a URL."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import pytest

from ansible_collections.tme.migrations.plugins.plugin_utils._inventory import connection_options, urlquote


def test_connection_options_from_a_hosts_variables() -> None:
    hostvars = {
        "tme_db_name": "tme_portal",
        "tme_db_user": "tme_user",
        "tme_db_password": "s3cret",
        "tme_db_container": "tme-user-postgres-1",
        "tme_db_host": "",  # empty: left out, so the container's address is used
        "tme_pg_bin_dir": "/usr/lib/postgresql/16/bin",
        "unrelated": 1,
    }
    assert connection_options(hostvars) == {
        "login_db": "tme_portal",
        "login_user": "tme_user",
        "login_password": "s3cret",
        "container": "tme-user-postgres-1",
        "pg_bin_dir": "/usr/lib/postgresql/16/bin",
    }
    assert "pg_bin_dir" not in connection_options(hostvars, reference=True)
    with pytest.raises(KeyError, match="tme_db_name is not set"):
        connection_options({"tme_db_user": "x"})


def test_a_password_with_every_reserved_character_survives_a_url() -> None:
    password = "p/a@s:s%w#o?r&d =ü+"
    url = f"postgresql://tme_user:{urlquote(password)}@postgres:5432/tme_portal"
    parts = urlsplit(url)
    assert (parts.hostname, parts.port, parts.path) == ("postgres", 5432, "/tme_portal")
    assert unquote(parts.password or "") == password
