# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Restore a verified backup into one database, all or nothing.

* plain SQL (``.sql.gz`` or ``.sql``): psql with ``ON_ERROR_STOP``, fed from the decompressed file
  behind our ``BEGIN`` and the clean preamble (below) when ``clean``; our ``COMMIT`` is sent only once
  the whole file was read (not ``--single-transaction``, which commits whatever input it got).
* custom (``.dump``), with ``clean``: ``pg_restore --single-transaction -f -`` writes the SQL script,
  which psql runs behind ``BEGIN`` and the clean preamble, one transaction that only the script's
  own ``COMMIT`` (written by pg_restore once everything was read) and ours (written once pg_restore
  exited 0) can commit. Without ``clean``: ``pg_restore --single-transaction --exit-on-error``.

The clean preamble, in the restore's transaction, before the first statement of the dump:

* a superuser (the postgres image's POSTGRES_USER is the bootstrap superuser, which owns everything,
  and ``DROP OWNED BY`` that role is impossible): every schema that is neither a system schema nor an
  extension's is dropped with CASCADE (extensions in them go too: the dump creates them again), so
  are event triggers, publications, foreign data wrappers and servers that no extension owns, and
  large objects; then ``public`` is created again with its previous owner, ACL and comment.
* any other role: ``DROP OWNED BY CURRENT_USER``, i.e. only what the role owns, which is what it can
  create again (dropping a schema with CASCADE would also drop other roles' objects in it, and
  extensions a superuser installed, which the dump's CREATE EXTENSION could then not restore).

Either way objects created after the backup (by a migration) go too, and a dump made without
``--clean`` (the guide's ``pg_dump | gzip``) restores over the existing objects.

Any error rolls the whole transaction back: the database is exactly as it was before. A plain dump
with large objects is refused: pg_dump wraps their data in its own BEGIN/COMMIT, which would end
the single transaction half way (a custom-format dump restores them in one transaction).
"""

from __future__ import annotations

import gzip
import subprocess
import threading
from dataclasses import dataclass
from typing import IO, Any, Callable

from ansible_collections.tme.migrations.plugins.module_utils._backup import CHUNK, BackupError, Verified, verify
from ansible_collections.tme.migrations.plugins.module_utils._pgtools import PgTools, ToolError

CLEAN_PREAMBLE = b"DROP OWNED BY CURRENT_USER;\n"

# Fixed text: every name it handles comes from the catalogs and is quoted by format('%I' / '%L').
SUPERUSER_CLEAN_PREAMBLE = b"""SET client_min_messages = warning;
DO $tme_restore_clean$
DECLARE
    public_owner name;
    public_acl aclitem[];
    public_comment text;
    item record;
BEGIN
    SELECT pg_catalog.pg_get_userbyid(n.nspowner), n.nspacl, pg_catalog.obj_description(n.oid, 'pg_namespace')
      INTO public_owner, public_acl, public_comment
      FROM pg_catalog.pg_namespace n
     WHERE n.nspname = 'public';

    FOR item IN
        SELECT e.evtname FROM pg_catalog.pg_event_trigger e
         WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                            WHERE d.classid = 'pg_catalog.pg_event_trigger'::pg_catalog.regclass
                              AND d.objid = e.oid AND d.deptype = 'e')
    LOOP
        EXECUTE pg_catalog.format('DROP EVENT TRIGGER %I', item.evtname);
    END LOOP;

    FOR item IN
        SELECT n.nspname FROM pg_catalog.pg_namespace n
         WHERE n.nspname <> 'information_schema'
           AND n.nspname NOT LIKE 'pg\\_%'
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                            WHERE d.classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass
                              AND d.objid = n.oid AND d.deptype = 'e')
         ORDER BY n.nspname
    LOOP
        EXECUTE pg_catalog.format('DROP SCHEMA %I CASCADE', item.nspname);
    END LOOP;

    FOR item IN SELECT p.pubname FROM pg_catalog.pg_publication p LOOP
        EXECUTE pg_catalog.format('DROP PUBLICATION %I', item.pubname);
    END LOOP;

    FOR item IN
        SELECT s.srvname FROM pg_catalog.pg_foreign_server s
         WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                            WHERE d.classid = 'pg_catalog.pg_foreign_server'::pg_catalog.regclass
                              AND d.objid = s.oid AND d.deptype = 'e')
    LOOP
        EXECUTE pg_catalog.format('DROP SERVER %I CASCADE', item.srvname);
    END LOOP;

    FOR item IN
        SELECT w.fdwname FROM pg_catalog.pg_foreign_data_wrapper w
         WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                            WHERE d.classid = 'pg_catalog.pg_foreign_data_wrapper'::pg_catalog.regclass
                              AND d.objid = w.oid AND d.deptype = 'e')
    LOOP
        EXECUTE pg_catalog.format('DROP FOREIGN DATA WRAPPER %I CASCADE', item.fdwname);
    END LOOP;

    PERFORM pg_catalog.lo_unlink(l.oid) FROM pg_catalog.pg_largeobject_metadata l;

    IF public_owner IS NOT NULL THEN
        CREATE SCHEMA public;
        EXECUTE pg_catalog.format('ALTER SCHEMA public OWNER TO %I', public_owner);
        IF public_acl IS NOT NULL THEN
            -- From no privileges at all to exactly the previous ACL; the grants by the owner first,
            -- as a superuser's GRANT is made as the owner; any other grantor makes its own.
            EXECUTE pg_catalog.format('REVOKE ALL ON SCHEMA public FROM %I', public_owner);
            FOR item IN
                SELECT pg_catalog.pg_get_userbyid(a.grantor) AS grantor,
                       CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                            ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END AS grantee,
                       a.privilege_type,
                       a.is_grantable
                  FROM pg_catalog.aclexplode(public_acl) WITH ORDINALITY AS a(grantor, grantee, privilege_type,
                                                                              is_grantable, position)
                 ORDER BY (pg_catalog.pg_get_userbyid(a.grantor) <> public_owner), a.position
            LOOP
                IF item.grantor <> public_owner THEN
                    EXECUTE pg_catalog.format('SET LOCAL ROLE %I', item.grantor);
                END IF;
                EXECUTE pg_catalog.format('GRANT %s ON SCHEMA public TO %s%s', item.privilege_type, item.grantee,
                                          CASE WHEN item.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
                IF item.grantor <> public_owner THEN
                    RESET ROLE;
                END IF;
            END LOOP;
        END IF;
        IF public_comment IS NOT NULL THEN
            EXECUTE pg_catalog.format('COMMENT ON SCHEMA public IS %L', public_comment);
        END IF;
    END IF;
END
$tme_restore_clean$;
"""

LARGE_OBJECTS_MARK = b"; Type: BLOBS; Schema: -; Owner: "  # pg_dump's comment before large objects' data
ALREADY_EXISTS = "already exists"


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


def clean_preamble(superuser: bool) -> bytes:
    """What the restore's transaction runs before the dump when ``clean`` (see the module's docstring)."""
    return SUPERUSER_CLEAN_PREAMBLE if superuser else CLEAN_PREAMBLE


def _opener(fmt: str) -> Callable[..., Any]:
    return gzip.open if fmt == "plain" else open


def _has_large_objects(path: str, fmt: str) -> bool:
    carry = b""
    with _opener(fmt)(path, "rb") as source:
        for chunk in iter(lambda: source.read(CHUNK), b""):
            if LARGE_OBJECTS_MARK in carry + chunk:
                return True
            carry = chunk[-len(LARGE_OBJECTS_MARK) :]
    return False


def _has_drop_statements(path: str, fmt: str) -> bool:
    """pg_dump --clean writes its DROP statements before the first object (its first "-- Name:" comment)."""
    with _opener(fmt)(path, "rb") as source:
        for number, line in enumerate(source):
            if line.startswith((b"-- Name: ", b"-- Data for Name: ")) or number > 100_000:
                return False
            if line.startswith((b"DROP ", b"SELECT pg_catalog.lo_unlink(")):
                return True
    return False


def _feed(
    source: IO[bytes], sink: IO[bytes], preamble: bytes, errors: list[BaseException], trailer: bytes = b""
) -> None:
    """Source to sink behind `preamble`; `trailer` (our COMMIT) only once the whole source was read."""
    try:
        if preamble:
            sink.write(preamble)
        for chunk in iter(lambda: source.read(CHUNK), b""):
            sink.write(chunk)
        if trailer:
            sink.write(trailer)
    except BrokenPipeError:
        pass  # psql stopped on an error: its exit status tells
    except BaseException as exc:  # noqa: BLE001 - reported by the caller
        errors.append(exc)
    finally:
        try:
            sink.close()
        except BrokenPipeError:
            pass


def _program(tools: PgTools, argv: list[str]) -> str:
    return argv[argv.index(tools.container) + 1] if tools.container else argv[0]


def _stopped(tools: PgTools, program: str, err: bytes, hint: Callable[[str], str] | None) -> ToolError:
    message = tools.scrub(err.decode(errors="replace"))
    extra = hint(message) if hint else ""
    return ToolError(
        f"{program} stopped at the first error and the transaction was rolled back, {tools.where} is unchanged: "
        f"{extra}{message}"
    )


def _stream(
    tools: PgTools,
    argv: list[str],
    source: Any,
    preamble: bytes = b"",
    hint: Callable[[str], str] | None = None,
    trailer: bytes = b"",
) -> None:
    proc = tools.popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    errors: list[BaseException] = []
    feeder = threading.Thread(target=_feed, args=(source, proc.stdin, preamble, errors, trailer), daemon=True)
    feeder.start()
    err = proc.stderr.read()
    proc.wait()
    feeder.join()
    if proc.returncode != 0:
        raise _stopped(tools, _program(tools, argv), err, hint)
    if errors:
        raise ToolError(f"reading the backup failed: {errors[0]}")


def _relay(producer: Any, sink: IO[bytes], preamble: bytes, state: dict[str, Any]) -> None:
    """pg_restore's script to psql, behind BEGIN and the preamble; COMMIT only once pg_restore exited 0."""
    try:
        sink.write(b"BEGIN;\n" + preamble)
        for chunk in iter(lambda: producer.stdout.read(CHUNK), b""):
            sink.write(chunk)
        state["err"] = producer.stderr.read()
        state["rc"] = producer.wait()
        if state["rc"] == 0:
            sink.write(b"\nCOMMIT;\n")
    except BrokenPipeError:
        pass  # psql stopped on an error: its exit status tells
    except BaseException as exc:  # noqa: BLE001 - reported by the caller
        state["error"] = exc
    finally:
        try:
            sink.close()  # without our COMMIT psql ends with the transaction open: the server rolls it back
        except BrokenPipeError:
            pass


