# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""tme.migrations.backup and restore on a real server: never beside a running pg_dump, check mode
writes nothing, and a restore that fails half way leaves the database exactly as it was."""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from psycopg import sql

from ansible_collections.tme.migrations.plugins.module_utils._backup import BackupError, make_backup
from ansible_collections.tme.migrations.plugins.module_utils._pgtools import PgTools, ToolError
from ansible_collections.tme.migrations.plugins.module_utils._restore import clean_preamble, restore

from ..conftest import Database
from .test_modules import CONNECTION

PLAY = (
    """
- name: Backup
  hosts: db
  gather_facts: false
  tasks:
    - name: Back up
      tme.migrations.backup:
"""
    + CONNECTION
    + """\
        pg_bin_dir: "{{ bindir }}"
        dest: "{{ dest }}"
      register: made

    - name: Restore
      tme.migrations.restore:
"""
    + CONNECTION
    + """\
        pg_bin_dir: "{{ bindir }}"
        src: "{{ made.path if not ansible_check_mode else existing }}"
"""
)


def tools(db: Database) -> PgTools:
    kw = db.kwargs
    return PgTools(kw["dbname"], kw["user"], kw["password"], kw["host"], kw["port"], str(db.server.bindir))


def test_never_beside_a_running_pg_dump(db: Database, tmp_path: Path) -> None:
    with db.connect(application_name="pg_dump") as other:  # a cron backup-daily.sh, say
        other.execute("SELECT 1")
        with pytest.raises(BackupError, match="another pg_dump is still running after 1s"):
            make_backup(tools(db), str(tmp_path), "db", wait_timeout=1)
    assert list(tmp_path.glob("*.sql.gz*")) == []
    made = make_backup(tools(db), str(tmp_path), "db", wait_timeout=5)
    assert Path(made.path).exists() and made.waited_s < 5


def test_check_mode_writes_nothing_then_real_run(db: Database, tmp_path: Path, playbook: Any) -> None:
    db.query("CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2)")
    existing = make_backup(tools(db), str(tmp_path / "seed"), "db").path
    p = db.params
    hostvars = {
        "db": {
            "h": p["login_host"],
            "p": p["login_port"],
            "u": p["login_user"],
            "pw": p["login_password"],
            "d": p["login_db"],
            "bindir": str(db.server.bindir),
            "dest": str(tmp_path / "backups"),
            "existing": existing,
        }
    }
    db.query("INSERT INTO t VALUES (3)")
    check = playbook(PLAY, hostvars, check=True)
    assert check.rc == 0, check.stdout
    assert check.result("Back up")["changed"] is True and not (tmp_path / "backups").exists()
    assert check.result("Restore")["changed"] is True and "closing line present" in check.result("Restore")["verified"]
    assert db.scalar("SELECT count(*) FROM t") == 3  # untouched
    assert p["login_password"] not in check.stdout

    real = playbook(PLAY, hostvars)
    assert real.rc == 0, real.stdout
    assert Path(real.result("Back up")["path"]).exists()
    assert db.scalar("SELECT count(*) FROM t") == 3  # restored from the backup just taken


def test_a_restore_that_fails_half_way_changes_nothing(db: Database, tmp_path: Path) -> None:
    db.query("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2)")
    made = make_backup(tools(db), str(tmp_path), "db").path
    db.query("INSERT INTO t VALUES (3); CREATE TABLE later (x int)")
    text = gzip.decompress(Path(made).read_bytes()).decode()
    broken = text.replace("COPY public.t (id) FROM stdin;\n1\n2\n", "COPY public.t (id) FROM stdin;\n1\n1\n")
    assert broken != text
    bad = tmp_path / "duplicate_key.sql.gz"
    bad.write_bytes(gzip.compress(broken.encode()))
    with pytest.raises(ToolError, match="rolled back") as info:
        restore(tools(db), str(bad))
    assert "is duplicated" in str(info.value) and db.kwargs["password"] not in str(info.value)
    assert db.scalar("SELECT count(*) FROM t") == 3 and "later" in db.tables()  # exactly as it was


def test_custom_format_verified_and_restored(db: Database, tmp_path: Path) -> None:
    db.query("CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2)")
    made = make_backup(tools(db), str(tmp_path), "db", fmt="custom")
    assert made.path.endswith(".dump") and made.verified.startswith("pg_restore --list read")
    db.query("DELETE FROM t")
    assert restore(tools(db), made.path).format == "custom"
    assert db.scalar("SELECT count(*) FROM t") == 2
    damaged = tmp_path / "damaged.dump"
    damaged.write_bytes(Path(made.path).read_bytes()[:300])
    with pytest.raises(BackupError, match="pg_restore --list cannot read it"):
        restore(tools(db), str(damaged), min_size=16)
    assert db.scalar("SELECT count(*) FROM t") == 2


# -- the team's server: the login role is the bootstrap superuser, the backups are the guide's ----
# backup-daily.sh: pg_dump -U tme_user tme_portal | gzip, as the postgres image's POSTGRES_USER (the
# bootstrap superuser, which owns everything), without --clean: CREATE statements only.
def superuser_tools(db: Database) -> PgTools:
    kw = db.server.admin_kwargs(db.name)
    return PgTools(db.name, kw["user"], None, kw["host"], kw["port"], str(db.server.bindir))


def guide_dump(db: Database, path: Path, superuser: bool = True) -> str:
    """backup-daily.sh's way: plain pg_dump, no --clean, through gzip."""
    kw = db.server.admin_kwargs(db.name) if superuser else db.kwargs
    env = dict(os.environ, PGPASSWORD=kw.get("password") or "")
    argv = [str(db.server.bindir / "pg_dump"), "-h", str(kw["host"]), "-p", str(kw["port"]), "-U", kw["user"], db.name]
    done = subprocess.run(argv, env=env, capture_output=True, check=True)  # noqa: S603 - argv list
    assert b"DROP " not in done.stdout and b"CREATE TABLE public.t " in done.stdout
    path.write_bytes(gzip.compress(done.stdout))
    return str(path)


