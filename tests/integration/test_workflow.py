# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The release workflow end to end: the real playbooks through ansible-runner, on a real Docker
engine, in the guide's topology (a postgres container holding staging and production, backups with
docker exec pg_dump, the app container swapped) and on the bundled server.

The app is tme-local/portal (tools/localdocker.py): release 2.3 reads clients.company_name, release
2.4 reads clients.legal_name, which the BREAKING example migration 013 renames.
"""

from __future__ import annotations

import gzip
import stat
from pathlib import Path
from typing import Any

import pytest

from .topology import (
    SAFE_BEFORE_013,
    Topology,
    app_image,
    bundled_topology,
    deploy,
    docker_cli,
    health,
    remove_app,
    start_app,
    table_fingerprint,
)


# -- apply-safe ---------------------------------------------------------------------------------
def test_apply_safe_stops_at_the_breaking_migration(guide_topology: Topology) -> None:
    topo = guide_topology
    run = topo.run("apply-safe.yml")
    assert run.rc == 0, run.stdout[-3000:]
    assert topo.versions("staging-db") == [f"{n:03d}" for n in range(1, 16)]
    assert topo.versions("production-db") == SAFE_BEFORE_013  # 013 is BREAKING; 014 and 015 wait behind it

    pending = Path(topo.production["tme_pending_file"]).read_text()
    section = pending.split("### 013_rename_client_company_name.sql")[1]
    assert "- Type: BREAKING" in section and "- Production Applied: PENDING" in section
    assert "- Can deploy before code: NO - MUST COORDINATE" in section
    assert "- Blocked by: Next production deployment" in section
    assert "### 014_add_invoice_reminder_flag.sql\n- Type: SAFE" in pending
    assert "- Blocked by: 013_rename_client_company_name (BREAKING" in pending.split("### 015")[1]
    assert "### 012_" not in pending

    # The verified backup: 0600 in a 0700 directory, recorded in the rows of the migrations it protects.
    [backup] = topo.backups()
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert stat.S_IMODE(backup.parent.stat().st_mode) == 0o700
    assert b"-- PostgreSQL database dump complete" in gzip.decompress(backup.read_bytes())[-400:]
    recorded = {r[0] for r in topo.query("production-db", "SELECT DISTINCT backup_path FROM schema_migrations")}
    assert recorded == {str(backup)}

    again = topo.run("apply-safe.yml")
    assert again.rc == 0
    assert "changed=0" in again.stdout.split("PLAY RECAP")[1].splitlines()[1]  # production: nothing, no backup
    assert len(topo.backups()) == 1
    topo.assert_no_secret()


# -- deploy-breaking ----------------------------------------------------------------------------
@pytest.fixture
def released(guide_topology: Topology) -> Any:
    """Production after the scheduled SAFE runs (001-012), the 2.3 app serving it."""
    topo = guide_topology
    assert topo.run("apply-safe.yml").rc == 0
    start_app(topo, "tme-local/portal:2.3")
    yield topo
    remove_app(topo)
    docker_cli("rm", "-f", "tme-test")


LATER_BREAKING = """-- Type: BREAKING - Can deploy before code? NO
-- Description: Client notes move to the CRM (a later release)
BEGIN;
ALTER TABLE clients DROP COLUMN notes;
COMMIT;
-- ROLLBACK
-- ALTER TABLE clients ADD COLUMN notes TEXT;
"""


def test_deploy_breaking_end_to_end(released: Topology, migrations_dir: Path) -> None:
    topo = released
    # The checkout already holds the next release's BREAKING migration.
    (migrations_dir / "016_drop_client_notes.sql").write_text(LATER_BREAKING)
    before = (topo.versions("staging-db"), topo.versions("production-db"), topo.backups())
    unnamed = deploy(topo, "tme-local/portal:2.4", release_target="")
    assert unnamed.rc != 0
    assert "BREAKING migrations 013_rename_client_company_name, 016_drop_client_notes" in unnamed.stdout
    assert (topo.versions("staging-db"), topo.versions("production-db"), topo.backups()) == before
    dry = deploy(topo, "tme-local/portal:2.4", check=True)
    assert dry.rc == 0, dry.stdout[-4000:]
    assert (topo.versions("staging-db"), topo.versions("production-db"), topo.backups()) == before
    assert app_image(topo) == "tme-local/portal:2.3" and docker_cli("inspect", "tme-test").returncode != 0

    run = deploy(topo, "tme-local/portal:2.4")  # release_target: 015, the release's last migration
    assert run.rc == 0, run.stdout[-4000:]
    assert topo.versions("production-db") == [f"{n:03d}" for n in range(1, 16)]
    assert "016" not in topo.versions("staging-db")  # left for its own release, on staging too
    assert "left for a later release: 016_drop_client_notes BREAKING" in run.stdout
    assert app_image(topo) == "tme-local/portal:2.4"
    status, body = health(topo)
    assert status == 200 and "TME Portal 2.4 ok" in body
    assert docker_cli("inspect", "tme-test").returncode != 0  # the candidate is always removed
    state = Path(topo.production["tme_state_dir"]) / f"{topo.production['tme_app_container']}.previous-image"
    assert state.read_text().strip() == "tme-local/portal:2.3"
    backups = topo.backups()
    assert len(backups) == 2  # apply-safe's and the release's
    rows = topo.query("production-db", "SELECT backup_path FROM schema_migrations WHERE version LIKE '013%'")
    assert rows == [(str(backups[-1]),)]
    assert "Smoke test" in run.stdout and "answered 200" in run.stdout
    assert "PENDING" not in Path(topo.production["tme_pending_file"]).read_text().split("## Not Yet")[0]

    # The emergency path afterwards: roll the release's migrations back and deploy a known release.
    back = topo.run("rollback.yml", target="production", steps=3, app_image="tme-local/portal:2.3")
    assert back.rc == 0, back.stdout[-3000:]
    assert topo.versions("production-db") == SAFE_BEFORE_013
    assert app_image(topo) == "tme-local/portal:2.3"
    assert health(topo)[0] == 200
    topo.assert_no_secret()


BLOCKED_ROLLBACK = """-- Refuses while a client lacks an e-mail (production has such clients)
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM clients WHERE contact_email IS NULL) THEN
    RAISE EXCEPTION 'clients without an e-mail: the reminder flag cannot go yet';
  END IF;
