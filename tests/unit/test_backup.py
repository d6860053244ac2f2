# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Backup verification, retention and the client programs' argv: pure logic, files in tmp_path."""

from __future__ import annotations

import gzip
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.tme.migrations.plugins.module_utils._backup import (
    BackupError,
    DumpLock,
    backup_pattern,
    make_backup,
    remove_stale_partials,
    retention,
    validate_prefix,
    verify,
)
from ansible_collections.tme.migrations.plugins.module_utils._pgtools import PgTools

DUMP = (
    b"--\n-- PostgreSQL database dump\n--\n\nCREATE TABLE public.t (id integer);\n"
    + b"INSERT INTO t VALUES (1);\n" * 200
    + b"\n--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict abc\n\n"
)


def write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def test_a_whole_gzip_dump_verifies(tmp_path: Path) -> None:
    checked = verify(write(tmp_path / "a.sql.gz", gzip.compress(DUMP)), min_size=64)
    assert checked.format == "plain" and "closing line present" in checked.detail and len(checked.sha256) == 64


def test_a_dump_cut_short_does_not_verify(tmp_path: Path) -> None:
    path = write(tmp_path / "cut.sql.gz", gzip.compress(DUMP[: len(DUMP) // 2]))
    with pytest.raises(BackupError, match="cut short") as info:
        verify(path, min_size=16)
    assert path in str(info.value)


def test_a_damaged_or_truncated_gzip_does_not_verify(tmp_path: Path) -> None:
    data = bytearray(gzip.compress(DUMP))
    data[len(data) // 2] ^= 0xFF
    with pytest.raises(BackupError, match="corrupt"):
        verify(write(tmp_path / "flip.sql.gz", bytes(data)), min_size=16)
    with pytest.raises(BackupError, match="corrupt"):
        verify(write(tmp_path / "short.sql.gz", gzip.compress(DUMP)[:-20]), min_size=16)


def test_the_size_floor(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="below the size floor of 4096 bytes"):
        verify(write(tmp_path / "small.sql.gz", gzip.compress(DUMP)), min_size=4096)


def test_plain_sql_needs_its_closing_line(tmp_path: Path) -> None:
    assert verify(write(tmp_path / "x.sql", DUMP), min_size=16).format == "sql"
    with pytest.raises(BackupError, match="not a whole SQL dump"):
        verify(write(tmp_path / "y.sql", b"garbage " * 100), min_size=16)


def make(directory: Path, name: str, age_days: float) -> Path:
    path = directory / name
    path.write_bytes(b"x")
    stamp = time.time() - age_days * 86400
    os.utime(path, (stamp, stamp))
    return path


def test_retention_keeps_the_newest_and_the_young(tmp_path: Path) -> None:
    names = [f"tme_portal_202509{day:02d}T100000Z.sql.gz" for day in range(1, 9)]
    for index, name in enumerate(names):
        make(tmp_path, name, age_days=8 - index)  # day 1 is 8 days old ... day 8 is 1 day old
    other = make(tmp_path, "tme_portal_test_20250901T100000Z.sql.gz", 30)  # another prefix
    foreign = make(tmp_path, "notes.txt", 30)
    newest = str(tmp_path / names[-1])
    assert retention(str(tmp_path), "tme_portal", 0, 0, newest, time.time()) == []
    removed = retention(str(tmp_path), "tme_portal", 3, 5.5, newest, time.time())
    # beyond the newest 3 (days 1-5) and older than 5.5 days (days 1-3, aged 8, 7, 6): both rules allow these
    assert sorted(Path(p).name for p in removed) == names[:3]
    removed = retention(str(tmp_path), "tme_portal", 3, 0, newest, time.time())
    assert sorted(Path(p).name for p in removed) == names[3:5]
    assert other.exists() and foreign.exists()
    assert backup_pattern("tme_portal").match("tme_portal_20250901T100000Z_1.dump")


def test_dump_lock_is_exclusive(tmp_path: Path) -> None:
    first, second = DumpLock(str(tmp_path), "db"), DumpLock(str(tmp_path), "db")
    first.acquire(1)
    with pytest.raises(BackupError, match="another backup holds"):
        second.acquire(0.3, sleep=lambda _s: None)
    first.release()
    second.acquire(1)
    second.release()


def test_argv_never_carries_the_password() -> None:
    host = PgTools(dbname="tme_portal", user="tme_user", password="s3cret", host="127.0.0.1", port=5432, bin_dir="/pg")
    argv = host.argv("pg_dump", ["--format=plain"])
    assert argv == [
        "/pg/pg_dump",
        "-h",
        "127.0.0.1",
        "-p",
        "5432",
        "-U",
        "tme_user",
        "-w",
        "--format=plain",
        "-d",
        "tme_portal",
    ]
    assert host.env()["PGPASSWORD"] == "s3cret"
    inside = PgTools(
        dbname="tme_portal", user="tme_user", password="s3cret", host="db", container="tme-user-postgres-1"
    )
    argv = inside.argv("psql", ["-f", "-"], stdin=True)
    assert argv[:6] == ["docker", "exec", "-i", "-e", "PGPASSWORD", "tme-user-postgres-1"]
    assert "-h" not in argv and all("s3cret" not in a for a in argv)
    assert inside.scrub("FATAL: password s3cret refused") == "FATAL: password ******** refused"


# -- prefix, stale partial files, durability, a failing write ---------------------------------------
@pytest.mark.parametrize("prefix", ["tme_portal", "tme-portal.v2", "db1", "_x", "A" * 200])
def test_good_prefixes(prefix: str) -> None:
    assert validate_prefix(prefix) == prefix


@pytest.mark.parametrize("prefix", ["", ".hidden", "..", "../up", "a/b", "a b", "tmé", "x*", "a\nb", "A" * 201])
def test_bad_prefixes_are_refused_before_anything_is_written(prefix: str, tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="not allowed: use 1 to 200 letters, digits"):
        validate_prefix(prefix)
    target = tmp_path / "backups"
    with pytest.raises(BackupError, match="not allowed"):
        make_backup(FakeTools(dbname="db"), str(target), prefix)
    assert not target.exists()


def test_stale_partials_of_the_prefix_only_are_removed(tmp_path: Path) -> None:
    mine = [
        "tme_portal_20250901T100000Z.sql.gz.partial",
        "tme_portal_20250901T100000Z_2.sql.gz.partial",
        "tme_portal_20250902T100000Z.dump.partial",
    ]
    kept = [
        "tme_portal_test_20250901T100000Z.sql.gz.partial",  # another prefix, which starts like this one
        "tme_portal_20250901T100000Z.sql.gz",  # a verified backup
        "tme_portal_notes.partial",  # not a run's file
        ".tme_portal.lock",
    ]
    for name in mine + kept:
        (tmp_path / name).write_bytes(b"x")
    removed = remove_stale_partials(str(tmp_path), "tme_portal")
    assert [Path(p).name for p in removed] == sorted(mine)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)


class FakeTools(PgTools):
    """pg_dump played by a Python child that prints ``script``'s output; no database to ask."""

    script: str = ""
    procs: list[Any]

    def argv(self, program: str, args: list[str], stdin: bool = False, with_db: bool = True) -> list[str]:
        return [sys.executable, "-c", self.script]

    def query(self, text: str) -> list[str]:
        return []  # no other pg_dump runs

    def popen(self, argv: list[str], stdin: Any = None, stdout: Any = None) -> Any:
        proc = super().popen(argv, stdin=stdin, stdout=stdout)
        self.procs = [*getattr(self, "procs", []), proc]
        return proc


def fake(script: str) -> FakeTools:
    tools = FakeTools(dbname="db")
    tools.script = script
    return tools


def test_a_killed_runs_partial_is_removed_and_reported(tmp_path: Path) -> None:
    tmp_path.chmod(0o700)
    stale = tmp_path / "db_20250901T100000Z.sql.gz.partial"
    stale.write_bytes(b"half a dump")
    tools = fake(f"import sys; sys.stdout.buffer.write({DUMP!r})")
    made = make_backup(tools, str(tmp_path), "db", min_size=64)
    assert made.stale_removed == [str(stale)] and not stale.exists()
    assert Path(made.path).exists() and not list(tmp_path.glob("*.partial"))


def test_file_fsynced_renamed_then_directory_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tmp_path.chmod(0o700)
    calls: list[tuple[str, str]] = []
    real_fsync, real_rename = os.fsync, os.rename

    def spy_fsync(fd: int) -> None:
        calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def spy_rename(src: str, dst: str) -> None:
        calls.append(("rename", f"{src} -> {dst}"))
        real_rename(src, dst)

    monkeypatch.setattr(os, "fsync", spy_fsync)
    monkeypatch.setattr(os, "rename", spy_rename)
    made = make_backup(fake(f"import sys; sys.stdout.buffer.write({DUMP!r})"), str(tmp_path), "db", min_size=64)
    partial = made.path + ".partial"
    assert calls == [
        ("fsync", partial),
        ("rename", f"{partial} -> {made.path}"),
        ("fsync", str(tmp_path)),
    ]


ENDLESS = "import sys\nwhile True:\n    sys.stdout.buffer.write(bytes(range(256)) * 4096)\n"


def test_a_failed_write_stops_pg_dump_and_removes_the_partial(tmp_path: Path) -> None:
    """The file size limit (RLIMIT_FSIZE) makes the write fail as a full disk does: EFBIG, not a traceback."""
    tmp_path.chmod(0o700)
    tools = fake(ENDLESS)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, hard))
    try:
        with pytest.raises(BackupError) as info:
            make_backup(tools, str(tmp_path), "db", min_size=64)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    message = str(info.value)
    assert "no space left to write the backup (File too large)" in message
    assert f"bytes free on the file system of {tmp_path} now" in message and ".sql.gz.partial" in message
    assert "pg_dump was stopped and the partial file removed" in message
    [proc] = tools.procs
    assert proc.returncode is not None and proc.returncode != 0  # terminated and waited for: no zombie
    assert not list(tmp_path.glob("db_*"))


def test_pg_dump_is_stopped_when_the_run_is_interrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An interruption (the module's timeout, ^C) while pg_dump writes: stopped, waited for, no partial."""
    tmp_path.chmod(0o700)
    tools = fake(ENDLESS)
    real_write = gzip.GzipFile.write
    count = {"n": 0}

    def interrupt(self: gzip.GzipFile, data: Any) -> int:
        count["n"] += 1
        if count["n"] == 3:
            raise KeyboardInterrupt
        return real_write(self, data)

    monkeypatch.setattr(gzip.GzipFile, "write", interrupt)
    with pytest.raises(KeyboardInterrupt):
        make_backup(tools, str(tmp_path), "db", min_size=64)
    [proc] = tools.procs
    assert proc.returncode is not None
    assert not list(tmp_path.glob("db_*"))


def test_pg_dumps_error_removes_the_partial_and_is_scrubbed(tmp_path: Path) -> None:
    tmp_path.chmod(0o700)
    tools = fake("import sys; sys.stderr.write('FATAL: password p%2Fw ü failed\\n'); sys.exit(1)")
    tools.password = "p/w ü"
    with pytest.raises(BackupError, match=r"exit 1\): FATAL: password \*{8} failed"):
        make_backup(tools, str(tmp_path), "db", min_size=64)
    assert not list(tmp_path.glob("db_*"))
