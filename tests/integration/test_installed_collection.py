# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The built collection stands on its own: the tarball of `make build` (tools/build_collection.py),
installed offline into a temporary directory, runs its own playbooks with no checkout in reach.

Ansible here sees only the installed copy and the `ansible` package's collections (no .collections
symlink, no scan of sys.path, a temporary ansible.cfg and working directory). The installed
local-postgres.yml starts a server on a private port in a private directory (stopped at the end), then
apply-safe.yml and status.yml run the example migrations (copied from the installed copy) against it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from ..conftest import free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SITE_COLLECTIONS = Path(yaml.__file__).resolve().parents[1]  # site-packages, holding ansible_collections/
BIN = Path(sys.executable).parent
VERSION = str(yaml.safe_load((REPO / "galaxy.yml").read_text())["version"])

# What the tarball may hold at its top level, and what must never be in it.
ALLOWED_TOP = {
    "MANIFEST.json",
    "FILES.json",
    "README.md",
    "CHANGELOG.md",
    "LICENSE",
    "Makefile",
    "ansible.cfg",
    "execution-environment.yml",
    "pyproject.toml",
    "requirements.yml",
    ".ansible-lint",
    "changelogs",
    "docs",
    "examples",
    "inventory",
    "meta",
    "playbooks",
    "plugins",
    "roles",
    "tests",
    "tools",
}
FORBIDDEN_PARTS = {
    ".git",
    ".venv",
    ".local",
    ".collections",
    ".ansible",
    ".ci",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    "__pycache__",
    "bench",
}


