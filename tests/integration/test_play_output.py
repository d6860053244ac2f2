# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What an operator reads: apply-safe.yml's output against real PostgreSQL (two private databases on
the test server, the playbook through ansible-runner with the repository's ansible.cfg): one line per
migration with its class and milliseconds, a failure's file, line and PostgreSQL message first, and a
status table whose header fits its rows."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import yaml

from .topology import Topology, bundled_topology

BAD_COLUMN = """-- Migration: 016_bad_column.sql
-- Type: SAFE - Can deploy before code? YES
-- Description: Copy a column that does not exist
BEGIN;
ALTER TABLE clients ADD COLUMN IF NOT EXISTS region TEXT;
UPDATE clients
   SET region = nope;
COMMIT;
-- ROLLBACK
-- ALTER TABLE clients DROP COLUMN IF EXISTS region;
"""


def shown(stdout: str, task: str, host: str) -> list[str]:
    """The lines a debug task printed for a host (its msg list, one element a line)."""
    sections = re.split(r"^TASK \[", stdout, flags=re.M)
    named = [s for s in sections if s.split("]", 1)[0].split(" : ")[-1] == task]
    block = next(s for s in named if f"ok: [{host}] =>" in s).split(f"ok: [{host}] =>", 1)[1]
    lines = []
    for line in block.splitlines()[2:]:
        if not line.startswith("    - "):
            break
        lines.append(line[len("    - ") :])
    return lines


def failure(stdout: str, host: str) -> dict[str, Any]:
    """The result of the first failed task of a host, as the callback printed it (YAML, indented)."""
    block = stdout.split(f"fatal: [{host}]: FAILED! =>", 1)[1].split("\n", 1)[1]
    lines = []
    for line in block.splitlines():
        if line and not line.startswith("    "):
            break
        lines.append(line)
    result = yaml.safe_load(textwrap.dedent("\n".join(lines)))
    assert isinstance(result, dict)
    return result


def topology(tmp_path: Path, db: Any, db2: Any, migrations: Path) -> Topology:
    # An app runs against production: BREAKING migrations wait for a release (013, and 014-015 behind it).
    return bundled_topology(tmp_path, db, db2, migrations, tme_breaking_allowed=False, tme_rehearse=False)


def test_apply_safe_prints_one_line_per_migration(tmp_path: Path, db: Any, db2: Any, migrations_dir: Path) -> None:
    topo = topology(tmp_path, db, db2, migrations_dir)
    run = topo.run("apply-safe.yml")
    assert run.rc == 0, run.stdout[-3000:]
    versions = sorted(p.name[:-4] for p in migrations_dir.glob("*.sql") if not p.name.endswith(".rollback.sql"))

    plan = shown(run.stdout, "Show the plan, one line per migration", "staging-db")
    assert [line.split()[0] for line in plan] == versions
    assert all(re.fullmatch(r"\S+ +(SAFE|BREAKING) +- +would apply", line) for line in plan), plan

    staging = shown(run.stdout, "Show what was applied, one line per migration", "staging-db")
    assert [line.split()[0] for line in staging] == versions
    for line in staging:
        assert re.fullmatch(r"\S+ +(SAFE|BREAKING) +\d+ ms +applied", line), line
    assert staging[12].split()[:2] == ["013_rename_client_company_name", "BREAKING"]
    assert len({line.index(" ms") for line in staging}) == 1  # aligned: the columns line up

    production = shown(run.stdout, "Show what was applied, one line per migration", "production-db")
    assert [line.split()[0] for line in production] == versions
    assert all(re.fullmatch(r"\S+ +SAFE +\d+ ms +applied", line) for line in production[:12]), production
    assert re.fullmatch(r"013_rename_client_company_name +BREAKING +- +skipped, waits for a release", production[12])
    assert production[13].endswith("skipped, waits behind 013_rename_client_company_name")

    table = shown(run.stdout, "Show staging against production", "production-db")
    assert table[0] == f"STAGING    = database {db.name} on 127.0.0.1:{db.server.port}"
    assert table[1] == f"PRODUCTION = database {db2.name} on 127.0.0.1:{db.server.port}"
    start = next(i for i, line in enumerate(table) if line.startswith("VERSION"))
    header, rows = table[start], [line for line in table[start + 2 :] if line.split()[0] in versions]
    assert len(rows) == len(versions)
    assert len(header) <= max(len(row) for row in rows), (header, rows)
    assert "tme_portal" not in header  # no database name of another installation
    assert table[-1] == "3 applied to staging and pending on production"

    again = topo.run("apply-safe.yml")
    assert again.rc == 0
    assert shown(again.stdout, "Show what was applied, one line per migration", "staging-db") == ["nothing to apply"]

    back = topo.run("rollback.yml", target="production", steps=2)
    assert back.rc == 0, back.stdout[-3000:]
    planned = shown(back.stdout, "Show the rollback plan, one line per migration", "production-db")
    assert [line.split() for line in planned] == [
        ["012_create_payments", "SAFE", "-", "would", "roll", "back"],
        ["011_add_client_notes", "SAFE", "-", "would", "roll", "back"],
    ]
    rolled = shown(back.stdout, "Show what was rolled back, one line per migration", "production-db")
    assert re.fullmatch(r"012_create_payments +SAFE +\d+ ms +rolled back", rolled[0]), rolled
    assert re.fullmatch(r"011_add_client_notes +SAFE +\d+ ms +rolled back", rolled[1]), rolled
    assert rolled[2] == f"backup taken before it = {topo.backups()[-1]}"
    topo.assert_no_secret()


def test_a_failure_shows_file_line_and_postgresql_message_first(
    tmp_path: Path, db: Any, db2: Any, migrations_dir: Path
) -> None:
    (migrations_dir / "016_bad_column.sql").write_text(BAD_COLUMN)
    topo = topology(tmp_path, db, db2, migrations_dir)
    run = topo.run("apply-safe.yml")
    assert run.rc != 0
    msg = failure(run.stdout, "staging-db")["msg"].splitlines()
    # The top line: the file, the line of `nope` and PostgreSQL's own message.
    assert msg[0] == '016_bad_column.sql line 7: ERROR: column "nope" does not exist (SQLSTATE 42703)', msg
    # Then where, what was undone and what this run committed before it.
    before = sorted(p.name[:-4] for p in migrations_dir.glob("*.sql") if p.name < "016" and ".rollback." not in p.name)
    assert msg[1] == (
        f"database {db.name} on 127.0.0.1:{db.server.port}: 016_bad_column failed, nothing of it committed. "
        f"Committed before it in this run: {', '.join(before)}."
    )
    assert "statement: UPDATE clients ..." in msg and f"file: {migrations_dir / '016_bad_column.sql'}" in msg
    # The apply's lines were not printed (the task failed); the status table was, and the run failed at the end.
    assert "Show staging against production" in run.stdout
    assert topo.versions("staging-db")[-1] == "015" and topo.versions("production-db") == []
    topo.assert_no_secret()


def test_a_parse_error_names_file_and_line_first(tmp_path: Path, db: Any, db2: Any, migrations_dir: Path) -> None:
    (migrations_dir / "016_bad_column.sql").write_text(BAD_COLUMN.replace("UPDATE clients", "UPDATE FROM clients"))
    topo = topology(tmp_path, db, db2, migrations_dir)
    run = topo.run("apply-safe.yml")
    assert run.rc != 0
    msg = failure(run.stdout, "staging-db")["msg"]
    assert msg.startswith(f"{migrations_dir / '016_bad_column.sql'} line 6: syntax error"), msg
    assert topo.versions("staging-db") == [] and topo.versions("production-db") == []
