# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The engine against real PostgreSQL servers: locking, retries, failures, repair."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.tme.migrations.plugins.module_utils._engine import (
    Engine,
    EngineError,
    Options,
    retry_budget_ms,
    retry_sleeps,
)
from ansible_collections.tme.migrations.plugins.module_utils._status import migration_status, runner_active
from ansible_collections.tme.migrations.plugins.module_utils._tracking import Tracking
from ansible_collections.tme.migrations.plugins.plugin_utils import _files

from ..conftest import EXAMPLES, Database, write


def migration(body: str, rollback: str = "SELECT 1;") -> str:
    return f"BEGIN;\n{body}\nCOMMIT;\n-- ROLLBACK\n" + "".join(f"-- {line}\n" for line in rollback.splitlines())


def apply(db: Database, directory: Path, **options: Any) -> Any:
    with Engine(db.kwargs, Options(**options)) as engine:
        return engine.apply(_files.load_directory(str(directory)))


def status(db: Database, directory: Path) -> dict[str, str]:
    tracking = Tracking()
    with db.connect() as conn:
        entries = migration_status(
            _files.load_directory(str(directory)),
            tracking.applied(conn),
            tracking.progress(conn),
            runner_active(conn, tracking),
        )
    return {e["version"]: e["status"] for e in entries}


def test_guide_files_apply_through_the_engine_and_with_plain_psql(db: Database, db2: Database) -> None:
    """The examples are in the guide's template: the engine applies them, and so does psql -f."""
    report = apply(db, EXAMPLES)
    assert len(report.applied) == len(_files.load_directory(str(EXAMPLES)))
    assert db2.psql(input=_GUIDE_TABLE).returncode == 0  # the guide's one-time setup
    for path in sorted(EXAMPLES.glob("[0-9]*.sql")):
        if not path.name.endswith(".rollback.sql"):
            result = db2.psql("-f", str(path))
            assert result.returncode == 0, (path.name, result.stderr)
    columns = (
        "SELECT table_name, column_name, data_type, is_nullable, column_default FROM information_schema.columns"
        " WHERE table_schema = 'public' AND table_name NOT LIKE 'schema_migrations%' ORDER BY 1, 2"
    )
    assert db.query(columns) == db2.query(columns)
    assert db.versions() == db2.versions()


