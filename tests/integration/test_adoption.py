# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Day one on the guide's server: the team's hand-run state adopted, nothing lost, nothing re-applied.

The state is made the guide's way, with psql and the files as they are: the one-time setup's
CREATE TABLE by hand on both databases, 001-010 applied to staging with `psql -f`, 001-006 to
production (the files' own INSERT writes each tracking row, without a checksum), and one row on
staging whose file the checkout no longer has. Then the collection's playbooks take over.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ansible_collections.tme.migrations.plugins.plugin_utils._files import legacy_checksum, split_inline_rollback

from .topology import bundled_topology

GUIDE_SETUP = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version VARCHAR(255) PRIMARY KEY,
    description TEXT,
    applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    applied_by VARCHAR(100) DEFAULT CURRENT_USER
);"""
ALL = [f"{n:03d}" for n in range(1, 16)]


def by_hand(db: Any, migrations: Path, numbers: range) -> None:
    """The guide's Step 2: `psql -d DB < file`, one file after the other."""
    for n in numbers:
        [path] = [p for p in migrations.glob(f"{n:03d}_*.sql") if not p.name.endswith(".rollback.sql")]
        done = db.psql("-f", str(path))
        assert done.returncode == 0, done.stderr


def guide_state(db: Any, db2: Any, migrations: Path) -> None:
    for database in (db, db2):
        assert database.psql("-c", GUIDE_SETUP).returncode == 0
    by_hand(db, migrations, range(1, 11))
    by_hand(db2, migrations, range(1, 7))
    # A hotfix applied by hand long ago whose file is not in the checkout any more.
    db.query("INSERT INTO schema_migrations (version, description) VALUES ('000_hotfix_sessions', 'lost file')")


def section(pending: str, version: str) -> str:
    """One migration's section of PENDING_MIGRATIONS.md."""
    match = re.search(rf"^### {version}.*?(?=^### |^## |\Z)", pending, re.S | re.M)
    assert match, f"{version} is not in PENDING_MIGRATIONS.md:\n{pending}"
    return match.group(0)


def recap(run: Any, host: str) -> str:
    return next(line for line in run.stdout.split("PLAY RECAP")[1].splitlines() if line.startswith(host))


def test_the_guides_hand_run_state_is_adopted(tmp_path: Path, db: Any, db2: Any, migrations_dir: Path) -> None:
    topo = bundled_topology(tmp_path, db, db2, migrations_dir, tme_breaking_allowed=False)
    guide_state(db, db2, migrations_dir)
    pending_file = Path(topo.production["tme_pending_file"])

    # Before the one-time setup: staging's rows are there, by hand; production lacks 007-010.
    status = topo.run("status.yml")
    assert status.rc == 0, status.stdout[-3000:]
    pending = pending_file.read_text()
    assert "None:" not in pending
    for n in ("007", "008", "009", "010"):
        assert "not adopted: run playbooks/setup-tracking.yml" in section(pending, n)
    assert "no migration file has this version" in section(pending, "000_hotfix_sessions")
    assert "by hand" in status.stdout and "not adopted" in status.stdout

    # Without adoption the promotion gate refuses, says what to do, and production stays as it was.
    refused = topo.run("apply-safe.yml")
    assert refused.rc != 0
    assert "applied by hand and not adopted" in refused.stdout and "setup-tracking.yml" in refused.stdout
    assert topo.versions("production-db") == ALL[:6]

    # The one-time setup adopts every hand-applied row whose file exists, on both databases.
    setup = topo.run("setup-tracking.yml")
    assert setup.rc == 0, setup.stdout[-3000:]
    adopted = topo.query("staging-db", "SELECT version FROM schema_migrations WHERE adopted_by = 'tme_user'")
    assert sorted(str(r[0])[:3] for r in adopted) == ALL[:10]  # not the row without a file
    assert "000_hotfix_sessions is recorded" in setup.stdout and "no migration file" in setup.stdout
    audit = topo.query("production-db", "SELECT version, action, detail FROM schema_migrations_audit ORDER BY id")
    assert [(v[:3], a) for v, a, _d in audit] == [(n, "adopt") for n in ALL[:6]]
    assert all("applied by hand, not by this tool" in d for _v, _a, d in audit)
    assert "changed=0" in recap(topo.run("setup-tracking.yml"), "staging-db")

    # Adopted rows are evidence for the gate: production gets the SAFE ones and holds 013 (BREAKING).
    run = topo.run("apply-safe.yml")
    assert run.rc == 0, run.stdout[-4000:]
    assert topo.versions("staging-db") == ["000", *ALL]
    assert topo.versions("production-db") == ALL[:12]
    pending = pending_file.read_text()
    assert "- Blocked by: Next production deployment" in section(pending, "013_rename_client_company_name")
    assert "- Blocked by: 013_rename_client_company_name" in section(pending, "014_add_invoice_reminder_flag")
    assert "not adopted" not in pending and "### 012_" not in pending
    assert "applied 20" in run.stdout and "(adopted)" in run.stdout
    # Nothing was applied twice: production's audit has the adoptions and one apply for each of 007-012.
    applies = [
        r[0][:3]
        for r in topo.query(
            "production-db", "SELECT version FROM schema_migrations_audit WHERE action = 'apply' ORDER BY id"
        )
    ]
    assert applies == ALL[6:12]

    again = topo.run("apply-safe.yml")
    assert again.rc == 0
    assert "changed=0" in recap(again, "staging-db") and "changed=0" in recap(again, "production-db")
    assert len(topo.backups()) == 1
    topo.assert_no_secret()


