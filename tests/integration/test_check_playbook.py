# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/check.yml through ansible-runner, as CI runs it, and the documented CI example."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from ..conftest import EXAMPLES, REPO, run_playbook

CHECK = REPO / "playbooks" / "check.yml"


def check(tmp_path: Path, migrations: Path) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    reports = tmp_path / "reports"
    run = run_playbook(
        tmp_path, CHECK, {}, extravars={"check_migrations_dir": str(migrations), "check_report_dir": str(reports)}
    )
    report = json.loads((reports / "migration-lint.json").read_text())
    return run.rc, report, (reports / "migration-lint.txt").read_text()


def test_clean_set_passes_and_writes_the_report(tmp_path: Path) -> None:
    rc, report, text = check(tmp_path, EXAMPLES)
    assert rc == 0
    assert report["failed"] is False
    assert report["summary"]["migrations"] == 15 and report["summary"]["errors"] == 0
    by_version = {m["version"]: m for m in report["migrations"]}
    assert by_version["013_rename_client_company_name"]["classification"] == "BREAKING"
    assert text.strip().splitlines()[-1].endswith("lint passed (fail_on=error)")


def test_breaking_file_declared_safe_fails_with_the_report(tmp_path: Path) -> None:
    migrations = tmp_path / "migrations"
    shutil.copytree(EXAMPLES, migrations)
    (migrations / "016_drop_fax.sql").write_text(
        "-- Migration: 016_drop_fax\n-- Type: SAFE\n\nBEGIN;\n\nALTER TABLE clients DROP COLUMN fax;\n\nCOMMIT;\n\n"
        "-- ROLLBACK\n-- ALTER TABLE clients ADD COLUMN fax text;\n"
    )
    rc, report, text = check(tmp_path, migrations)
    assert rc != 0
    assert report["failed"] is True
    (entry,) = [m for m in report["migrations"] if m["version"] == "016_drop_fax"]
    errors = [f for f in entry["findings"] if f["severity"] == "error"]
    assert [(f["rule"], f["line"]) for f in errors] == [("declared-safe-but-breaking", 6)]
    assert errors[0]["path"].endswith("016_drop_fax.sql")
    assert "ERROR" in text and "016_drop_fax.sql line 6" in text


def test_unreadable_file_is_reported_not_crashed(tmp_path: Path) -> None:
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "001_bad.sql").write_text("CREATE TABLE t (id int;\n-- ROLLBACK\n-- DROP TABLE t;\n")
    rc, report, _text = check(tmp_path, migrations)
    assert rc != 0
    (finding,) = report["migrations"][0]["findings"]
    assert (finding["rule"], finding["line"]) == ("invalid-migration", 1)
    assert "syntax error" in finding["message"]


def test_documented_ci_example(tmp_path: Path) -> None:
    script = REPO / "examples" / "ci" / "check_migrations.py"
    done = subprocess.run(
        [sys.executable, str(script), str(EXAMPLES), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "15 migrations" in done.stdout
    assert json.loads((tmp_path / "out" / "migration-lint.json").read_text())["summary"]["safe"] == 14