@pytest.fixture(scope="module")
def work() -> Iterator[Path]:
    """A private directory, traversable by the server's system user when the tests run as root."""
    path = Path(tempfile.mkdtemp(prefix="tme-installed-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def tarball(work: Path) -> Path:
    done = subprocess.run(
        [sys.executable, str(REPO / "tools" / "build_collection.py"), "--output-path", str(work / "dist")],
        text=True,
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    path = Path(done.stdout.strip())
    assert path.name == f"tme-migrations-{VERSION}.tar.gz"
    return path


def _env(work: Path) -> dict[str, str]:
    """Ansible sees the installed copy and the `ansible` package's collections, nothing of the checkout."""
    config = work / "ansible.cfg"
    if not config.exists():
        config.write_text(
            "[defaults]\n"
            f"collections_path = {work / 'collections'}{os.pathsep}{SITE_COLLECTIONS}\n"
            "collections_scan_sys_path = false\n"
            "retry_files_enabled = false\n"
            "interpreter_python = auto_silent\n"
            "stdout_callback = ansible.builtin.default\n"
            f"local_tmp = {work / 'ansible-tmp'}\n"
            "[galaxy]\n"
            "server = http://127.0.0.1:9\n"  # nothing answers: the install must not need Galaxy
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_") and k != "PYTHONPATH"}
    env.update(
        ANSIBLE_CONFIG=str(config),
        ANSIBLE_COLLECTIONS_PATH=f"{work / 'collections'}{os.pathsep}{SITE_COLLECTIONS}",
        ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
        ANSIBLE_NOCOLOR="1",
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


@pytest.fixture(scope="module")
def installed(work: Path, tarball: Path) -> Path:
    """The tarball installed offline. Its dependencies resolve against the community.* collections of the
    `ansible` package (Galaxy is unreachable), which must meet galaxy.yml's minimum versions."""
    done = subprocess.run(
        [
            str(BIN / "ansible-galaxy"),
            "collection",
            "install",
            "--offline",
            "-p",
            str(work / "collections"),
            str(tarball),
        ],
        cwd=work,
        env=_env(work),
        text=True,
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    for dependency in ("community.postgresql", "community.docker"):
        assert f"'{dependency}:" in done.stdout and "is already installed" in done.stdout, done.stdout
    root = work / "collections" / "ansible_collections" / "tme" / "migrations"
    assert (root / "MANIFEST.json").is_file()
    return root


def test_tarball_holds_only_the_collection(tarball: Path) -> None:
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    tops = {name.split("/", 1)[0] for name in names}
    assert tops <= ALLOWED_TOP, f"unexpected top-level entries: {sorted(tops - ALLOWED_TOP)}"
    leaked = sorted(n for n in names if FORBIDDEN_PARTS & set(n.split("/")) or n.startswith("tests/output"))
    assert not leaked, f"files that do not belong in a release: {leaked[:20]}"
    assert not [n for n in names if n.endswith((".pyc", ".tar.gz"))]
    # What an installed copy needs to run its own server and playbooks.
    for needed in (
        "roles/local_postgres/files/localpg.py",
        "playbooks/local-postgres.yml",
        "playbooks/apply-safe.yml",
        "playbooks/status.yml",
        "examples/migrations/001_initial_schema.sql",
        "plugins/plugin_utils/_collection.py",
    ):
        assert needed in names, needed
    # Only the inventories the repository ships, never a team's own.
    inventories = {n.split("/")[1] for n in names if n.startswith("inventory/") and n.count("/") >= 1}
    inventories.discard("")
    tracked = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "--cached", "--others", "--exclude-standard", "inventory"],
        text=True,
        capture_output=True,
        check=True,
    ).stdout.split()
    assert inventories <= {p.split("/")[1] for p in tracked}
    assert tarball.stat().st_size < 2_000_000, "the tarball grew: something that is no source got in"


def test_manifest_carries_the_version_and_true_dependencies(installed: Path) -> None:
    info = json.loads((installed / "MANIFEST.json").read_text())["collection_info"]
    assert info["version"] == VERSION
    assert set(info["dependencies"]) == {"community.postgresql", "community.docker"}
    # The version is written once: galaxy.yml (no [project] table, no constant in the Python code).
    assert "project" not in tomllib.loads((REPO / "pyproject.toml").read_text())
    model = (installed / "plugins" / "module_utils" / "_model.py").read_text()
    assert VERSION not in model


def _runner(work: Path, installed: Path, playbook: str, inventory: Path | None, **extravars: Any) -> Any:
    import ansible_runner

    private = Path(tempfile.mkdtemp(prefix="runner-", dir=work))
    kwargs: dict[str, Any] = {}
    if inventory is not None:
        kwargs["inventory"] = str(inventory)
    return ansible_runner.run(
        private_data_dir=str(private),
        playbook=str(installed / "playbooks" / playbook),
        extravars=extravars,
        envvars=_env(work),
        quiet=True,
        **kwargs,
    )


def _results(runner: Any) -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for event in runner.events:
        data = event.get("event_data", {})
        if event.get("event") in ("runner_on_ok", "runner_on_failed") and "res" in data:
            out[(data.get("host"), data.get("task"))] = dict(data["res"])
    return out


def _versions(server: dict[str, Any], password: str, db: str) -> list[str]:
    import psycopg

    with psycopg.connect(
        host="127.0.0.1", port=server["port"], user="tme_user", password=password, dbname=db, autocommit=True
    ) as conn:
        rows = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    return [row[0] for row in rows]


def _inventory(work: Path, installed: Path, root: Path, port: int) -> Path:
    """inventory/local's shape, on the private server, with the example migrations copied out."""
    migrations = work / "migrations"
    shutil.copytree(installed / "examples" / "migrations", migrations)
    inventory = work / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    shutil.copy(installed / "inventory" / "local" / "hosts.yml", inventory / "hosts.yml")
    (inventory / "group_vars" / "all.yml").write_text(
        yaml.safe_dump(
            {
                "ansible_connection": "local",
                "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                "tme_migrations_dir": str(migrations),
                "tme_db_host": "127.0.0.1",
                "tme_db_port": port,
                "tme_db_user": "tme_user",
                "tme_db_password": "{{ lookup('ansible.builtin.file', '%s') }}"
                % (root / "secrets" / "tme_user.password"),
                "tme_pg_bin_dir": "{{ lookup('ansible.builtin.file', '%s') }}" % (root / "bindir"),
                "tme_breaking_allowed": False,
                "tme_backup_dir": str(work / "backups"),
                "tme_pending_file": str(work / "reports" / "PENDING_MIGRATIONS.md"),
            }
        )
    )
    return inventory


def test_installed_copy_runs_its_own_server_and_playbooks(work: Path, installed: Path) -> None:
    listed = subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "list", "tme.migrations", "--format", "json"],
        cwd=work,
        env=_env(work),
        text=True,
        capture_output=True,
        check=True,
    )
    places = json.loads(listed.stdout)
    assert list(places) == [str(work / "collections" / "ansible_collections")], places

    root = work / "pg"
    port = free_port()
    try:
        started = _runner(
            work, installed, "local-postgres.yml", None, local_postgres_root=str(root), local_postgres_port=port
        )
        started_out = started.stdout.read()
        assert started.rc == 0, started_out
        ran = _results(started)[("localhost", "Run the bundled PostgreSQL (started)")]
        # The installed role ran its own copy of the server code, with the controller's Python.
        assert ran["cmd"][1] == str(installed / "roles" / "local_postgres" / "files" / "localpg.py")
        server = json.loads(ran["stdout"])
        assert server["port"] == port and server["data"] == str(root / "data")
        password = (root / "secrets" / "tme_user.password").read_text().strip()
        assert (root / "secrets" / "tme_user.password").stat().st_mode & 0o077 == 0
        assert password not in started_out

        inventory = _inventory(work, installed, root, port)
        applied = _runner(work, installed, "apply-safe.yml", inventory)
        applied_out = applied.stdout.read()
        assert applied.rc == 0, applied_out[-4000:]
        assert password not in applied_out
        staging = _versions(server, password, "tme_portal_test")
        production = _versions(server, password, "tme_portal")
        assert [v[:3] for v in staging] == [f"{n:03d}" for n in range(1, 16)]
        assert [v[:3] for v in production] == [f"{n:03d}" for n in range(1, 13)]  # 013 (BREAKING) is held
        assert (work / "reports" / "PENDING_MIGRATIONS.md").is_file()

        status = _runner(work, installed, "status.yml", inventory)
        status_out = status.stdout.read()
        assert status.rc == 0, status_out[-4000:]
        assert password not in status_out
        assert "013" in status_out  # production's table lists the held BREAKING migration
        assert "013" in (work / "reports" / "PENDING_MIGRATIONS.md").read_text()

        # The tracking rows carry galaxy.yml's version, passed on by the installed action plugins.
        import psycopg

        for db in ("tme_portal_test", "tme_portal"):
            with psycopg.connect(
                host="127.0.0.1", port=port, user="tme_user", password=password, dbname=db, autocommit=True
            ) as conn:
                rows = conn.execute("SELECT DISTINCT tool_version FROM schema_migrations").fetchall()
            assert {row[0] for row in rows} == {VERSION}, db
    finally:
        stopped = _runner(
            work,
            installed,
            "local-postgres.yml",
            None,
            local_postgres_root=str(root),
            local_postgres_port=port,
            local_postgres_state="stopped",
        )
        if stopped.rc != 0:  # stop it anyway, then say so
            subprocess.run(
                [sys.executable, str(installed / "roles/local_postgres/files/localpg.py"), "stop", "--root", str(root)],
                check=False,
            )
        assert stopped.rc == 0, stopped.stdout.read()
    status_after = subprocess.run(
        [
            sys.executable,
            str(installed / "roles/local_postgres/files/localpg.py"),
            "status",
            "--root",
            str(root),
            "--port",
            str(port),
        ],
        text=True,
        capture_output=True,
        check=False,
    )
    assert status_after.returncode == 3, status_after.stdout  # stopped