def build(db: Database, owner: str | None = None) -> None:
    """Two schemas, an extension used by an index, a view, a sequence, a non-default public ACL."""
    with db.connect(admin=True) as conn:
        conn.execute(
            "CREATE EXTENSION IF NOT EXISTS pg_trgm;"
            "CREATE TABLE t (id serial PRIMARY KEY, name text NOT NULL);"
            "INSERT INTO t (name) SELECT 'client ' || g FROM generate_series(1, 50) g;"
            "CREATE INDEX t_name_trgm ON t USING gin (name gin_trgm_ops);"
            "CREATE VIEW t_even AS SELECT id, name FROM t WHERE id % 2 = 0;"
            "CREATE SCHEMA reporting;"
            "CREATE TABLE reporting.totals (day date PRIMARY KEY, n int);"
            "INSERT INTO reporting.totals SELECT d::date, 7 FROM generate_series('2026-01-01'::date, '2026-01-10', "
            "'1 day') d;"
            "COMMENT ON SCHEMA public IS 'the portal''s tables'"
        )
        conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(db.kwargs["user"])))
        if owner:
            for table in ("t", "reporting.totals"):
                conn.execute(
                    sql.SQL("ALTER TABLE {} OWNER TO {}").format(
                        sql.Identifier(*table.split(".")), sql.Identifier(owner)
                    )
                )


def fingerprint(db: Database) -> dict[str, Any]:
    """Schema and data as the superuser sees them: tables, rows (count and md5), indexes, extensions, public."""
    with db.connect(admin=True) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name, table_type FROM information_schema.tables"
            " WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
        ).fetchall()
        rows = {}
        for schema, name, kind in tables:
            if kind == "BASE TABLE":
                rows[f"{schema}.{name}"] = conn.execute(
                    sql.SQL(
                        "SELECT count(*), md5(coalesce(string_agg(r::text, ',' ORDER BY r::text), '')) FROM {} r"
                    ).format(sql.Identifier(schema, name))
                ).fetchone()
        return {
            "tables": tables,
            "rows": rows,
            "indexes": conn.execute(
                "SELECT schemaname, indexname, indexdef FROM pg_indexes"
                " WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
            ).fetchall(),
            "extensions": conn.execute(
                "SELECT e.extname, n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
                " ORDER BY 1"
            ).fetchall(),
            "schemas": conn.execute(
                "SELECT nspname, pg_get_userbyid(nspowner), obj_description(oid, 'pg_namespace'),"
                " ARRAY(SELECT a::text FROM unnest(coalesce(nspacl, '{}')) a ORDER BY 1)"
                " FROM pg_namespace WHERE nspname !~ '^pg_' AND nspname <> 'information_schema' ORDER BY 1"
            ).fetchall(),
            "owners": conn.execute(
                "SELECT c.oid::regclass::text, pg_get_userbyid(c.relowner) FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema' ORDER BY 1"
            ).fetchall(),
            "large_objects": conn.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone(),
        }