def _restore_custom_through_psql(tools: PgTools, path: str, preamble: bytes) -> None:
    producer_argv = tools.argv(
        "pg_restore", ["--single-transaction", "--exit-on-error", "-f", "-"], stdin=True, with_db=False
    )
    consumer_argv = tools.argv("psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"], stdin=True)
    producer = tools.popen(producer_argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        consumer = tools.popen(consumer_argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    except ToolError:
        producer.kill()
        producer.wait()
        raise
    errors: list[BaseException] = []
    state: dict[str, Any] = {}
    with open(path, "rb") as source:
        reader = threading.Thread(target=_feed, args=(source, producer.stdin, b"", errors), daemon=True)
        relay = threading.Thread(target=_relay, args=(producer, consumer.stdin, preamble, state), daemon=True)
        reader.start()
        relay.start()
        err = consumer.stderr.read()
        consumer.wait()
        if consumer.returncode != 0 and producer.poll() is None:
            producer.kill()  # only writes a script: nothing of it reached the database uncommitted
        relay.join()
        reader.join()
        producer.wait()
    program = f"{_program(tools, producer_argv)} | {_program(tools, consumer_argv)}"
    if consumer.returncode != 0:
        raise _stopped(tools, program, err, None)
    if state.get("rc", producer.returncode) != 0:
        message = tools.scrub(bytes(state.get("err") or producer.stderr.read() or b"").decode(errors="replace"))
        raise ToolError(
            f"pg_restore could not read the whole dump, the transaction was never committed, "
            f"{tools.where} is unchanged: {message}"
        )
    if errors or "error" in state:
        raise ToolError(f"reading the backup failed: {errors[0] if errors else state['error']}")


def restore(tools: PgTools, path: str, clean: bool = True, min_size: int = 256) -> RestoreResult:
    """Verify, then restore in one transaction. BackupError or ToolError leave the database as it was."""
    checked: Verified = verify(path, min_size, tools)
    if checked.format == "custom":
        if clean:
            _restore_custom_through_psql(tools, path, clean_preamble(_is_superuser(tools)))
        else:
            argv = tools.argv("pg_restore", ["--single-transaction", "--exit-on-error", "--no-password"], stdin=True)
            with open(path, "rb") as source:
                _stream(tools, argv, source, hint=_custom_hint)
        return RestoreResult(path, checked.format, checked.sha256, checked.detail, tools.where, clean)

    if _has_large_objects(path, checked.format):
        raise BackupError(
            f"{path}: the dump holds large objects, whose data pg_dump wraps in a BEGIN/COMMIT of its own that "
            "would commit the restore half way; nothing was restored. Restore a custom-format dump "
            "(tme.migrations.backup format=custom) instead"
        )

    def plain_hint(message: str) -> str:
        if clean or ALREADY_EXISTS not in message or _has_drop_statements(path, checked.format):
            return ""
        return (
            "the dump has no DROP statements (pg_dump ran without --clean), so it cannot be restored over the "
            "objects that exist; clean=true restores it. "
        )

    # Not psql --single-transaction: it commits at the end of its input, also when the input ends
    # because this process was killed half way. Our BEGIN, and our COMMIT only once the whole file was
    # read: a restore cut short ends with the transaction open, and the server rolls it back.
    preamble = b"BEGIN;\n" + (clean_preamble(_is_superuser(tools)) if clean else b"")
    argv = tools.argv("psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"], stdin=True)
    with _opener(checked.format)(path, "rb") as source:
        _stream(tools, argv, source, preamble, hint=plain_hint, trailer=b"\nCOMMIT;\n")
    return RestoreResult(path, checked.format, checked.sha256, checked.detail, tools.where, clean)


def _custom_hint(message: str) -> str:
    if ALREADY_EXISTS not in message:
        return ""
    return (
        "pg_restore ran without --clean (clean=false), so the dump cannot be restored over the objects that "
        "exist; clean=true restores it. "
    )


__all__ = ["BackupError", "RestoreResult", "ToolError", "clean_preamble", "restore"]
