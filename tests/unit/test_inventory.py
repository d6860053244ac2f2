# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The inventory's tme_db_* variables as connection options, and passwords inside a URL."""

from __future__ import annotations

import json
import re
from urllib.parse import quote, quote_plus, unquote, urlsplit

import pytest
from psycopg.conninfo import make_conninfo

from ansible_collections.tme.migrations.plugins.module_utils._secrets import scrub
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


PASSWORD = "p/a@s:s%w#o?r&d 1 ü'\\\"+"


def test_libpq_reads_the_url_urlquote_builds() -> None:
    """What the app and libpq do with DATABASE_URL: the same password back, not a host or path cut at '/'."""
    from psycopg.conninfo import conninfo_to_dict

    url = f"postgresql://{urlquote('tme user')}:{urlquote(PASSWORD)}@postgres:5432/tme_portal"
    assert conninfo_to_dict(url) == {
        "user": "tme user",
        "password": PASSWORD,
        "host": "postgres",
        "port": "5432",
        "dbname": "tme_portal",
    }
    assert "/" not in urlquote("a/b") and urlquote(5432) == "5432"


def lower_hex(encoded: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), encoded)


def forms(secret: str) -> dict[str, str]:
    """Every form a password can take in a URL, a libpq conninfo, JSON or a log."""
    libpq = "'" + secret.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return {
        "raw": secret,
        "quote": quote(secret, safe=""),
        "quote keeping /": quote(secret),
        "quote_plus": quote_plus(secret),
        "quote lower hex": lower_hex(quote(secret, safe="")),
        "quote_plus lower hex": lower_hex(quote_plus(secret)),
        "jinja urlencode": quote(secret, safe="/"),
        "libpq quoted": libpq,
        "json": json.dumps(secret),
        "json utf-8": json.dumps(secret, ensure_ascii=False),
        "psycopg conninfo": make_conninfo(password=secret),
    }


@pytest.mark.parametrize("secret", [PASSWORD, "plain", "ÄÖÜ ß €𝄞", "a b+c%2Fd"])
def test_scrub_removes_every_form(secret: str) -> None:
    for name, form in forms(secret).items():
        text = f"FATAL: could not connect with {form} (DATABASE_URL=postgresql://u:{form}@h/db) end"
        out = scrub(text, secret)
        for other in forms(secret).values():
            if secret not in ("plain",) or other == secret:
                assert other not in out.replace("********", ""), (name, out)
        assert out.endswith(" end") and "********" in out, (name, out)


def test_scrub_keeps_the_rest_and_handles_nothing_to_hide() -> None:
    assert scrub("connection refused", "") == "connection refused"
    assert scrub("connection refused", None) == "connection refused"
    assert scrub("user p and pw", "pw") == "user p and ********"
    # mixed case hex in one URL, as some clients write it
    assert scrub("x:p%2fa%40S%3as@h", "p/a@S:s") == "x:********@h"


def test_scrub_filter_is_registered() -> None:
    from ansible_collections.tme.migrations.plugins.filter.migrations import FilterModule

    filters = FilterModule().filters()
    assert filters["scrub"](f"DATABASE_URL=postgresql://u:{urlquote(PASSWORD)}@h/db", PASSWORD) == (
        "DATABASE_URL=postgresql://u:********@h/db"
    )
    assert filters["urlquote"]("a/b c") == "a%2Fb%20c"
