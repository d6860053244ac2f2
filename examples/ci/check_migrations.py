#!/usr/bin/env python3
"""CI step: lint the migrations with tme.migrations' playbooks/check.yml through ansible-runner.

    python examples/ci/check_migrations.py [MIGRATIONS_DIR] [REPORT_DIR]

Exits with ansible-playbook's return code: 0 when the lint passed, non-zero when a migration has
an error (e.g. declared SAFE but BREAKING, no rollback). The report is written either way:
REPORT_DIR/migration-lint.json (keep it as a CI artifact) and REPORT_DIR/migration-lint.txt.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import ansible_runner

COLLECTION = Path(__file__).resolve().parents[2]  # the checkout of tme.migrations


def main(argv: list[str]) -> int:
    migrations = Path(argv[1] if len(argv) > 1 else COLLECTION / "examples" / "migrations").resolve()
    reports = Path(argv[2] if len(argv) > 2 else os.environ.get("TME_REPORT_DIR", "lint-report")).resolve()
    with tempfile.TemporaryDirectory(prefix="tme-check-") as private:
        result = ansible_runner.run(
            private_data_dir=private,  # ansible-runner keeps its own artifacts (events, stdout) here
            playbook=str(COLLECTION / "playbooks" / "check.yml"),
            extravars={"check_migrations_dir": str(migrations), "check_report_dir": str(reports)},
            envvars={"ANSIBLE_CONFIG": str(COLLECTION / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"},
            quiet=True,
        )
    summary = reports / "migration-lint.txt"
    print(summary.read_text() if summary.exists() else f"no report: ansible-runner status {result.status}")
    return int(result.rc)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
