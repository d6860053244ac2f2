# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every playbook parses against the example inventory (its vault included), and requests that
cannot be right are refused before anything is touched, naming what is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import REPO

EXAMPLE = REPO / "inventory" / "example"
PLAYBOOKS = sorted(p.name for p in (REPO / "playbooks").glob("*.yml"))


def ansible(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    binary = str(Path(sys.executable).parent / tool)
    return subprocess.run([binary, *args], cwd=REPO, env=env, text=True, capture_output=True, check=False)


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_playbook_parses_with_the_example_inventory(playbook: str) -> None:
    done = ansible(
        "ansible-playbook",
        "--syntax-check",
        "-i",
        str(EXAMPLE),
        "--vault-password-file",
        str(EXAMPLE / "vault-password.example"),
        f"playbooks/{playbook}",
    )
    assert done.returncode == 0, done.stderr


def test_example_inventory_is_the_guides_topology() -> None:
    done = ansible(
        "ansible-inventory",
        "-i",
        str(EXAMPLE),
        "--vault-password-file",
        str(EXAMPLE / "vault-password.example"),
        "--host",
        "tme-production",
    )
    assert done.returncode == 0, done.stderr
    assert '"tme_db_name": "tme_portal"' in done.stdout and '"tme_reference_host": "tme-staging"' in done.stdout
    assert '"tme_db_container": "tme-user-postgres-1"' in done.stdout
    assert '"vault_tme_db_password": "CHANGE-ME-example-only"' in done.stdout  # a placeholder, no real secret
    assert '"tme_breaking_allowed": false' in done.stdout


@pytest.mark.parametrize(
    ("playbook", "extra", "message"),
    [
        ("rollback.yml", ["-e", "target=production"], "either -e version=VERSION or -e steps=N"),
        ("restore.yml", ["-e", "target=production", "-e", "backup=/nonexistent.sql.gz"], "confirm_restore=tme_portal"),
        ("deploy-breaking.yml", [], "-e app_image="),
        ("new-migration.yml", ["-e", "name=Bad Name"], "lower case"),
    ],
)
def test_wrong_requests_are_refused_first(playbook: str, extra: list[str], message: str) -> None:
    done = ansible(
        "ansible-playbook",
        "-i",
        str(EXAMPLE),
        "--vault-password-file",
        str(EXAMPLE / "vault-password.example"),
        f"playbooks/{playbook}",
        "-e",
        "ansible_connection=local",  # never a connection to the example's server, even by mistake
        *extra,
    )
    assert done.returncode != 0
    assert message in done.stdout, done.stdout[-2000:]
