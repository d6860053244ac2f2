# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The catalog snapshot on a real server: what kind of table each table is, and function bodies
compared up to whitespace."""

from __future__ import annotations

import psycopg

from ansible_collections.tme.migrations.plugins.module_utils._schema import compare, snapshot

from ..conftest import Database


def test_each_kind_of_table_is_named(db: Database) -> None:
    # A foreign data wrapper with no handler needs no extension; creating one takes a superuser.
    with psycopg.connect(autocommit=True, **db.server.admin_kwargs(db.name)) as admin:
        admin.execute("CREATE FOREIGN DATA WRAPPER tme_dummy_fdw")
        admin.execute("CREATE SERVER tme_dummy_server FOREIGN DATA WRAPPER tme_dummy_fdw")
        admin.execute("CREATE FOREIGN TABLE remote_items (id int NOT NULL, name text) SERVER tme_dummy_server")
        admin.execute("CREATE TABLE plain (id int)")
        admin.execute("CREATE UNLOGGED TABLE scratch (id int)")
        admin.execute("CREATE TABLE events (at date) PARTITION BY RANGE (at)")
    with db.connect() as conn:
        snap = snapshot(conn)
    assert snap["table public.remote_items"] == "foreign table"
    assert snap["table public.plain"] == "table"
    assert snap["table public.scratch"] == "table, unlogged"
    assert snap["table public.events"] == "partitioned table"
    assert snap["column public.remote_items.id"] == "type integer, NOT NULL"


def test_a_foreign_table_rolled_back_to_a_plain_one_is_a_difference(db: Database) -> None:
    with psycopg.connect(autocommit=True, **db.server.admin_kwargs(db.name)) as admin:
        admin.execute("CREATE FOREIGN DATA WRAPPER tme_dummy_fdw")
        admin.execute("CREATE SERVER tme_dummy_server FOREIGN DATA WRAPPER tme_dummy_fdw")
        admin.execute("CREATE FOREIGN TABLE items (id int) SERVER tme_dummy_server")
        before = snapshot(admin)
        admin.execute("DROP FOREIGN TABLE items")
        admin.execute("CREATE TABLE items (id int)")
        after = snapshot(admin)
    assert [d["object"] for d in compare(before, after, "after the rollback")] == ["table public.items"]


FUNCTION = """CREATE OR REPLACE FUNCTION touch(amount integer) RETURNS integer LANGUAGE plpgsql AS $body$
DECLARE
    total integer := 0;
BEGIN
    IF amount > 10 THEN
        total := amount + 1;
    END IF;
    RAISE NOTICE 'total is %', total;
    RETURN total;
END;
$body$"""

# The same function as a rollback might re-create it: other indentation (tabs), lines joined and
# split, trailing spaces and blank lines, CRLF, leading and trailing whitespace in the body.
SAME_OTHER_WHITESPACE = """CREATE OR REPLACE FUNCTION touch(amount integer) RETURNS integer LANGUAGE plpgsql AS $body$

  DECLARE total integer := 0;   \r
BEGIN
\tIF amount > 10
\tTHEN total := amount + 1;\t\t
\tEND IF;
\tRAISE NOTICE 'total is %',
\t\ttotal;
  RETURN total;
END;


$body$"""

PROCEDURE = "CREATE OR REPLACE PROCEDURE reset() LANGUAGE sql AS $$ DELETE FROM t WHERE id > 0 $$"
PROCEDURE_OTHER_WHITESPACE = (
    "CREATE OR REPLACE PROCEDURE reset() LANGUAGE sql AS $$\n\tDELETE FROM t\n\tWHERE id > 0\n$$"
)


def snapshot_after(conn: psycopg.Connection, *statements: str) -> dict[str, str]:
    for statement in statements:
        conn.execute(statement)
    return snapshot(conn)


def test_function_bodies_differing_in_whitespace_only_are_equal(db: Database) -> None:
    with db.connect() as conn:
        conn.execute("CREATE TABLE t (id int)")
        before = snapshot_after(conn, FUNCTION, PROCEDURE)
        after = snapshot_after(conn, SAME_OTHER_WHITESPACE, PROCEDURE_OTHER_WHITESPACE)
        # The server keeps the body as written: the two versions really are different text.
        assert "\t" in conn.execute("SELECT prosrc FROM pg_proc WHERE proname = 'touch'").fetchall()[0][0]
    assert "function public.touch(amount integer)" in before
    assert "function public.reset()" in before
    assert compare(before, after, "after the rollback") == []


def test_function_bodies_differing_otherwise_are_different(db: Database) -> None:
    changes = (
        ("amount + 1", "amount + 2"),  # another token
        ("'total is %'", "'total: %'"),  # another string literal
        ("IF amount > 10 THEN", "IF amount >= 10 THEN"),  # another operator
    )
    with db.connect() as conn:
        before = snapshot_after(conn, FUNCTION)
        for old, new in changes:
            changed = FUNCTION.replace(old, new)
            assert changed != FUNCTION, old
            after = snapshot_after(conn, changed)
            differences = compare(before, after, "after the rollback")
            assert [d["object"] for d in differences] == ["function public.touch(amount integer)"], old
        # Back to the original text, with other whitespace: equal again.
        assert snapshot_after(conn, SAME_OTHER_WHITESPACE) == before