def change(db: Database) -> None:
    """What happens after the backup: a migration, data written and lost."""
    with db.connect(admin=True) as conn:
        conn.execute(
            "DELETE FROM t WHERE id % 3 = 0; INSERT INTO t (name) VALUES ('after the backup');"
            "UPDATE reporting.totals SET n = n + 1;"
            "CREATE TABLE later (x int); CREATE SCHEMA later_schema; CREATE TABLE later_schema.y (y int);"
            "CREATE VIEW reporting.later_view AS SELECT count(*) FROM t;"
            "COMMENT ON SCHEMA public IS 'changed'"
        )
        conn.execute(sql.SQL("REVOKE CREATE ON SCHEMA public FROM {}").format(sql.Identifier(db.kwargs["user"])))


def test_superuser_clean_restores_the_guides_dump(db: Database, tmp_path: Path) -> None:
    build(db)
    dump = guide_dump(db, tmp_path / "tme_portal_20260101.sql.gz")
    before = fingerprint(db)
    assert before["rows"]["public.t"][0] == 50 and ("pg_trgm", "public") in before["extensions"]
    change(db)
    assert fingerprint(db) != before

    result = restore(superuser_tools(db), dump)  # clean=true: the default
    assert result.cleaned and result.format == "plain"
    after = fingerprint(db)
    assert after == before  # rows, schema, extension, index, public's owner, ACL and comment
    assert "later" not in str(after["tables"]) and "t_name_trgm" in str(after["indexes"])
    with db.connect() as conn:  # the application role's privileges on public came back
        conn.execute("CREATE TABLE app_can_create (x int)")

    restore(superuser_tools(db), dump)  # again, over what it restored: the table made since goes
    assert fingerprint(db) == before


