# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Verified backups of one database: pg_dump, compressed, 0600 in a 0700 directory, verified,
never two at once, old ones removed by the retention rules.

Formats:

* ``plain`` (default): pg_dump's SQL with ``--clean --if-exists``, gzip-compressed here
  (``NAME_YYYYmmddTHHMMSSZ.sql.gz``). Restorable the guide's way (``zcat | psql``). Verified by
  reading the whole gzip stream (its CRC), a size floor, and pg_dump's closing line
  ``-- PostgreSQL database dump complete``, which a dump cut short lacks.
* ``custom``: ``pg_dump -Fc`` (compressed by pg_dump, ``.dump``). Verified by ``pg_restore --list``
  reading its table of contents, and the size floor.

The file is written under a temporary name (``NAME.partial``), fsynced, verified, renamed, and the
directory fsynced: a backup file with the final name is always a complete, verified, durable one.
Whatever fails (a full disk, pg_dump's error, an interruption), pg_dump is stopped and waited for and
the partial file removed; the ``.partial`` files a killed run left behind are removed by the next run
of the same prefix, which holds the prefix's lock and so knows no live run owns them.
"""

from __future__ import annotations

import errno
import fcntl
import gzip
import hashlib
import os
import re
import subprocess
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from ansible_collections.tme.migrations.plugins.module_utils._pgtools import PgTools, ToolError

DUMP_COMPLETE = b"-- PostgreSQL database dump complete"
CUSTOM_MAGIC = b"PGDMP"
GZIP_MAGIC = b"\x1f\x8b"
SUFFIXES = {"plain": ".sql.gz", "custom": ".dump"}
CHUNK = 1 << 20
# A prefix is part of file names that retention deletes by pattern: letters, digits, '.', '_', '-',
# not starting with '.' (no hidden files, no '..', no path separator).
PREFIX_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$")
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class BackupError(Exception):
    """The backup could not be made or does not verify; the message names the file or database."""


@dataclass
class Verified:
    path: str
    format: str
    size: int
    sha256: str
    detail: str


@dataclass
class BackupResult:
    path: str
    format: str
    size: int
    sha256: str
    verified: str
    database: str
    duration_s: float
    waited_s: float = 0.0
    removed: list[str] = field(default_factory=list)
    stale_removed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def detect_format(path: str) -> str:
    with open(path, "rb") as handle:
        head = handle.read(5)
    if head.startswith(GZIP_MAGIC):
        return "plain"
    if head.startswith(CUSTOM_MAGIC):
        return "custom"
    return "sql"


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: str, min_size: int = 256, tools: PgTools | None = None) -> Verified:
    """Check a backup file end to end; BackupError names the file and what is wrong with it."""
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise BackupError(f"{path}: cannot read the backup: {exc.strerror}") from None
    if size < min_size:
        raise BackupError(f"{path}: {size} bytes, below the size floor of {min_size} bytes: not a whole backup")
    kind = detect_format(path)
    if kind == "plain":
        detail = _verify_gzip_sql(path)
    elif kind == "custom":
        if tools is None:
            raise BackupError(f"{path}: a custom-format dump needs pg_restore to be verified")
        detail = _verify_custom(path, tools)
    else:
        detail = _verify_sql(path)
    return Verified(path, kind, size, _sha256(path), detail)


def _tail_complete(tail: bytes) -> bool:
    return DUMP_COMPLETE in tail[-4096:]


def _verify_gzip_sql(path: str) -> str:
    tail = b""
    total = 0
    try:
        with gzip.open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(CHUNK), b""):
                total += len(chunk)
                tail = (tail + chunk)[-8192:]
    except (OSError, EOFError, zlib.error) as exc:
        raise BackupError(f"{path}: the gzip stream is damaged ({exc}): the backup is corrupt") from None
    if not _tail_complete(tail):
        raise BackupError(
            f"{path}: pg_dump's closing line '{DUMP_COMPLETE.decode()}' is missing: the dump was cut short"
        )
    return f"gzip stream intact, {total} bytes of SQL, pg_dump's closing line present"


def _verify_sql(path: str) -> str:
    with open(path, "rb") as handle:
        handle.seek(max(os.path.getsize(path) - 8192, 0))
        tail = handle.read()
    if not _tail_complete(tail):
        raise BackupError(f"{path}: not a gzip or custom dump, and no pg_dump closing line: not a whole SQL dump")
    return "plain SQL, pg_dump's closing line present"


def _verify_custom(path: str, tools: PgTools) -> str:
    """pg_restore --list reads the dump's table of contents (in a container, from standard input)."""
    try:
        if tools.container:
            with open(path, "rb") as handle:
                out = tools.run("pg_restore", ["--list"], data=handle.read(), with_db=False)
        else:
            out = tools.run("pg_restore", ["--list", path], with_db=False)
    except ToolError as exc:
        raise BackupError(f"{path}: pg_restore --list cannot read it: {exc}") from None
    entries = [line for line in out.splitlines() if line and not line.startswith(";")]
    return f"pg_restore --list read {len(entries)} entries"


# -- making one ------------------------------------------------------------------------------
def validate_prefix(prefix: str) -> str:
    """The prefix, or BackupError saying what a prefix may hold."""
    if not isinstance(prefix, str) or not PREFIX_RE.match(prefix):
        raise BackupError(
            f"backup prefix {prefix!r} is not allowed: use 1 to 200 letters, digits, '.', '_' or '-', "
            "not starting with '.'"
        )
    return prefix


def backup_name(prefix: str, fmt: str, now: datetime) -> str:
    return f"{prefix}_{now.strftime('%Y%m%dT%H%M%SZ')}{SUFFIXES[fmt]}"


def backup_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(r"^" + re.escape(prefix) + r"_(\d{8}T\d{6}Z)(?:_\d+)?(\.sql\.gz|\.dump)$")


def partial_pattern(prefix: str) -> re.Pattern[str]:
    """The temporary files of this prefix's runs: ``PREFIX_YYYYmmddTHHMMSSZ[_N].sql.gz.partial``."""
    return re.compile(r"^" + re.escape(prefix) + r"_(\d{8}T\d{6}Z)(?:_\d+)?(\.sql\.gz|\.dump)\.partial$")


def remove_stale_partials(directory: str, prefix: str) -> list[str]:
    """Remove the ``.partial`` files of this prefix: call it holding the prefix's DumpLock, so that no
    live run owns them (a run killed with SIGKILL, or by a reboot, leaves its partial file)."""
    pattern = partial_pattern(prefix)
    removed = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if pattern.match(name) and os.path.isfile(path) and not os.path.islink(path):
            os.remove(path)
            removed.append(path)
    return removed


def free_bytes(directory: str) -> int:
    """Bytes free for an unprivileged writer on the file system of ``directory``."""
    try:
        st = os.statvfs(directory)
    except OSError:
        return -1
    return st.f_bavail * st.f_frsize


def fsync_directory(directory: str) -> None:
    """Make a rename in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_directory(path: str) -> bool:
    """The backup directory, 0700; returns whether it was created or its mode changed."""
    changed = False
    if not os.path.isdir(path):
        os.makedirs(path, mode=0o700, exist_ok=True)
        changed = True
    if os.stat(path).st_mode & 0o777 != 0o700:
        os.chmod(path, 0o700)
        changed = True
    return changed


class DumpLock:
    """One backup of a database at a time on this host: an flock on a file in the backup directory."""

    def __init__(self, directory: str, prefix: str) -> None:
        self.path = os.path.join(directory, f".{prefix}.lock")
        self.fd: int | None = None

    def acquire(self, timeout: float, sleep: Callable[[float], None] = time.sleep) -> float:
        start = time.monotonic()
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return time.monotonic() - start
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() - start >= timeout:
                os.close(self.fd)
                self.fd = None
                raise BackupError(f"another backup holds {self.path} after waiting {timeout:g}s")
            sleep(0.2)

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def running_dumps(tools: PgTools) -> list[str]:
    """pg_dump sessions on this database now (a cron backup, another run): pid and since when."""
    rows = tools.query(
        "SELECT pid || ' since ' || backend_start FROM pg_stat_activity"
        " WHERE application_name = 'pg_dump' AND datname = current_database() AND pid <> pg_backend_pid()"
    )
    return rows


def wait_for_other_dumps(
    tools: PgTools, timeout: float, sleep: Callable[[float], None] = time.sleep, configured: float | None = None
) -> float:
    """Wait while another pg_dump of the database runs; ``configured`` is the wait the user set, for the message."""
    start = time.monotonic()
    while True:
        others = running_dumps(tools)
        if not others:
            return time.monotonic() - start
        if time.monotonic() - start >= timeout:
            raise BackupError(
                f"{tools.where}: another pg_dump is still running after {configured or timeout:g}s "
                f"(pid {'; pid '.join(others)}); "
                "not starting a second one"
            )
        sleep(1.0)


def dump_args(fmt: str) -> list[str]:
    if fmt == "custom":
        return ["--format=custom", "--clean", "--if-exists"]
    return ["--format=plain", "--clean", "--if-exists"]


def stop_process(proc: Any, grace: float = 5.0) -> None:
    """Terminate a child that still runs, kill it if it does not stop within ``grace`` seconds, and
    wait for it: no pg_dump is ever left running (or a zombie) behind a failed backup."""
    if proc.poll() is None:
        try:
            proc.terminate()
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        except ProcessLookupError:  # pragma: no cover - it ended in between
            proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def _close_quietly(*handles: Any) -> None:
    for handle in handles:
        try:
            handle.close()
        except (OSError, ValueError):  # a full disk fails the last flush again: the file goes anyway
            pass


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def run_dump(tools: PgTools, fmt: str, partial: str, compresslevel: int = 6) -> None:
    """pg_dump into ``partial`` (0600, fsynced): gzip-compressed here for plain, as is for custom.

    On any failure pg_dump is stopped and waited for, and ``partial`` is removed; a full disk says so,
    naming the file, what was written and the space left."""
    argv = tools.argv("pg_dump", dump_args(fmt))
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    raw = os.fdopen(fd, "wb")
    out: Any = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=compresslevel, mtime=0) if fmt == "plain" else raw
    proc: Any = None
    read = 0
    done = False
    try:
        proc = tools.popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        try:
            for chunk in iter(lambda: proc.stdout.read(CHUNK), b""):
                read += len(chunk)
                out.write(chunk)
            if out is not raw:
                out.close()  # gzip's trailer
            raw.flush()
            os.fsync(raw.fileno())
        except OSError as exc:
            stop_process(proc)
            _close_quietly(out, raw)
            _remove(partial)
            directory = os.path.dirname(partial) or "."
            if exc.errno in DISK_FULL:
                raise BackupError(
                    f"{partial}: no space left to write the backup ({exc.strerror}) after {read} bytes of pg_dump "
                    f"output; {free_bytes(directory)} bytes free on the file system of {directory} now. "
                    "pg_dump was stopped and the partial file removed: free space or choose another dest"
                ) from None
            raise BackupError(f"{partial}: cannot write the backup: {exc.strerror or exc}") from None
        err = proc.stderr.read()
        proc.wait()
        done = True
    finally:
        if proc is not None:
            stop_process(proc)
        _close_quietly(out, raw)
        if not done:
            _remove(partial)
    if proc.returncode != 0:
        _remove(partial)
        raise BackupError(
            f"pg_dump failed for {tools.where} (exit {proc.returncode}): {tools.scrub(err.decode(errors='replace'))}"
        )


def retention(directory: str, prefix: str, keep: int, max_age_days: float, protect: str, now: float) -> list[str]:
    """Remove old backups of this prefix: only those beyond the newest ``keep`` (0: no count rule)
    that are also older than ``max_age_days`` (0: no age rule). Both 0 keeps everything."""
    if keep <= 0 and max_age_days <= 0:
        return []
    pattern = backup_pattern(prefix)
    names = sorted((n for n in os.listdir(directory) if pattern.match(n)), reverse=True)
    removed = []
    for index, name in enumerate(names):
        path = os.path.join(directory, name)
        if path == protect:
            continue
        if keep > 0 and index < keep:
            continue
        if max_age_days > 0 and now - os.path.getmtime(path) < max_age_days * 86400:
            continue
        os.remove(path)
        removed.append(path)
    return removed


def make_backup(
    tools: PgTools,
    directory: str,
    prefix: str,
    fmt: str = "plain",
    min_size: int = 256,
    keep: int = 10,
    max_age_days: float = 0,
    wait_timeout: float = 600,
    now: datetime | None = None,
) -> BackupResult:
    """pg_dump, verify, rename into place, apply retention. Nothing is left behind on failure, and
    what a killed run of this prefix left (``.partial`` files) is removed and reported."""
    start = time.monotonic()
    validate_prefix(prefix)
    try:
        ensure_directory(directory)
    except OSError as exc:
        raise BackupError(f"{directory}: cannot make the backup directory: {exc.strerror or exc}") from None
    lock = DumpLock(directory, prefix)
    waited = lock.acquire(wait_timeout)
    try:
        stale = remove_stale_partials(directory, prefix)  # the lock is ours: no live run owns them
        try:
            waited += wait_for_other_dumps(tools, max(wait_timeout - waited, 0), configured=wait_timeout)
        except ToolError as exc:
            raise BackupError(str(exc)) from None
        moment = now or datetime.now(timezone.utc)
        final = os.path.join(directory, backup_name(prefix, fmt, moment))
        serial = 1
        while os.path.exists(final):  # two backups within one second
            final = os.path.join(directory, backup_name(prefix, fmt, moment).replace("Z.", f"Z_{serial}.", 1))
            serial += 1
        partial = final + ".partial"
        try:
            run_dump(tools, fmt, partial)
            checked = verify(partial, min_size, tools)
            os.rename(partial, final)
            fsync_directory(directory)
        except (BackupError, ToolError) as exc:
            if os.path.exists(partial):
                os.remove(partial)
            raise BackupError(str(exc)) from None
        except OSError as exc:  # the rename or the directory's fsync
            if os.path.exists(partial):
                os.remove(partial)
            where = exc.filename or final
            raise BackupError(f"{where}: cannot put the backup in place: {exc.strerror or exc}") from None
        except BaseException:
            if os.path.exists(partial):
                os.remove(partial)
            raise
        removed = retention(directory, prefix, keep, max_age_days, final, time.time())
    finally:
        lock.release()
    return BackupResult(
        path=final,
        format=fmt,
        size=checked.size,
        sha256=checked.sha256,
        verified=checked.detail,
        database=tools.where,
        duration_s=round(time.monotonic() - start, 3),
        waited_s=round(waited, 3),
        removed=removed,
        stale_removed=stale,
    )