END $$;
ALTER TABLE invoices DROP COLUMN IF EXISTS reminder_sent;
"""


def test_a_failing_rollback_does_not_stop_the_rescue(released: Topology, migrations_dir: Path) -> None:
    """2.5 fails on production after the apply and the swap; the rescue rolls back 015, fails on 014
    (its rollback refuses production's data), still rolls back 013, redeploys 2.3, writes the report,
    and names the failed one with what to do."""
    topo = released
    forward = (migrations_dir / "014_add_invoice_reminder_flag.sql").read_text()
    assert "reminder_sent" in forward
    (migrations_dir / "014_add_invoice_reminder_flag.rollback.sql").write_text(BLOCKED_ROLLBACK)
    topo.query(
        "production-db",
        "INSERT INTO clients (company_name, contact_email, country_code) VALUES ('No mail', NULL, 'AE')",
    )
    pending_file = Path(topo.production["tme_pending_file"])
    pending_file.unlink()
    run = deploy(topo, "tme-local/portal:2.5", app_release_timeout=6)
    assert run.rc != 0
    message = run.stdout.split("Fail the deploy, saying what was undone")[1]
    assert "Rolled back: 015_create_user_preferences, 013_rename_client_company_name." in message
    assert "NOT rolled back: 014_add_invoice_reminder_flag:" in message and "clients without an e-mail" in message
    assert "tme-local/portal:2.3 redeployed" in message
    assert "playbooks/restore.yml -e target=production -e backup=" in message
    assert topo.versions("production-db") == [*SAFE_BEFORE_013, "014"]
    assert app_image(topo) == "tme-local/portal:2.3" and health(topo)[0] == 200
    pending = pending_file.read_text()  # the report was written: 013 and 015 wait again, 014 stayed
    assert "### 013_rename_client_company_name.sql" in pending and "### 015_create_user_preferences.sql" in pending
    assert "### 014_" not in pending
    topo.assert_no_secret()


def test_failing_smoke_test_leaves_production_untouched(released: Topology) -> None:
    topo = released
    before = (topo.versions("production-db"), topo.backups())
    # The old release by mistake: 2.3 reads company_name, which staging no longer has.
    run = deploy(topo, "tme-local/portal:2.3", smoke_test_timeout=6)
    assert run.rc != 0
    assert "smoke test failed" in run.stdout and "Production was not touched" in run.stdout
    assert (topo.versions("production-db"), topo.backups()) == before  # no migration, no backup
    assert app_image(topo) == "tme-local/portal:2.3" and health(topo)[0] == 200
    assert docker_cli("inspect", "tme-test").returncode != 0
    [log] = list(Path(topo.production["tme_log_dir"]).glob("tme-test-*.log"))
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    topo.assert_no_secret()


def test_failure_after_the_production_apply_rolls_back(released: Topology) -> None:
    topo = released
    topo.query(
        "production-db",
        "INSERT INTO clients (company_name, contact_email, country_code) SELECT 'Client ' || g,"
        " CASE WHEN g % 10 = 0 THEN NULL ELSE 'c' || g || '@example.com' END, 'AE' FROM generate_series(1, 250) g",
    )
    before = table_fingerprint(topo, "clients")
    # Release 2.5 passes its smoke test against staging, then fails on production's data (clients
    # without a contact email) after the production apply and the swap.
    run = deploy(topo, "tme-local/portal:2.5", app_release_timeout=6)
    assert run.rc != 0
    assert "answered 200" in run.stdout  # the smoke test passed
    assert "deploy of tme-local/portal:2.5 failed" in run.stdout
    assert topo.versions("production-db") == SAFE_BEFORE_013  # 015, 014, 013 rolled back
    assert app_image(topo) == "tme-local/portal:2.3"
    assert health(topo)[0] == 200  # the previous image serves again
    assert table_fingerprint(topo, "clients") == before  # every row as it was, company_name back
    assert len(topo.backups()) == 2
    topo.assert_no_secret()


# -- backups that do not verify -------------------------------------------------------------------
def test_corrupt_backup_stops_the_production_apply(tmp_path: Path, db: Any, db2: Any, migrations_dir: Path) -> None:
    """A pg_dump cut short (disk full, killed) still exits 0 here: the verification catches it."""
    fake = tmp_path / "bin"
    fake.mkdir()
    real = db.server.bindir / "pg_dump"
    script = fake / "pg_dump"
    script.write_text(f'#!/bin/sh\n"{real}" "$@" | head -n -8\n')  # the last lines lost
    script.chmod(0o755)
    for program in ("psql", "pg_restore"):
        (fake / program).symlink_to(db.server.bindir / program)
    topo = bundled_topology(tmp_path, db, db2, migrations_dir, pg_bin_dir=str(fake), tme_rehearse=False)
    run = topo.run("apply-safe.yml")
    assert run.rc != 0
    assert "pg_dump's closing line" in run.stdout and "cut short" in run.stdout
    assert topo.versions("production-db") == []  # nothing applied
    assert topo.versions("staging-db") == [f"{n:03d}" for n in range(1, 16)]
    assert list(Path(topo.production["tme_backup_dir"]).glob("*.sql.gz*")) == []  # nothing half-written kept
    topo.assert_no_secret()


# -- rollback.yml and restore.yml ---------------------------------------------------------------
def _rollback_and_restore(topo: Topology) -> None:
    assert topo.run("apply-safe.yml").rc == 0
    assert topo.versions("production-db") == [f"{n:03d}" for n in range(1, 16)]
    topo.query("production-db", "INSERT INTO clients (legal_name) SELECT 'Client ' || g FROM generate_series(1, 40) g")
    rows_before = table_fingerprint(topo, "clients")

    refused = topo.run("rollback.yml", target="staging", version="015_create_user_preferences")
    assert refused.rc != 0 and "roll them back there first" in refused.stdout
    assert topo.versions("staging-db")[-1] == "015"

    run = topo.run("rollback.yml", target="production", steps=2)
    assert run.rc == 0, run.stdout[-3000:]
    assert topo.versions("production-db") == [f"{n:03d}" for n in range(1, 14)]
    assert len(topo.backups()) == 2  # apply-safe's, and the one taken before the rollback
    before_rollback = topo.backups()[-1]  # all 15 applied
    topo.query("production-db", "DELETE FROM clients WHERE id % 2 = 0")  # then data is lost

    unconfirmed = topo.run("restore.yml", target="production", backup=str(before_rollback))
    assert unconfirmed.rc != 0 and "confirm_restore" in unconfirmed.stdout
    assert topo.versions("production-db") == [f"{n:03d}" for n in range(1, 14)]

    restored = topo.run(
        "restore.yml", target="production", backup=str(before_rollback), confirm_restore=topo.production["tme_db_name"]
    )
    assert restored.rc == 0, restored.stdout[-3000:]
    assert topo.versions("production-db") == [f"{n:03d}" for n in range(1, 16)]
    assert topo.query("production-db", "SELECT to_regclass('user_preferences') IS NOT NULL") == [(True,)]
    assert table_fingerprint(topo, "clients") == rows_before
    assert len(topo.backups()) == 3  # the state before the restore was backed up too

    broken = Path(topo.production["tme_backup_dir"]) / "damaged.sql.gz"
    data = bytearray(before_rollback.read_bytes())
    data[len(data) // 2] ^= 0xFF
    broken.write_bytes(bytes(data))
    bad = topo.run("restore.yml", target="staging", backup=str(broken))
    assert bad.rc != 0 and "corrupt" in bad.stdout
    assert topo.versions("staging-db") == [f"{n:03d}" for n in range(1, 16)]
    topo.assert_no_secret()


def test_rollback_and_restore_on_the_bundled_server(tmp_path: Path, db: Any, db2: Any, migrations_dir: Path) -> None:
    _rollback_and_restore(bundled_topology(tmp_path, db, db2, migrations_dir))


def test_rollback_and_restore_in_the_container_topology(guide_topology: Topology) -> None:
    guide_topology.staging["tme_breaking_allowed"] = True
    guide_topology.production["tme_breaking_allowed"] = True
    _rollback_and_restore(guide_topology)


def test_new_migration_and_setup_tracking(tmp_path: Path, db: Any, db2: Any, migrations_dir: Path) -> None:
    topo = bundled_topology(tmp_path, db, db2, migrations_dir)
    with db2.connect() as conn:  # the guide's one-time setup, done by hand before the tool came
        conn.execute(
            "CREATE TABLE schema_migrations (version VARCHAR(255) PRIMARY KEY, description TEXT,"
            " applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, applied_by VARCHAR(100) DEFAULT CURRENT_USER)"
        )
        conn.execute("INSERT INTO schema_migrations (version) VALUES ('001_initial_schema')")
    run = topo.run("setup-tracking.yml")
    assert run.rc == 0, run.stdout[-2000:]
    assert "tracking tables created" in run.stdout and "tracking tables adopted" in run.stdout
    assert topo.versions("production-db") == ["001"]
    assert "changed=0" in topo.run("setup-tracking.yml").stdout.split("PLAY RECAP")[1]

    made = topo.run("new-migration.yml", name="add_feature_x", type="BREAKING", tme_migrations_dir=str(migrations_dir))
    assert made.rc == 0, made.stdout[-2000:]
    text = (migrations_dir / "016_add_feature_x.sql").read_text()
    assert "-- Type: BREAKING" in text and "-- ROLLBACK" in text and "VALUES ('016_add_feature_x'" in text


def test_breaking_refused_in_business_hours_before_anything_changes(
    tmp_path: Path, db: Any, db2: Any, migrations_dir: Path
) -> None:
    topo = bundled_topology(tmp_path, db, db2, migrations_dir, tme_breaking_allowed=False)
    assert topo.run("apply-safe.yml").rc == 0
    before = (topo.versions("staging-db"), topo.versions("production-db"), topo.backups())
    always = {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "00:00", "end": "24:00"}
    topo.production["tme_business_hours"] = always
    always["timezone"] = "Europe/Berlin"  # the team's zone, daylight saving time included, named in the refusal
    run = topo.run(
        "deploy-breaking.yml", app_image="tme-local/portal:2.4", release_target="015_create_user_preferences"
    )
    assert run.rc != 0
    assert "013_rename_client_company_name are refused within business hours" in run.stdout
    assert "Europe/Berlin; now" in run.stdout and ("CET" in run.stdout or "CEST" in run.stdout)
    assert (topo.versions("staging-db"), topo.versions("production-db"), topo.backups()) == before

    # Without the release's last migration named, pending BREAKING ones are listed and refused.
    topo.production["tme_business_hours"] = {"days": []}
    unnamed = topo.run("deploy-breaking.yml", app_image="tme-local/portal:2.4")
    assert unnamed.rc != 0
    assert "BREAKING migrations 013_rename_client_company_name and the release's last migration" in unnamed.stdout
    assert "-e release_target=VERSION" in unnamed.stdout
    assert (topo.versions("staging-db"), topo.versions("production-db"), topo.backups()) == before

    # The app is production's: a rollback of staging never touches it, and an unknown previous image is
    # refused before the database is.
    for request in (
        {"target": "staging", "redeploy_previous": True},
        {"target": "production", "redeploy_previous": True},
    ):
        refused = topo.run("rollback.yml", steps=1, **request)
        assert refused.rc != 0 and "Nothing was changed" in refused.stdout
    assert "never touches it" in topo.runs[-2].stdout and "no previous image was recorded" in topo.runs[-1].stdout
    assert (topo.versions("staging-db"), topo.versions("production-db"), topo.backups()) == before


def test_two_apply_safe_runs_at_once(tmp_path: Path, db: Any, db2: Any, migrations_dir: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    topo = bundled_topology(tmp_path, db, db2, migrations_dir, tme_rehearse=False)
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda _n: topo.run("apply-safe.yml"), range(2)))
    assert [r.rc for r in runs] == [0, 0], [r.stdout[-2000:] for r in runs]
    assert topo.versions("production-db") == [f"{n:03d}" for n in range(1, 16)]
    applied = topo.query(
        "production-db",
        "SELECT version, count(*) FROM schema_migrations_audit WHERE action = 'apply' GROUP BY version",
    )
    assert len(applied) == 15 and {count for _v, count in applied} == {1}  # each applied exactly once
    for backup in topo.backups():
        assert b"-- PostgreSQL database dump complete" in gzip.decompress(backup.read_bytes())[-400:]