def test_drift_means_a_changed_statement(tmp_path: Path, db: Any, db2: Any, migrations_dir: Path) -> None:
    topo = bundled_topology(tmp_path, db, db2, migrations_dir, tme_rehearse=False)
    assert topo.run("apply-safe.yml").rc == 0
    target = migrations_dir / "003_add_user_fields.sql"
    original = target.read_text()

    # Checksums recorded by the earlier scheme (the whole forward text) keep verifying.
    with db2.connect() as conn:
        for path in sorted(migrations_dir.glob("0*.sql")):
            if not path.name.endswith(".rollback.sql"):
                forward = split_inline_rollback(path.read_text(), str(path)).forward
                conn.execute(
                    "UPDATE schema_migrations SET checksum = %s WHERE version = %s",
                    (legacy_checksum(forward), path.stem),
                )
    quiet = topo.run("apply-safe.yml")
    assert quiet.rc == 0, quiet.stdout[-3000:]
    assert "changed=0" in recap(quiet, "production-db")
    # setup-tracking (run it after upgrading) moves them to the current scheme, audited.
    assert topo.run("setup-tracking.yml").rc == 0
    rechecksummed = "SELECT count(*) FROM schema_migrations_audit WHERE action = 'rechecksum'"
    assert topo.query("production-db", rechecksummed) == [(15,)]

    # The header is not the migration: editing comments is no drift.
    target.write_text(
        original.replace("-- Tested on: tme_portal_test", "-- Tested on: tme_portal_test, 2025-09-12 by ops")
    )
    assert "Tested on: tme_portal_test, 2025" in target.read_text()
    assert topo.run("apply-safe.yml").rc == 0

    # A changed statement is drift: refused, named, nothing applied.
    changed = original.replace("phone VARCHAR(50)", "phone VARCHAR(60)", 1)
    assert changed != original
    target.write_text(changed)
    refused = topo.run("apply-safe.yml")
    assert refused.rc != 0
    assert "drift" in refused.stdout and "003_add_user_fields.sql" in refused.stdout
    status = topo.run("status.yml")
    assert "drifted" in status.stdout

    # Accepted explicitly: recorded with who and when, audited, and shown.
    accepted = topo.run("apply-safe.yml", accept_drift="003_add_user_fields")
    assert accepted.rc == 0, accepted.stdout[-3000:]
    for host in ("staging-db", "production-db"):
        [(by, detail)] = topo.query(
            host,
            "SELECT m.drift_accepted_by, a.detail FROM schema_migrations m JOIN schema_migrations_audit a"
            " ON a.version = m.version AND a.action = 'accept_drift' WHERE m.version = '003_add_user_fields'",
        )
        assert by == "tme_user" and "file edited after it was applied" in detail
    shown = topo.run("status.yml")
    assert "(drift accepted)" in shown.stdout and "drifted" not in shown.stdout
    assert topo.run("apply-safe.yml").rc == 0  # and the next run needs nothing more