_GUIDE_TABLE = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version VARCHAR(255) PRIMARY KEY,
    description TEXT,
    applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    applied_by VARCHAR(100) DEFAULT CURRENT_USER
);
"""


def test_legacy_table_is_adopted_rows_kept_nothing_reapplied(db: Database) -> None:
    # The guide's one-time setup, then three migrations applied by hand with psql.
    assert db.psql(input=_GUIDE_TABLE).returncode == 0
    first_three = sorted(p for p in EXAMPLES.glob("00[1-3]_*.sql"))
    for path in first_three:
        assert db.psql("-f", str(path)).returncode == 0
    db.query("UPDATE schema_migrations SET applied_at = '2025-06-01 10:00'")
    before = db.query("SELECT version, description, applied_at, applied_by FROM schema_migrations ORDER BY 1")
    report = apply(db, EXAMPLES)
    assert report.tracking == "adopted"
    applied_now = [e["version"] for e in report.applied]
    assert applied_now[0].startswith("004_") and not any(v.startswith(("001", "002", "003")) for v in applied_now)
    after = db.query(
        "SELECT version, description, applied_at, applied_by FROM schema_migrations WHERE version < '004' ORDER BY 1"
    )
    assert after == before
    assert db.scalar("SELECT count(*) FROM schema_migrations WHERE checksum IS NULL") == 3
    states = status(db, EXAMPLES)
    assert [states[v] for v in sorted(states)[:3]] == ["unverified"] * 3
    assert set(list(states.values())[3:]) == {"applied"}


def test_a_hand_made_table_the_tool_cannot_write_to_is_refused_unchanged(db: Database) -> None:
    db.query(
        "CREATE TABLE schema_migrations (version VARCHAR(255) PRIMARY KEY, description TEXT,"
        " applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, applied_by TEXT NOT NULL, checksum VARCHAR(32))"
    )
    before = db.query("SELECT column_name FROM information_schema.columns WHERE table_name = 'schema_migrations'")
    with pytest.raises(RuntimeError) as info:
        with Engine(db.kwargs, Options()) as engine:
            engine.setup()
    message = str(info.value)
    assert "public.schema_migrations" in message and "nothing was changed" in message
    assert "column applied_by is NOT NULL without a default" in message
    assert "column checksum is character varying(32)" in message
    after = db.query("SELECT column_name FROM information_schema.columns WHERE table_name = 'schema_migrations'")
    assert after == before and "schema_migrations_audit" not in db.tables()


def test_failure_in_a_batch_keeps_earlier_and_names_file_line_message(db: Database, tmp_path: Path) -> None:
    d = tmp_path / "m"
    write(d, "001_a.sql", migration("CREATE TABLE a (id int);", "DROP TABLE a;"))
    write(d, "002_b.sql", migration("CREATE TABLE b (id int);", "DROP TABLE b;"))
    bad = write(d, "003_c.sql", migration("CREATE TABLE c (id int);\n\nINSERT INTO c VALUES ('x');", "DROP TABLE c;"))
    write(d, "004_d.sql", migration("CREATE TABLE d (id int);", "DROP TABLE d;"))
    with pytest.raises(EngineError) as failure:
        apply(db, d)
    message = failure.value.message
    assert str(bad) in message and "line 4" in message and "invalid input syntax for type integer" in message
    assert db.versions() == ["001_a", "002_b"]
    assert db.tables() == [
        "a",
        "b",
        "schema_migrations",
        "schema_migrations_audit",
        "schema_migrations_progress",
    ]
    audit = db.query("SELECT version, action, outcome FROM schema_migrations_audit ORDER BY id")
    assert audit[-1] == ("003_c", "apply", "failed")
    assert "003_c" not in {row[0] for row in audit if row[2] == "succeeded"}
    write(d, "003_c.sql", migration("CREATE TABLE c (id int);\n\nINSERT INTO c VALUES (1);", "DROP TABLE c;"))
    report = apply(db, d)
    assert [e["version"] for e in report.applied] == ["003_c", "004_d"]
    assert db.versions() == ["001_a", "002_b", "003_c", "004_d"]


def test_two_runners_at_once_apply_each_migration_exactly_once(db: Database, tmp_path: Path) -> None:
    d = tmp_path / "m"
    for i in range(1, 21):
        write(
            d,
            f"{i:03d}_t{i}.sql",
            migration(f"CREATE TABLE t{i} (id int); SELECT pg_sleep(0.01);", f"DROP TABLE t{i};"),
        )
    outcomes: list[Any] = []

    def run() -> None:
        try:
            outcomes.append(apply(db, d))
        except Exception as exc:  # collected and asserted below
            outcomes.append(exc)

    threads = [threading.Thread(target=run), threading.Thread(target=run)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(not isinstance(o, Exception) for o in outcomes), outcomes
    applied = sorted(e["version"] for o in outcomes for e in o.applied)
    assert applied == sorted(f"{i:03d}_t{i}" for i in range(1, 21))
    assert db.scalar("SELECT count(*) FROM schema_migrations_audit WHERE outcome = 'succeeded'") == 20
    assert db.scalar("SELECT count(DISTINCT version) FROM schema_migrations") == 20


def test_lock_conflict_gives_up_names_blocker_and_never_stalls_readers(db: Database, tmp_path: Path) -> None:
    db.query("CREATE TABLE busy (id int); INSERT INTO busy SELECT generate_series(1, 100)")
    d = tmp_path / "m"
    write(d, "001_alter.sql", migration("ALTER TABLE busy ADD COLUMN note text;", "ALTER TABLE busy DROP COLUMN note;"))
    lock_timeout_ms = 300
    blocker = db.connect(application_name="blocking-report")
    blocker.autocommit = False
    blocker.execute("SELECT count(*) FROM busy").fetchone()  # holds ACCESS SHARE until it ends
    blocker_pid = blocker.info.backend_pid
    stalls: list[float] = []
    stop = threading.Event()

    def reader() -> None:
        with db.connect(application_name="reader") as conn:
            while not stop.is_set():
                start = time.monotonic()
                conn.execute("SELECT count(*) FROM busy").fetchone()
                stalls.append(time.monotonic() - start)
                time.sleep(0.01)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        with pytest.raises(EngineError) as failure:
            apply(db, d, lock_timeout_ms=lock_timeout_ms, lock_retries=2, retry_delay=0.2)
    finally:
        stop.set()
        thread.join()
        blocker.rollback()
        blocker.close()
    message = failure.value.message
    assert "lock timeout" in message and "gave up after 2 retries" in message
    assert f"pid {blocker_pid}" in message and "blocking-report" in message and "AccessShareLock on busy" in message
    assert "query 'SELECT count(*) FROM busy'" in message
    assert db.versions() == [] and "note" not in [
        r[0] for r in db.query("SELECT column_name FROM information_schema.columns WHERE table_name = 'busy'")
    ]
    # Readers queue behind the waiting ALTER TABLE, but never longer than its lock_timeout.
    assert len(stalls) > 10
    assert max(stalls) < lock_timeout_ms / 1000 + 0.25, max(stalls)
    assert max(stalls) > lock_timeout_ms / 1000 * 0.5  # they did queue: the measurement saw the wait


def test_default_lock_retries_are_short_waits_growing_sleeps_over_a_minute() -> None:
    options = Options()
    assert (options.lock_timeout_ms, options.lock_retries) == (100, 20)
    sleeps = retry_sleeps(options)
    assert sleeps[:6] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2]) and set(sleeps[6:]) == {5.0}
    assert 60_000 <= retry_budget_ms(options) <= 120_000
    assert retry_sleeps(Options(lock_retries=3, retry_delay=8.0)) == [8.0, 8.0, 8.0]  # a longer first sleep stays


def test_with_the_defaults_a_migration_gets_its_lock_when_the_blocker_leaves(db: Database, tmp_path: Path) -> None:
    db.query("CREATE TABLE busy (id int); INSERT INTO busy SELECT generate_series(1, 100)")
    d = tmp_path / "m"
    write(d, "001_alter.sql", migration("ALTER TABLE busy ADD COLUMN note text;", "ALTER TABLE busy DROP COLUMN note;"))
    blocker = db.connect(application_name="short-report")
    blocker.autocommit = False
    blocker.execute("SELECT count(*) FROM busy").fetchone()
    leave = threading.Timer(1.5, blocker.rollback)
    leave.start()
    try:
        report = apply(db, d)
    finally:
        leave.join()
        blocker.close()
    assert [e["version"] for e in report.applied] == ["001_alter"]
    [warning] = [w for w in report.warnings if "waited for a lock" in w]
    assert warning.startswith("001_alter: waited for a lock at line 2:") and "of 100 ms" in warning


def test_a_concurrent_index_waits_in_one_attempt_not_in_lock_timeouts(db: Database, tmp_path: Path) -> None:
    """CREATE INDEX CONCURRENTLY blocks no reader or writer while it waits: a lock_timeout would only make it
    fail after its build (an invalid index to drop and rebuild). It waits up to the retry time in one go."""
    db.query("CREATE TABLE big (id int, v text); INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 99) g")
    d = tmp_path / "m"
    write(d, "001_idx.sql", "CREATE INDEX CONCURRENTLY idx_big_v ON big (v);\n-- ROLLBACK\n-- DROP INDEX idx_big_v;\n")
    old = db.connect(application_name="old-snapshot")
    old.autocommit = False
    old.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    old.execute("SELECT count(*) FROM big").fetchone()
    leave = threading.Timer(1.0, old.rollback)
    leave.start()
    try:
        # lock_timeout 100 ms, but 4 attempts and their sleeps make 2.1 s: the index waits that long.
        report = apply(db, d, lock_timeout_ms=100, lock_retries=3, retry_delay=0.2)
    finally:
        leave.join()
        old.close()
    entry = report.applied[0]
    assert "repaired" not in entry and not [w for w in report.warnings if "lock" in w], report.warnings
    assert db.scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = 'idx_big_v'::regclass") is True


def test_a_concurrent_index_gives_up_after_the_retry_time_in_one_attempt(db: Database, tmp_path: Path) -> None:
    db.query("CREATE TABLE big (id int, v text); INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 99) g")
    d = tmp_path / "m"
    write(d, "001_idx.sql", "CREATE INDEX CONCURRENTLY idx_big_v ON big (v);\n-- ROLLBACK\n-- DROP INDEX idx_big_v;\n")
    old = db.connect(application_name="old-snapshot")
    old.autocommit = False
    old.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    old.execute("SELECT count(*) FROM big").fetchone()
    slept: list[float] = []
    try:
        with pytest.raises(EngineError) as failure:
            with Engine(
                db.kwargs, Options(lock_timeout_ms=100, lock_retries=2, retry_delay=0.1), sleep=slept.append
            ) as e:
                e.apply(_files.load_directory(str(d)))
    finally:
        old.rollback()
        old.close()
    message = failure.value.message
    assert slept == []  # no retry: the one attempt waited 100 ms x 3 + 0.1 s + 0.2 s
    assert "in one attempt" in message and "old-snapshot" in message and "AccessShareLock on big" in message


def test_runner_lock_timeout_names_the_holder(db: Database, tmp_path: Path) -> None:
    d = tmp_path / "m"
    write(d, "001_a.sql", migration("CREATE TABLE a (id int);", "DROP TABLE a;"))
    key = Tracking().lock_key
    with db.connect(application_name="other-runner") as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (key,))
        with pytest.raises(TimeoutError, match=r"another migration runner .*application_name 'other-runner'"):
            apply(db, d, runner_lock_timeout=0.5)
    assert db.versions() == []


def test_drift_is_reported_and_refused(db: Database, tmp_path: Path) -> None:
    d = tmp_path / "m"
    path = write(d, "001_a.sql", migration("CREATE TABLE a (id int);", "DROP TABLE a;"))
    write(d, "002_b.sql", migration("CREATE TABLE b (id int);", "DROP TABLE b;"))
    apply(db, d)
    path.write_text(migration("CREATE TABLE a (id bigint);", "DROP TABLE a;"))
    write(d, "003_c.sql", migration("CREATE TABLE c (id int);", "DROP TABLE c;"))
    assert status(db, d)["001_a"] == "drifted"
    with pytest.raises(EngineError, match=r"drift: .*001_a\.sql \(001_a\)"):
        apply(db, d)
    assert db.versions() == ["001_a", "002_b"]
    report = apply(db, d, allow_drift=True)
    assert [e["version"] for e in report.applied] == ["003_c"] and report.drifted[0]["version"] == "001_a"


def test_promotion_gate(db: Database, db2: Database, tmp_path: Path) -> None:
    staging, production = db, db2
    d = tmp_path / "m"
    write(d, "001_a.sql", migration("CREATE TABLE a (id int);", "DROP TABLE a;"))
    write(d, "002_b.sql", migration("CREATE TABLE b (id int);", "DROP TABLE b;"))
    apply(staging, d)
    write(d, "003_c.sql", migration("CREATE TABLE c (id int);", "DROP TABLE c;"))
    migrations = _files.load_directory(str(d))
    with (
        Engine(production.kwargs, Options()) as engine,
        pytest.raises(EngineError, match=r"003_c .*not applied on the reference"),
    ):
        engine.apply(migrations, reference_kwargs=staging.kwargs)
    assert production.versions() == []
    # Staging applies another version of 003 than the file production is given.
    staging_dir = tmp_path / "staging"
    staging_dir.mkdir()
    for p in d.iterdir():
        (staging_dir / p.name).write_text(p.read_text())
    write(staging_dir, "003_c.sql", migration("CREATE TABLE c (id bigint);", "DROP TABLE c;"))
    apply(staging, staging_dir)
    with Engine(production.kwargs, Options()) as engine, pytest.raises(EngineError, match=r"003_c .*another version"):
        engine.apply(migrations, reference_kwargs=staging.kwargs)
    assert production.versions() == []
    with Engine(production.kwargs, Options()) as engine:
        engine.apply(migrations[:2], reference_kwargs=staging.kwargs)
    assert production.versions() == ["001_a", "002_b"]


def test_only_safe_stops_at_the_first_breaking_migration(db: Database) -> None:
    with Engine(db.kwargs, Options(only_safe=True)) as engine:
        report = engine.apply(_files.load_directory(str(EXAMPLES)))
    waiting = [w["version"] for w in report.waiting]
    assert waiting[0].startswith("013_") and report.waiting[0]["classification"] == "BREAKING"
    assert all(not v.startswith(("013", "014", "015")) for v in db.versions())
    assert set(waiting) == {v for v in report.pending if v >= "013"}


def test_gating_reads_the_sql_not_only_the_header(db: Database, tmp_path: Path) -> None:
    """Undeclared, or declared SAFE but BREAKING in fact: the detected class gates, and is recorded."""
    write(tmp_path, "001_t.sql", migration("CREATE TABLE t (id int, fax text);", "DROP TABLE t;"))
    write(tmp_path, "002_note.sql", migration("ALTER TABLE t ADD COLUMN note text;", "ALTER TABLE t DROP COLUMN note;"))
    write(
        tmp_path,
        "003_drop_fax.sql",
        "-- Type: SAFE\n" + migration("ALTER TABLE t DROP COLUMN fax;", "ALTER TABLE t ADD COLUMN fax text;"),
    )
    write(tmp_path, "004_more.sql", migration("ALTER TABLE t ADD COLUMN more int;", "ALTER TABLE t DROP COLUMN more;"))
    with Engine(db.kwargs, Options(only_safe=True)) as engine:
        report = engine.apply(_files.load_directory(str(tmp_path)))
    assert db.versions() == ["001_t", "002_note"]
    assert [(w["version"], w["classification"], w["blocked_by"]) for w in report.waiting] == [
        ("003_drop_fax", "BREAKING", None),
        ("004_more", "SAFE", "003_drop_fax"),
    ]
    assert report.waiting[0]["declared"] == "SAFE"
    assert "drops column t.fax" in report.waiting[0]["reasons"][0]
    assert db.query("SELECT version, classification FROM schema_migrations ORDER BY 1") == [
        ("001_t", "SAFE"),
        ("002_note", "SAFE"),
    ]


def test_rollback_last_steps_newest_first_with_stored_copy(db: Database, tmp_path: Path) -> None:
    d = tmp_path / "m"
    write(d, "001_a.sql", migration("CREATE TABLE a (id int);", "DROP TABLE a;"))
    write(d, "002_b.sql", migration("CREATE TABLE b (id int);", "DROP TABLE b;"))
    write(d, "003_c.sql", migration("CREATE TABLE c (id int);", "DROP TABLE c;"))
    apply(db, d)
    (d / "003_c.sql").unlink()  # the file is gone: the copy stored at apply time is used
    with Engine(db.kwargs, Options()) as engine:
        report = engine.rollback(_files.load_directory(str(d)), steps=2)
    assert [(r["version"], r["rollback_source"]) for r in report.rolled_back] == [
        ("003_c", "stored copy"),
        ("002_b", str(d / "002_b.sql") + " (ROLLBACK block)"),
    ]
    assert db.versions() == ["001_a"] and "b" not in db.tables() and "c" not in db.tables()


def test_stored_rollback_keeps_its_statements(db: Database, tmp_path: Path) -> None:
    """The copy stored at apply time runs as the file's statements did: DROP INDEX CONCURRENTLY outside a
    transaction, and a statement ending in a comment keeps its semicolon in the readable copy."""
    d = tmp_path / "m"
    write(d, "001_a.sql", "CREATE TABLE a (id int, note text);\n-- ROLLBACK\n-- DROP TABLE a;\n")
    write(
        d,
        "002_index.sql",
        "CREATE INDEX CONCURRENTLY a_id ON a (id);\nUPDATE a SET note = 'x' -- every row\n;\n"
        "-- ROLLBACK\n-- DROP INDEX CONCURRENTLY a_id;\n-- UPDATE a SET note = NULL -- back\n-- ;\n",
    )
    apply(db, d)
    [(readable,)] = db.query("SELECT rollback_sql FROM schema_migrations WHERE version = '002_index'")
    assert readable == "DROP INDEX CONCURRENTLY a_id;\nUPDATE a SET note = NULL -- back\n;\n"
    db.query("INSERT INTO a VALUES (1, 'y')")
    (d / "002_index.sql").unlink()  # only the stored copy is left
    with Engine(db.kwargs, Options()) as engine:
        report = engine.rollback(_files.load_directory(str(d)), version="002_index")
    assert report.rolled_back[0]["rollback_source"] == "stored copy"
    assert db.versions() == ["001_a"]
    assert db.query("SELECT count(*) FROM pg_indexes WHERE indexname = 'a_id'") == [(0,)]
    assert db.query("SELECT note FROM a") == [(None,)]
    # The readable copy runs with plain psql too (the comment did not swallow the semicolon).
    done = db.psql("-c", "CREATE INDEX a_id ON a (id);")
    assert done.returncode == 0
    done = db.psql(input=readable)
    assert done.returncode == 0, done.stderr


def test_interrupted_concurrent_index_is_reported_and_repaired(db: Database, tmp_path: Path) -> None:
    db.query(
        "CREATE TABLE big (id int, v text); INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 20000) g"
    )
    d = tmp_path / "m"
    write(
        d,
        "001_idx.sql",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_big_v ON big (v);\n"
        "INSERT INTO schema_migrations (version) VALUES ('001_idx') ON CONFLICT (version) DO NOTHING;\n"
        "-- ROLLBACK\n-- DROP INDEX CONCURRENTLY IF EXISTS idx_big_v;\n",
    )
    # An old snapshot makes CREATE INDEX CONCURRENTLY wait after it created the (invalid) index.
    old = db.connect(application_name="old-snapshot")
    old.autocommit = False
    old.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    old.execute("SELECT count(*) FROM big").fetchone()
    outcome: list[Any] = []
    runner = threading.Thread(target=lambda: outcome.append(_catch(lambda: apply(db, d))))
    runner.start()
    with db.connect(admin=True) as admin:
        pid = _wait_for(
            lambda: admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE query LIKE 'CREATE INDEX CONCURRENTLY%%'"
                " AND wait_event_type = 'Lock'"
            ).fetchone()
        )[0]
        # The run dies mid-build, as when its machine is cut off: its backend is killed.
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    runner.join()
    old.rollback()
    old.close()
    assert isinstance(outcome[0], EngineError)
    assert db.scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = 'idx_big_v'::regclass") is False
    assert status(db, d)["001_idx"] == "failed"
    assert db.versions() == []
    report = apply(db, d)
    assert report.applied[0]["repaired"] == ["dropped invalid index public.idx_big_v left by an interrupted build"]
    assert db.scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = 'idx_big_v'::regclass") is True
    assert db.versions() == ["001_idx"] and status(db, d)["001_idx"] == "applied"
    assert db.scalar("SELECT count(*) FROM schema_migrations_progress") == 0


def _catch(fn: Any) -> Any:
    try:
        return fn()
    except Exception as exc:
        return exc


def _wait_for(probe: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")
