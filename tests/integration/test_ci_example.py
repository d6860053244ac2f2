# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""examples/ci/run_workflow.py as a CI job runs it: apply-safe.yml through ansible-runner against real
PostgreSQL, the inventory's database password in an ansible-vault string, the vault password from
the environment variable TME_VAULT_PASSWORD. The JSON summary, the exit code, the kept artifacts, and
no vault password file and no secret left anywhere on disk."""

from __future__ import annotations

import json
import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..conftest import REPO, Database
from .topology import SAFE_BEFORE_013, common_hostvars

SCRIPT = REPO / "examples" / "ci" / "run_workflow.py"
ANSIBLE_VAULT = str(Path(sys.executable).parent / "ansible-vault")
ALL = [f"{n:03d}" for n in range(1, 16)]


def vaulted_inventory(root: Path, db: Database, db2: Database, migrations: Path, vault_password: str) -> Path:
    """An inventory as a team keeps it: hosts.yml, and the database password in group_vars/all/vault.yml,
    encrypted with `ansible-vault encrypt_string` (the vault password read from the environment by an
    executable vault password file that holds no secret; the plaintext through stdin, not argv)."""
    inventory = root / "inventory"
    (inventory / "group_vars" / "all").mkdir(parents=True)
    client = root / "vault-client.sh"
    client.write_text('#!/bin/sh\nprintf "%s\\n" "$TME_VAULT_PASSWORD"\n')
    client.chmod(0o700)
    encrypted = subprocess.run(
        [
            ANSIBLE_VAULT,
            "encrypt_string",
            "--vault-password-file",
            str(client),
            "--stdin-name",
            "vault_tme_db_password",
        ],
        input=db.kwargs["password"],
        env={**os.environ, "TME_VAULT_PASSWORD": vault_password},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "$ANSIBLE_VAULT;1.1;AES256" in encrypted and db.kwargs["password"] not in encrypted
    client.unlink()
    (inventory / "group_vars" / "all" / "vault.yml").write_text(encrypted)
    shared: dict[str, Any] = {
        **common_hostvars(root, migrations),
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "tme_db_host": "127.0.0.1",
        "tme_db_port": db.server.port,
        "tme_db_password": "{{ vault_tme_db_password }}",
        "tme_pg_bin_dir": str(db.server.bindir),
        "tme_breaking_allowed": False,  # as on the team's server: 013 waits for a release
    }
    hosts = {
        "all": {
            "vars": shared,
            "children": {
                "staging": {"hosts": {"ci-staging": {"tme_db_name": db.name}}},
                "production": {
                    "hosts": {"ci-production": {"tme_db_name": db2.name, "tme_reference_host": "ci-staging"}}
                },
            },
        }
    }
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
    return inventory


def run_script(root: Path, *args: str, vault_password: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The script as a CI job runs it: the secret in its environment, its own TMPDIR (to see what it leaves)."""
    tmpdir = root / "job-tmp"
    tmpdir.mkdir(exist_ok=True)
    env = {**os.environ, "TME_VAULT_PASSWORD": vault_password, "TMPDIR": str(tmpdir)}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=root, env=env, capture_output=True, text=True, check=False
    )
    return done, tmpdir


def assert_nothing_secret(root: Path, done: subprocess.CompletedProcess[str], *needles: str) -> None:
    for needle in needles:
        assert needle not in done.stdout and needle not in done.stderr
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            for needle in needles:
                assert needle.encode() not in data, f"a secret is in {path}"


