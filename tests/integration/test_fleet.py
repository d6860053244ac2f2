# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A fleet: several production databases behind one staging, through apply-safe.yml with forks.

One database failing in the middle of the run: the others finish, the failed one is named, and
nothing of the failed migration is left on it. The timing of a fleet is bench/fleet.py's (P5)."""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import PG15_BINDIR, REPO, Database, _drop, _new_database
from .topology import common_hostvars, password_lookup

SAFE = [f"{n:03d}" for n in range(1, 13)]


@pytest.fixture
def fleet(pg_server: Any) -> Iterator[list[Database]]:
    if pg_server.bindir == PG15_BINDIR:
        pytest.skip("what a fleet does does not depend on the server's version: the bundled server covers it")
    databases = [_new_database(pg_server) for _index in range(5)]
    yield databases
    for database in databases:
        _drop(database)


def fleet_vars(any_db: Database, migrations: Path, tmp: Path) -> dict[str, Any]:
    """What every host of the fleet shares: the one test server, the migrations, no rehearsal."""
    return {
        **common_hostvars(tmp, migrations),
        "tme_db_host": "127.0.0.1",
        "tme_db_port": any_db.server.port,
        "tme_db_password": password_lookup(any_db.kwargs["password"]),
        "tme_pg_bin_dir": str(any_db.server.bindir),
        "tme_rehearse": False,
    }


def run(tmp: Path, inventory: dict[str, Any], playbook: str, forks: int) -> tuple[int, str]:
    import ansible_runner

    private = Path(tempfile.mkdtemp(prefix="runner-", dir=tmp))
    path = private / "hosts.json"
    path.write_text(json.dumps(inventory))
    runner = ansible_runner.run(
        private_data_dir=str(private),
        playbook=str(REPO / "playbooks" / playbook),
        inventory=str(path),
        forks=forks,
        envvars={"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"},
        quiet=True,
    )
    return runner.rc, runner.stdout.read()


def test_one_database_failing_leaves_the_fleet_finished(
    fleet: list[Database], migrations_dir: Path, tmp_path: Path
) -> None:
    staging, *production = fleet
    broken = production[2]
    # A type named like 007's table: CREATE TABLE documents fails on this database only.
    broken.query("CREATE TYPE documents AS ENUM ('x')")
    shared = fleet_vars(staging, migrations_dir, tmp_path)
    hosts = {
        f"prod-{i}": {"tme_db_name": db.name, "tme_reference_host": "staging-db"} for i, db in enumerate(production)
    }
    for name, host in hosts.items():
        host["tme_pending_file"] = str(tmp_path / "reports" / name / "PENDING_MIGRATIONS.md")
    inventory = {
        "all": {
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, **shared},
            "children": {
                "staging": {"hosts": {"staging-db": {"tme_db_name": staging.name}}},
                "production": {"hosts": hosts},
            },
        }
    }

    rc, stdout = run(tmp_path, inventory, "apply-safe.yml", forks=4)

    assert rc != 0, stdout[-6000:]
    assert [v[:3] for v in staging.versions()] == [f"{n:03d}" for n in range(1, 16)]
    for db in production:
        if db is broken:
            continue
        assert [v[:3] for v in db.versions()] == SAFE, db.name
    # The failed database: everything before 007, nothing of 007, its type untouched.
    assert [v[:3] for v in broken.versions()] == SAFE[:6]
    assert "documents" not in broken.tables()
    assert broken.scalar("SELECT count(*) FROM pg_type WHERE typname = 'documents'") == 1
    # The run names the failed host and database, and only that one.
    failed_lines = [line for line in stdout.splitlines() if line.startswith("fatal: [")]
    assert any("prod-2" in line for line in failed_lines), stdout[-3000:]
    assert not any("prod-0" in line or "prod-1" in line or "prod-3" in line for line in failed_lines)
    recap = stdout[stdout.index("PLAY RECAP") :]
    assert "007_create_documents" in stdout
    for name in ("prod-0", "prod-1", "prod-3", "staging-db"):
        line = next(line for line in recap.splitlines() if line.startswith(name))
        assert "failed=0" in line, line

    # A rerun after the fix completes the failed database and changes nothing elsewhere.
    broken.query("DROP TYPE documents")
    rc, stdout = run(tmp_path, inventory, "apply-safe.yml", forks=4)
    assert rc == 0, stdout[-3000:]
    assert all([v[:3] for v in db.versions()] == SAFE for db in production)


def test_a_staging_failure_holds_only_the_production_behind_it(
    fleet: list[Database], migrations_dir: Path, tmp_path: Path
) -> None:
    """Two staging/production pairs: the failed staging holds its own production, not the other pair's."""
    staging_a, production_a, staging_b, production_b, _spare = fleet
    staging_b.query("CREATE TYPE documents AS ENUM ('x')")
    shared = fleet_vars(staging_a, migrations_dir, tmp_path)
    inventory = {
        "all": {
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, **shared},
            "children": {
                "staging": {
                    "hosts": {
                        "staging-a": {"tme_db_name": staging_a.name},
                        "staging-b": {"tme_db_name": staging_b.name},
                    }
                },
                "production": {
                    "hosts": {
                        "production-a": {
                            "tme_db_name": production_a.name,
                            "tme_reference_host": "staging-a",
                            "tme_pending_file": str(tmp_path / "a" / "PENDING_MIGRATIONS.md"),
                        },
                        "production-b": {
                            "tme_db_name": production_b.name,
                            "tme_reference_host": "staging-b",
                            "tme_pending_file": str(tmp_path / "b" / "PENDING_MIGRATIONS.md"),
                        },
                    }
                },
            },
        }
    }
    rc, stdout = run(tmp_path, inventory, "apply-safe.yml", forks=4)
    assert rc != 0
    assert [v[:3] for v in production_a.versions()] == SAFE
    assert production_b.versions() == []  # its staging failed: untouched
    assert "staging-b" in stdout
