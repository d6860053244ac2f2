# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A pending migration with an error finding its file does not accept (a cluster-wide statement, a
password literal, ...) is refused by the migration and rehearsal modules before anything runs, on a
real server through ansible-playbook; with the file's ``-- Allow:`` header it is applied."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from ansible_collections.tme.migrations.plugins.module_utils._engine import Engine, Options
from ansible_collections.tme.migrations.plugins.plugin_utils._files import load_directory

from ..conftest import Database
from .test_modules import APPLY, hostvars
from .test_redaction import _everything
from .test_rehearsal import REHEARSE, scratch_databases

SECRET = "Refusal-pw-7Kq2x"
ALLOW = "-- Allow: cluster-wide, password-literal\n"


def role_migration(role: str) -> str:
    return (
        "CREATE TABLE refusal_b (id int);\n"
        f"CREATE ROLE {role} LOGIN PASSWORD '{SECRET}';\n"
        "\n-- ROLLBACK\n"
        f"-- DROP ROLE {role};\n"
        "-- DROP TABLE refusal_b;\n"
    )


@pytest.fixture
def role(db: Database) -> Iterator[str]:
    """A role name of this test; dropped afterwards if a migration created it."""
    name = "refusal_" + uuid.uuid4().hex[:8]
    yield name
    with db.connect(admin=True) as admin:
        admin.execute(f'DROP ROLE IF EXISTS "{name}"')


@pytest.fixture
def migrations(tmp_path: Path, role: str) -> Path:
    d = tmp_path / "refusal"
    d.mkdir()
    (d / "001_safe.sql").write_text("CREATE TABLE refusal_a (id int);\n\n-- ROLLBACK\n-- DROP TABLE refusal_a;\n")
    (d / "002_role.sql").write_text(role_migration(role))
    return d


def role_exists(db: Database, role: str) -> bool:
    with db.connect(admin=True) as admin:
        return bool(admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone())


def applied_versions(db: Database) -> list[str]:
    """Read as the superuser: the tables of the superuser's runs are not the application role's to read."""
    with db.connect(admin=True) as admin:
        return [r[0] for r in admin.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()]


def as_superuser(db: Database, migrations: Path) -> dict[str, dict[str, Any]]:
    """Only a superuser (or CREATEROLE) may run the accepted CREATE ROLE: the login role of these runs."""
    admin = db.server.admin_kwargs(db.name)
    return hostvars(db, migrations, h=admin["host"], u=admin["user"], pw="")


def test_refused_before_anything_is_applied(db: Database, migrations: Path, role: str, playbook: Any) -> None:
    runs = [playbook(APPLY, hostvars(db, migrations), check=True)]
    # The first real run parses the files and sends everything; the second (files unchanged) plans first.
    runs += [playbook(APPLY, hostvars(db, migrations)) for _attempt in range(2)]
    for run in runs:
        result = run.result("Apply migrations")
        assert run.rc != 0 and result["failed"], run.stdout
        # As for the other refusals, only the (empty) tracking tables the first real run creates changed.
        assert result["changed"] is (result["tracking"] == "created") and result["tracking"] in (None, "created")
        lines = result["msg"].splitlines()
        assert lines[0].startswith("002_role.sql line 2: refused (cluster-wide): roles belong to the whole server")
        assert lines[0].endswith("or accept it with '-- Allow: cluster-wide' in the file's header")
        assert lines[1].startswith(f"database {db.name} on ")
        assert ": refused, nothing was applied: 002_role has error findings" in lines[1]
        assert any(
            line.startswith("002_role.sql line 2: refused (password-literal): role")
            and line.endswith("add '-- Allow: password-literal' to the file's header to accept it deliberately")
            for line in lines[2:]
        ), lines
        # The rollback block is checked too: it would run its DROP ROLE on the server.
        assert any(line.startswith("002_role.sql (ROLLBACK block) line 5: refused (cluster-wide)") for line in lines)
        assert result["applied"] == [] and result["pending"] == ["001_safe", "002_role"]
        for name, text in _everything(run):
            assert SECRET not in text, f"the password is in {name}"
    # Nothing changed: the SAFE 001 before it was not applied either, no role, no tracking or audit row.
    assert not role_exists(db, role)
    assert "refusal_a" not in db.tables() and db.versions() == []
    if "schema_migrations_audit" in db.tables():
        assert db.scalar("SELECT count(*) FROM schema_migrations_audit") == 0

    # A run that stops before the refused migration is not refused.
    with Engine(db.kwargs, Options()) as engine:
        report = engine.apply(load_directory(str(migrations)), "001_safe")
    assert [e["version"] for e in report.applied] == ["001_safe"] and not role_exists(db, role)


def test_accepted_by_the_header_it_is_applied_and_an_applied_one_is_never_refused(
    db: Database, migrations: Path, role: str, playbook: Any
) -> None:
    (migrations / "002_role.sql").write_text(ALLOW + role_migration(role))
    run = playbook(APPLY, as_superuser(db, migrations))
    assert run.rc == 0, run.stdout
    assert [e["version"] for e in run.result("Apply migrations")["applied"]] == ["001_safe", "002_role"]
    assert role_exists(db, role) and applied_versions(db) == ["001_safe", "002_role"]
    for name, text in _everything(run):
        assert SECRET not in text, f"the password is in {name}"

    # The header is a comment: without it the applied file has not drifted, and is not refused again.
    (migrations / "002_role.sql").write_text(role_migration(role))
    (migrations / "003_safe.sql").write_text(
        "CREATE TABLE refusal_c (id int);\n\n-- ROLLBACK\n-- DROP TABLE refusal_c;\n"
    )
    run = playbook(APPLY, as_superuser(db, migrations))
    assert run.rc == 0, run.stdout
    assert [e["version"] for e in run.result("Apply migrations")["applied"]] == ["003_safe"]
    assert applied_versions(db) == ["001_safe", "002_role", "003_safe"]


def test_the_rehearsal_refuses_it(db: Database, migrations: Path, role: str, playbook: Any) -> None:
    run = playbook(REHEARSE, hostvars(db, migrations, bindir=str(db.server.bindir)))
    result = run.result("Rehearse pending migrations")
    assert run.rc != 0 and result["failed"] and result["changed"] is False, run.stdout
    msg = result["msg"]
    assert "002_role.sql line 2: refused (cluster-wide): roles belong to the whole server" in msg
    assert "refused, nothing was rehearsed: 002_role has error findings" in msg
    assert "refused (password-literal)" in msg and "add '-- Allow: password-literal'" in msg
    for name, text in _everything(run):
        assert SECRET not in text, f"the password is in {name}"
    assert not role_exists(db, role) and scratch_databases(db) == []
    assert db.tables() == []