def test_apply_safe_in_ci_with_a_vaulted_inventory(
    db: Database, db2: Database, migrations_dir: Path, tmp_path: Path
) -> None:
    vault_password = "ci-" + secrets.token_urlsafe(16)
    inventory = vaulted_inventory(tmp_path, db, db2, migrations_dir, vault_password)
    artifacts = tmp_path / "ci-artifacts"

    done, tmpdir = run_script(
        tmp_path, "apply-safe", "-i", str(inventory), "--artifacts", str(artifacts), vault_password=vault_password
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["rc"] == 0 and summary["status"] == "successful" and summary["playbook"] == "apply-safe.yml"
    assert summary["stats"]["failures"] == {} and set(summary["stats"]["ok"]) == {"ci-staging", "ci-production"}
    assert "PLAY RECAP" in done.stderr  # the playbook's output, for the job log

    # What was applied and what waits, as pending.json says (the report role wrote it).
    pending = summary["pending"]
    assert pending == json.loads((artifacts / "reports" / "pending.json").read_text())
    staging, production = pending["environments"]["staging"], pending["environments"]["production"]
    assert (staging["host"], staging["database"]) == ("ci-staging", db.name)
    assert (production["host"], production["database"]) == ("ci-production", db2.name)
    assert [v[:3] for v in staging["applied"]] == ALL and staging["pending"] == []
    assert [v[:3] for v in production["applied"]] == SAFE_BEFORE_013
    assert [v[:3] for v in staging["applied_this_run"]] == ALL  # this run applied them
    assert [v[:3] for v in production["applied_this_run"]] == SAFE_BEFORE_013
    waiting = {w["version"][:3]: w for w in pending["waiting"]}
    assert list(waiting) == ["013", "014", "015"]
    assert waiting["013"]["classification"] == "BREAKING" and waiting["013"]["reason"] == "breaking_needs_release"
    assert waiting["013"]["why_breaking"]  # the parse tree's reason: a column renamed
    assert waiting["014"]["reason"] == waiting["015"]["reason"] == "behind_breaking"
    assert waiting["015"]["blocked_by"] == waiting["013"]["version"]
    assert pending["counts"]["waiting"] == 3 and pending["counts"]["waiting_breaking"] == 1
    assert pending["generated_at"].endswith("Z") and pending["check_mode"] is False
    # The databases agree, read independently of the collection.
    assert [v[:3] for v in db.versions()] == ALL and [v[:3] for v in db2.versions()] == SAFE_BEFORE_013

    # Artifacts kept for the job to upload: the runner's own, the reports, the summary.
    run_dir = Path(summary["artifacts"])
    assert run_dir.parent == artifacts / "runner"
    assert (run_dir / "rc").read_text().strip() == "0" and (run_dir / "status").read_text().strip() == "successful"
    assert "PLAY RECAP" in (run_dir / "stdout").read_text()
    assert any((run_dir / "job_events").glob("*.json"))
    assert "### 013_rename_client_company_name.sql" in (artifacts / "reports" / "PENDING_MIGRATIONS.md").read_text()
    assert json.loads((artifacts / "summary.json").read_text()) == summary
    command = json.loads((run_dir / "command").read_text())
    assert "--vault-password-file" in command["command"]
    assert "TME_VAULT_PASSWORD" not in command["env"]  # out of the environment before the runner started
    assert set(command["env"].values()) == {"<redacted>"}  # the job's other secrets (tokens) neither

    # No vault password file left, and neither secret anywhere: artifacts, reports, backups, TMPDIR.
    assert not any(p.name.startswith("tme-vault-") for p in tmpdir.iterdir())
    vault_file = command["command"][command["command"].index("--vault-password-file") + 1]
    assert not os.path.exists(vault_file) and not os.path.exists(os.path.dirname(vault_file))
    assert os.path.dirname(os.path.dirname(vault_file)) == str(tmpdir)
    assert_nothing_secret(tmp_path, done, vault_password, db.kwargs["password"])

    # Run again: nothing more to apply, the same wait, the old pending.json replaced.
    again, _tmpdir = run_script(
        tmp_path, "apply-safe", "-i", str(inventory), "--artifacts", str(artifacts), vault_password=vault_password
    )
    assert again.returncode == 0, again.stderr[-3000:]
    second = json.loads(again.stdout)["pending"]
    assert json.loads(again.stdout)["stats"]["changed"] == {}  # a run that applies nothing changes nothing
    assert second["environments"]["production"]["applied_this_run"] == []
    assert second["environments"]["staging"]["applied_this_run"] == []
    assert [w["version"][:3] for w in second["waiting"]] == ["013", "014", "015"]
    assert len(list((artifacts / "runner").iterdir())) == 2  # one directory per run
    assert_nothing_secret(tmp_path, again, vault_password, db.kwargs["password"])


@pytest.mark.parametrize(
    ("args", "wrong_password", "message"),
    [
        (["apply-safe"], True, "Decryption failed"),
        (["deploy-breaking"], False, "-e app_image="),  # the release job without its image is refused first
    ],
)
def test_a_failed_run_exits_non_zero_and_leaves_no_secret(
    db: Database,
    db2: Database,
    migrations_dir: Path,
    tmp_path: Path,
    args: list[str],
    wrong_password: bool,
    message: str,
) -> None:
    vault_password = "ci-" + secrets.token_urlsafe(16)
    inventory = vaulted_inventory(tmp_path, db, db2, migrations_dir, vault_password)
    artifacts = tmp_path / "ci-artifacts"
    given = "wrong-" + secrets.token_urlsafe(8) if wrong_password else vault_password
    done, tmpdir = run_script(
        tmp_path, *args, "-i", str(inventory), "--artifacts", str(artifacts), vault_password=given
    )
    summary = json.loads(done.stdout)
    assert done.returncode == summary["rc"] != 0
    assert message in done.stderr, done.stderr[-3000:]
    assert summary["pending"] is None  # no report: nothing stale is passed off as this run's
    assert db.versions() == [] and db2.versions() == []  # nothing was touched
    assert (Path(summary["artifacts"]) / "rc").read_text().strip() == str(summary["rc"])
    assert not any(p.name.startswith("tme-vault-") for p in tmpdir.iterdir())
    assert_nothing_secret(tmp_path, done, vault_password, given, db.kwargs["password"])


# A task that runs until the test lets it end: ansible-runner's cancel kills ansible-playbook's process
# group, but a task already running goes on in its worker process (its own session) until it ends.
WAIT = """\
- name: A long run (a cancelled CI job)
  hosts: all
  gather_facts: false
  tasks:
    - name: Wait until the test says so
      ansible.builtin.wait_for:
        path: "{{ release_file }}"
        timeout: 120
"""


def _processes_under(root: Path) -> list[int]:
    """Processes whose command line names a path under `root` (this test's own)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if str(root).encode() in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def test_a_cancelled_job_removes_the_vault_password_file(tmp_path: Path) -> None:
    """SIGTERM (GitLab or GitHub cancelling the job): the run is cancelled, the file removed. While the
    run goes on, the file exists with mode 0600 in a 0700 directory."""
    import signal
    import time

    release = tmp_path / "release"
    (tmp_path / "wait.yml").write_text(WAIT)
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "release_file": str(release)}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {"h": host}}}))
    tmpdir = tmp_path / "job-tmp"
    tmpdir.mkdir()
    vault_password = "ci-" + secrets.token_urlsafe(16)
    env = {**os.environ, "TME_VAULT_PASSWORD": vault_password, "TMPDIR": str(tmpdir)}
    argv = [sys.executable, str(SCRIPT), str(tmp_path / "wait.yml"), "-i", "hosts.yml", "--artifacts", "out"]
    job = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not list(tmpdir.glob("tme-vault-*/vault-password")) and time.monotonic() < deadline:
            time.sleep(0.1)
        [secret] = list(tmpdir.glob("tme-vault-*/vault-password"))
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        assert stat.S_IMODE(secret.parent.stat().st_mode) == 0o700
        assert secret.read_text() == vault_password
        time.sleep(2)  # ansible-playbook has started
        job.send_signal(signal.SIGTERM)
        stdout, stderr = job.communicate(timeout=60)
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
        release.touch()  # the orphaned task ends, and with it its worker
        deadline = time.monotonic() + 30
        while _processes_under(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.2)
    assert _processes_under(tmp_path) == []
    summary = json.loads(stdout)
    assert job.returncode == summary["rc"] != 0, stderr[-2000:]
    assert summary["status"] == "canceled" and summary["cancelled"] is True
    assert not secret.exists() and not secret.parent.exists()
    assert_nothing_secret(tmp_path, subprocess.CompletedProcess(argv, job.returncode, stdout, stderr), vault_password)


def test_the_vault_password_file_is_private_and_always_removed() -> None:
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from run_workflow import vault_password_file
    finally:
        sys.path.remove(str(SCRIPT.parent))
    with pytest.raises(RuntimeError), vault_password_file("s3cret-for-this-test") as path:
        assert Path(path).read_text() == "s3cret-for-this-test"
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
        raise RuntimeError("the run failed")
    assert not os.path.exists(path) and not os.path.exists(os.path.dirname(path))


def _commands(value: Any) -> list[str]:
    """Every string of a CI file: its shell commands among them."""
    if isinstance(value, dict):
        return [s for v in value.values() for s in _commands(v)]
    if isinstance(value, list):
        return [s for v in value for s in _commands(v)]
    return [value] if isinstance(value, str) else []


@pytest.mark.parametrize("name", ["gitlab-ci.yml", "github-actions.yml"])
def test_the_ci_configs_run_both_jobs_through_the_script(name: str) -> None:
    text = (SCRIPT.parent / name).read_text()
    config = yaml.safe_load(text)
    runs = [" ".join(c.split()) for c in _commands(config) if "run_workflow.py" in c]
    merge = [c for c in runs if "run_workflow.py apply-safe -i deploy/inventory" in c]
    release = [c for c in runs if "run_workflow.py deploy-breaking -i deploy/inventory" in c]
    assert len(merge) == 1 and len(release) == 1, runs
    assert 'release_target="$TME_RELEASE_TARGET"' in release[0] and "app_image=" in release[0]
    assert all("--artifacts" in c for c in runs)
    assert "TME_VAULT_PASSWORD" in text and "ci-artifacts/" in text  # the secret, the uploaded directory
    assert "vault-password-file" not in text  # the script makes the file; the job never writes one
