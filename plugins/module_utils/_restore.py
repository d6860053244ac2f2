# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Restore a verified backup into one database, all or nothing.

* plain SQL (``.sql.gz`` or ``.sql``): psql with ``ON_ERROR_STOP`` and ``--single-transaction``,
  fed from the decompressed file; with ``clean`` the transaction starts with
  ``DROP OWNED BY CURRENT_USER``, so objects created after the backup (by a migration) go too.
* custom (``.dump``): ``pg_restore --single-transaction --exit-on-error --clean --if-exists``.

Any error rolls the whole transaction back: the database is exactly as it was before.
"""

from __future__ import annotations

import gzip
import subprocess
import threading
from dataclasses import dataclass
from typing import IO, Any

from ansible_collections.tme.migrations.plugins.module_utils._backup import CHUNK, BackupError, Verified, verify
from ansible_collections.tme.migrations.plugins.module_utils._pgtools import PgTools, ToolError

CLEAN_PREAMBLE = b"DROP OWNED BY CURRENT_USER;\n"


@dataclass
class RestoreResult:
    path: str
    format: str
    sha256: str
    verified: str
    database: str
    cleaned: bool

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _is_superuser(tools: PgTools) -> bool:
    rows = tools.query("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    return bool(rows and rows[0] == "t")


def _feed(source: IO[bytes], sink: IO[bytes], preamble: bytes, errors: list[BaseException]) -> None:
    try:
        if preamble:
            sink.write(preamble)
        for chunk in iter(lambda: source.read(CHUNK), b""):
            sink.write(chunk)
    except BrokenPipeError:
        pass  # psql stopped on an error: its exit status tells
    except BaseException as exc:  # noqa: BLE001 - reported by the caller
        errors.append(exc)
    finally:
        try:
            sink.close()
        except BrokenPipeError:
            pass


def _stream(tools: PgTools, argv: list[str], source: Any, preamble: bytes = b"") -> None:
    proc = tools.popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    errors: list[BaseException] = []
    feeder = threading.Thread(target=_feed, args=(source, proc.stdin, preamble, errors), daemon=True)
    feeder.start()
    err = proc.stderr.read()
    proc.wait()
    feeder.join()
    if proc.returncode != 0:
        message = tools.scrub(err.decode(errors="replace"))
        raise ToolError(
            f"{argv[argv.index(tools.container) + 1] if tools.container else argv[0]} stopped at the first error "
            f"and the transaction was rolled back, {tools.where} is unchanged: {message}"
        )
    if errors:
        raise ToolError(f"reading the backup failed: {errors[0]}")


def restore(tools: PgTools, path: str, clean: bool = True, min_size: int = 256) -> RestoreResult:
    """Verify, then restore in one transaction. BackupError or ToolError leave the database as it was."""
    checked: Verified = verify(path, min_size, tools)
    if clean and _is_superuser(tools):
        raise BackupError(
            f"{tools.where}: clean restore drops what the connecting role owns (DROP OWNED BY CURRENT_USER); "
            "refused for a superuser. Connect as the application role that owns the schema, or set clean=false"
        )
    if checked.format == "custom":
        args = ["--single-transaction", "--exit-on-error", "--no-password"]
        if clean:
            args += ["--clean", "--if-exists"]
        argv = tools.argv("pg_restore", args, stdin=True)
        with open(path, "rb") as source:
            _stream(tools, argv, source)
    else:
        argv = tools.argv("psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-f", "-"], stdin=True)
        opener = gzip.open if checked.format == "plain" else open
        with opener(path, "rb") as source:
            _stream(tools, argv, source, CLEAN_PREAMBLE if clean else b"")
    return RestoreResult(path, checked.format, checked.sha256, checked.detail, tools.where, clean)


__all__ = ["BackupError", "RestoreResult", "ToolError", "restore"]
