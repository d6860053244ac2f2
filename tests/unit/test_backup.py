# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Backup verification, retention and the client programs' argv: pure logic, files in tmp_path."""

from __future__ import annotations

import gzip
import os
import time
from pathlib import Path

import pytest

from ansible_collections.tme.migrations.plugins.module_utils._backup import (
    BackupError,
    DumpLock,
    backup_pattern,
    retention,
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