def test_superuser_clean_restore_that_fails_changes_nothing(db: Database, tmp_path: Path) -> None:
    role = "gone_" + db.name
    with db.connect(admin=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(role)))
    build(db, owner=role)
    dump = guide_dump(db, tmp_path / "owned_by_a_role_dropped_since.sql.gz")
    with db.connect(admin=True) as conn:  # the dump's ALTER TABLE ... OWNER TO that role will fail
        conn.execute(sql.SQL("REASSIGN OWNED BY {} TO postgres").format(sql.Identifier(role)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    change(db)
    before = fingerprint(db)
    with pytest.raises(ToolError, match="rolled back") as info:
        restore(superuser_tools(db), dump)
    assert "does not exist" in str(info.value) and "no DROP statements" not in str(info.value)
    assert fingerprint(db) == before  # the schemas dropped by the preamble are all back, data too
    assert ("public", "later", "BASE TABLE") in before["tables"]


@pytest.mark.parametrize("superuser", [True, False], ids=["superuser", "application-role"])
def test_clean_false_over_existing_objects_says_why_and_changes_nothing(
    db: Database, db2: Database, tmp_path: Path, superuser: bool
) -> None:
    if superuser:
        build(db)
    else:
        db.query("CREATE TABLE t (id serial PRIMARY KEY, name text NOT NULL); INSERT INTO t (name) VALUES ('a')")
    dump = guide_dump(db, tmp_path / "guide.sql.gz", superuser=superuser)
    with db.connect(admin=superuser) as conn:
        conn.execute("INSERT INTO t (name) VALUES ('after the backup')")
    before = fingerprint(db)
    target = superuser_tools(db) if superuser else tools(db)
    with pytest.raises(ToolError, match="rolled back") as info:
        restore(target, dump, clean=False)
    message = str(info.value)
    assert "already exists" in message
    assert "the dump has no DROP statements (pg_dump ran without --clean)" in message
    assert "clean=true restores it" in message
    assert db.kwargs["password"] not in message
    assert fingerprint(db) == before

    # clean=false into an empty database restores it as it is
    empty = superuser_tools(db2) if superuser else tools(db2)
    assert restore(empty, dump, clean=False).cleaned is False
    restored = fingerprint(db2)
    assert restored["rows"]["public.t"][0] == before["rows"]["public.t"][0] - 1

    # and clean=true restores over the existing objects
    restore(target, dump)
    assert fingerprint(db)["rows"] == restored["rows"]


def test_application_role_clean_restores_the_guides_dump(db: Database, tmp_path: Path) -> None:
    """Not a superuser: DROP OWNED BY CURRENT_USER, then the dump made without --clean."""
    db.query("CREATE TABLE t (id serial PRIMARY KEY, name text); INSERT INTO t (name) VALUES ('a'), ('b')")
    dump = guide_dump(db, tmp_path / "guide.sql.gz", superuser=False)
    before = fingerprint(db)
    db.query("DELETE FROM t; CREATE TABLE later (x int)")
    restore(tools(db), dump)
    assert fingerprint(db) == before and "later" not in db.tables()


def test_superuser_custom_format(db: Database, tmp_path: Path) -> None:
    build(db)
    with db.connect(admin=True) as conn:
        conn.execute("SELECT lo_from_bytea(0, 'a large object')")
    made = make_backup(superuser_tools(db), str(tmp_path), "db", fmt="custom").path
    before = fingerprint(db)
    assert before["large_objects"] == (1,)
    change(db)
    with db.connect(admin=True) as conn:
        conn.execute("SELECT lo_from_bytea(0, 'created after the backup')")

    with pytest.raises(ToolError, match="rolled back") as info:
        restore(superuser_tools(db), made, clean=False)
    assert "already exists" in str(info.value) and "clean=true restores it" in str(info.value)
    changed = fingerprint(db)
    assert changed != before and changed["large_objects"] == (2,)

    assert restore(superuser_tools(db), made).format == "custom"
    after = fingerprint(db)
    assert after == before  # later objects gone, the large object the backup's only
    assert "later" not in str(after["tables"])


def test_superuser_custom_format_that_fails_changes_nothing(db: Database, tmp_path: Path) -> None:
    role = "gone_" + db.name
    with db.connect(admin=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(role)))
    build(db, owner=role)
    made = make_backup(superuser_tools(db), str(tmp_path), "db", fmt="custom").path
    with db.connect(admin=True) as conn:
        conn.execute(sql.SQL("REASSIGN OWNED BY {} TO postgres").format(sql.Identifier(role)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    change(db)
    before = fingerprint(db)
    with pytest.raises(ToolError, match="rolled back") as info:
        restore(superuser_tools(db), made)
    assert "does not exist" in str(info.value)
    assert fingerprint(db) == before


def test_plain_dump_with_large_objects_is_refused(db: Database, tmp_path: Path) -> None:
    build(db)
    with db.connect(admin=True) as conn:
        conn.execute("SELECT lo_from_bytea(0, 'a large object')")
    dump = guide_dump(db, tmp_path / "with_large_objects.sql.gz")
    change(db)
    before = fingerprint(db)
    with pytest.raises(BackupError, match="large objects"):
        restore(superuser_tools(db), dump)
    assert fingerprint(db) == before


def test_superuser_preamble_empties_the_database_and_recreates_public_exactly(db: Database) -> None:
    """The clean preamble alone, in a transaction rolled back: public's owner, ACL (grantors too) and comment."""
    app, r1, r2 = db.kwargs["user"], "r1_" + db.name, "r2_" + db.name
    ident = sql.Identifier
    public = (
        "SELECT pg_get_userbyid(nspowner), ARRAY(SELECT a::text FROM unnest(nspacl) a ORDER BY 1),"
        " obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = 'public'"
    )
    with db.connect(admin=True) as conn:
        for statement in (
            sql.SQL("CREATE ROLE {}; CREATE ROLE {}").format(ident(r1), ident(r2)),
            sql.SQL("ALTER SCHEMA public OWNER TO {}").format(ident(app)),
            sql.SQL("GRANT USAGE, CREATE ON SCHEMA public TO {} WITH GRANT OPTION").format(ident(r1)),
            sql.SQL("SET ROLE {}; GRANT USAGE ON SCHEMA public TO {}; RESET ROLE").format(ident(r1), ident(r2)),
            sql.SQL("REVOKE CREATE ON SCHEMA public FROM {}").format(ident(app)),
            sql.SQL(
                "COMMENT ON SCHEMA public IS 'kept'; CREATE EXTENSION pg_trgm; CREATE SCHEMA s;"
                " CREATE TABLE s.x (i int); CREATE TABLE public.y (i int); SELECT lo_from_bytea(0, 'x');"
                " CREATE PUBLICATION p FOR TABLE public.y"
            ),
        ):
            conn.execute(statement)
        try:
            expected = conn.execute(public).fetchone()
            assert expected[0] == app and any(item.endswith(f"/{r1}") for item in expected[1])
            with conn.transaction(force_rollback=True):
                conn.execute(clean_preamble(superuser=True).decode())
                assert conn.execute(public).fetchone() == expected
                assert conn.execute(
                    "SELECT nspname FROM pg_namespace WHERE nspname !~ '^pg_' AND nspname <> 'information_schema'"
                ).fetchall() == [("public",)]
                assert conn.execute(
                    "SELECT (SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm'),"
                    " (SELECT count(*) FROM pg_largeobject_metadata), (SELECT count(*) FROM pg_publication),"
                    " (SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace)"
                ).fetchone() == (0, 0, 0, 0)
            assert conn.execute(public).fetchone() == expected
        finally:
            conn.execute(sql.SQL("DROP OWNED BY {}, {}").format(ident(r1), ident(r2)))
            conn.execute(sql.SQL("DROP ROLE {}, {}").format(ident(r1), ident(r2)))


# -- a full disk, a killed run, a bad prefix ---------------------------------------------------------
@contextlib.contextmanager
def tiny_filesystem(path: Path, size: str = "64k") -> Iterator[Path]:
    """A tmpfs of ``size`` at ``path``: a disk that really fills up. Needs root (mount)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs to fill up needs root")
    path.mkdir()
    done = subprocess.run(  # noqa: S603 - argv list
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)  # noqa: S603, S607 - argv list


def pg_dump_sessions(db: Database) -> list[Any]:
    with db.connect(admin=True) as conn:
        return conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'pg_dump' AND datname = %s", (db.name,)
        ).fetchall()


def wait_for_no_pg_dump(db: Database, seconds: float = 10) -> list[Any]:
    deadline = time.monotonic() + seconds
    while (sessions := pg_dump_sessions(db)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return sessions


def test_a_full_disk_is_a_clear_error_and_leaves_nothing(db: Database, tmp_path: Path) -> None:
    # About 640 kB of hexadecimal text: some 300 kB gzip-compressed, far more than the 64 kB disk.
    db.query(
        "CREATE TABLE big (id int, v text);"
        "INSERT INTO big SELECT g, md5(random()::text) || md5(random()::text) FROM generate_series(1, 10000) g"
    )
    with tiny_filesystem(tmp_path / "disk") as disk:
        with pytest.raises(BackupError) as info:
            make_backup(tools(db), str(disk), "db")
        message = str(info.value)
        assert re.search(rf"^{re.escape(str(disk))}/db_\d{{8}}T\d{{6}}Z\.sql\.gz\.partial: no space left", message)
        assert re.search(rf"(\d+) bytes free on the file system of {re.escape(str(disk))} now", message)
        assert "pg_dump was stopped and the partial file removed" in message
        assert [p.name for p in disk.iterdir()] == [".db.lock"]  # no partial file
        assert wait_for_no_pg_dump(db) == []  # pg_dump was stopped, its session ended
        assert db.kwargs["password"] not in message

        db.query("DROP TABLE big")  # what fits on the disk is backed up there afterwards
        made = make_backup(tools(db), str(disk), "db", min_size=64)
        assert Path(made.path).exists() and made.stale_removed == []


KILLED_RUN = """
import sys
sys.path.insert(0, {collections!r})
from ansible_collections.tme.migrations.plugins.module_utils._backup import make_backup
from ansible_collections.tme.migrations.plugins.module_utils._pgtools import PgTools
make_backup(PgTools(**{tools!r}), {dest!r}, "db")
"""


def test_a_killed_runs_partial_file_is_removed_by_the_next_run(db: Database, tmp_path: Path) -> None:
    """A run killed with SIGKILL (the OOM killer, a reboot) leaves its .partial file and releases its
    lock; the next run of the prefix removes the file and reports it."""
    import signal

    from ..conftest import REPO

    db.query("CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
    dest = tmp_path / "backups"
    t = tools(db)
    spec = {"dbname": t.dbname, "user": t.user, "password": t.password, "host": t.host, "port": t.port}
    spec["bin_dir"] = t.bin_dir
    script = KILLED_RUN.format(collections=str(REPO / ".collections"), tools=spec, dest=str(dest))
    with db.connect(admin=True) as blocker:
        blocker.execute("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE")  # pg_dump waits for its lock on t
        run = subprocess.Popen([sys.executable, "-c", script])  # noqa: S603 - argv list
        try:
            deadline = time.monotonic() + 30
            while not pg_dump_sessions(db) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert pg_dump_sessions(db), "pg_dump did not start"
            [partial] = dest.glob("db_*.sql.gz.partial")
            os.kill(run.pid, signal.SIGKILL)
            run.wait()
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
        # The killed run's pg_dump, now an orphan, ends with its session.
        for (pid,) in pg_dump_sessions(db):
            blocker.execute("SELECT pg_terminate_backend(%s)", (pid,))
        blocker.execute("ROLLBACK")
    assert wait_for_no_pg_dump(db) == []
    assert partial.exists()  # what a killed run leaves

    made = make_backup(t, str(dest), "db", wait_timeout=30)
    assert made.stale_removed == [str(partial)] and not partial.exists()
    assert sorted(p.name for p in dest.iterdir()) == sorted([".db.lock", Path(made.path).name])


BAD_PREFIX = (
    """
- name: Backup
  hosts: db
  gather_facts: false
  tasks:
    - name: Back up
      tme.migrations.backup:
"""
    + CONNECTION
    + """\
        pg_bin_dir: "{{ bindir }}"
        dest: "{{ dest }}"
        prefix: "{{ prefix }}"
"""
)


@pytest.mark.parametrize("prefix", ["../elsewhere", ".hidden", "tme portal"])
def test_a_bad_prefix_fails_the_task_before_anything_is_written(
    prefix: str, db: Database, tmp_path: Path, playbook: Any
) -> None:
    p = db.params
    dest = tmp_path / "backups"
    hostvars = {
        "db": {
            "h": p["login_host"],
            "p": p["login_port"],
            "u": p["login_user"],
            "pw": p["login_password"],
            "d": p["login_db"],
            "bindir": str(db.server.bindir),
            "dest": str(dest),
            "prefix": prefix,
        }
    }
    for check in (True, False):
        run = playbook(BAD_PREFIX, hostvars, check=check)
        assert run.rc != 0
        result = run.result("Back up")
        assert f"backup prefix {prefix!r} is not allowed" in result["msg"], result
        assert "Traceback" not in run.stdout
    assert not dest.exists() and not (tmp_path / "elsewhere").exists()


# -- the password only in connect_params: pg_dump and psql get it too (PGPASSWORD), as psycopg does --
CONNECT_PARAMS_PASSWORD = """
- name: Backup with the password in connect_params only
  hosts: db
  gather_facts: false
  tasks:
    - name: Back up
      tme.migrations.backup:
        login_host: "{{ h }}"
        login_port: "{{ p }}"
        login_user: "{{ u }}"
        login_db: "{{ d }}"
        connect_params:
          password: "{{ pw }}"
        pg_bin_dir: "{{ bindir }}"
        dest: "{{ dest }}"
      register: made

    - name: Restore
      tme.migrations.restore:
        login_host: "{{ h }}"
        login_port: "{{ p }}"
        login_user: "{{ u }}"
        login_db: "{{ d }}"
        connect_params:
          password: "{{ pw }}"
        pg_bin_dir: "{{ bindir }}"
        src: "{{ made.path }}"
"""


def test_backup_and_restore_with_the_password_only_in_connect_params(
    db: Database, tmp_path: Path, playbook: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.delenv("PGPASSFILE", raising=False)
    db.query("CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2)")
    p = db.params
    hostvars = {
        "db": {
            "h": p["login_host"],
            "p": p["login_port"],
            "u": p["login_user"],
            "pw": p["login_password"],
            "d": p["login_db"],
            "bindir": str(db.server.bindir),
            "dest": str(tmp_path / "backups"),
        }
    }
    run = playbook(CONNECT_PARAMS_PASSWORD, hostvars)
    assert run.rc == 0, run.stdout
    made = run.result("Back up")
    assert made["changed"] is True and Path(made["path"]).exists()
    assert b"CREATE TABLE public.t " in gzip.decompress(Path(made["path"]).read_bytes())
    assert run.result("Restore")["changed"] is True  # psql and pg_restore reached it too
    assert db.scalar("SELECT count(*) FROM t") == 2
    assert p["login_password"] not in run.stdout
