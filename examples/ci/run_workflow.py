#!/usr/bin/env python3
"""CI step: run a tme.migrations workflow playbook through ansible-runner, the vault password from a
CI secret, and say as JSON what was applied and what waits.

    TME_VAULT_PASSWORD=... python examples/ci/run_workflow.py apply-safe -i deploy/inventory --artifacts ci-artifacts
    TME_VAULT_PASSWORD=... python examples/ci/run_workflow.py deploy-breaking -i deploy/inventory \\
        -e app_image=tme-portal-server:2.4 -e release_target=013_rename_client_company_name --artifacts ci-artifacts

- The vault password comes from the environment variable TME_VAULT_PASSWORD (a masked CI secret). It is
  removed from this process's environment at once (ansible-runner copies the whole environment into its
  artifact ARTIFACTS/runner/<ident>/command, which the job uploads), written to a 0600 file in a fresh 0700
  temporary directory for --vault-password-file, and that directory is deleted when the run ends, failed
  or not, and on SIGTERM/SIGINT (the run is cancelled first). Without the variable, no vault is used.
- ARTIFACTS (keep it: the CI job uploads it): runner/<ident>/ (ansible-runner's stdout, job events, rc,
  status, command - its environment values redacted), reports/PENDING_MIGRATIONS.md and
  reports/pending.json (the role tme.migrations.report), summary.json (what is printed).
- stdout: the JSON summary (playbook, rc, status, the runner's stats, pending.json's data); stderr: the
  playbook's output. The exit code is the runner's rc: 0 when the playbook succeeded, non-zero otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator

COLLECTION = Path(__file__).resolve().parents[2]  # the checkout of tme.migrations
PLAYBOOKS = {"apply-safe": "apply-safe.yml", "deploy-breaking": "deploy-breaking.yml"}
VAULT_ENV = "TME_VAULT_PASSWORD"


@contextlib.contextmanager
def vault_password_file(password: str) -> Iterator[str]:
    """A 0600 file holding `password` in a fresh 0700 directory, both removed on leaving, whatever happens."""
    directory = tempfile.mkdtemp(prefix="tme-vault-")  # 0700
    try:
        path = os.path.join(directory, "vault-password")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(password)
        yield path
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def redact_command_env(artifact_dir: Path) -> None:
    """ansible-runner writes its whole environment, CI secrets included (job tokens...), into
    <ident>/command: keep the variable names, drop the values."""
    for command in artifact_dir.glob("*/command"):
        try:
            data = json.loads(command.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and isinstance(data.get("env"), dict):
            data["env"] = {name: "<redacted>" for name in data["env"]}
            command.write_text(json.dumps(data), encoding="utf-8")


def run_workflow(
    playbook: str,
    inventory: str,
    artifacts: Path,
    extravars: dict[str, Any] | None = None,
    vault_password: str | None = None,
    report_dir: Path | None = None,
    limit: str | None = None,
    check: bool = False,
) -> dict[str, Any]:
    """Run the playbook; return the summary (with `rc`). Nothing of the vault password stays on disk."""
    import ansible_runner

    artifacts = artifacts.resolve()
    reports = (report_dir or artifacts / "reports").resolve()
    pending_md, pending_json = reports / "PENDING_MIGRATIONS.md", reports / "pending.json"
    pending_json.unlink(missing_ok=True)  # never report a previous run's data
    path = Path(PLAYBOOKS.get(playbook, playbook))
    if not path.is_absolute() and not path.exists():
        path = COLLECTION / "playbooks" / path
    variables = {"tme_pending_file": str(pending_md), "tme_pending_summary_file": str(pending_json)}
    variables.update(extravars or {})
    envvars = {
        "ANSIBLE_CONFIG": os.environ.get("ANSIBLE_CONFIG", str(COLLECTION / "ansible.cfg")),
        "ANSIBLE_NOCOLOR": "1",
        # ansible-runner starts ansible-playbook from PATH: the one installed beside this Python first.
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
    }
    cancelled = threading.Event()
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():  # signal handlers can only be set there
        previous = {sig: signal.signal(sig, lambda _n, _f: cancelled.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory(prefix="tme-runner-") as private:
            cmdline = ["--check"] if check else []
            if vault_password:
                cmdline += ["--vault-password-file", stack.enter_context(vault_password_file(vault_password))]
            runner = ansible_runner.run(
                private_data_dir=private,  # inputs only (env/extravars), deleted after the run
                artifact_dir=str(artifacts / "runner"),  # kept: stdout, job events, rc, status
                playbook=str(path),
                inventory=str(Path(inventory).resolve()),
                extravars=variables,
                envvars=envvars,
                cmdline=" ".join(shlex.quote(arg) for arg in cmdline) or None,
                limit=limit,
                cancel_callback=cancelled.is_set,
                quiet=True,
            )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        redact_command_env(artifacts / "runner")
    sys.stderr.write(runner.stdout.read() if runner.stdout else "")
    pending = json.loads(pending_json.read_text()) if pending_json.exists() else None
    return {
        "playbook": path.name,
        "rc": runner.rc,
        "status": runner.status,
        "cancelled": cancelled.is_set(),
        "artifacts": str(Path(runner.config.artifact_dir)),
        "stats": runner.stats,
        "pending_migrations_md": str(pending_md) if pending_md.exists() else None,
        "pending_json": str(pending_json) if pending is not None else None,
        "pending": pending,
    }


def _extravar(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return name, value


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("playbook", help="apply-safe, deploy-breaking, or a playbook's path")
    parser.add_argument("-i", "--inventory", required=True)
    parser.add_argument("-e", "--extra-var", action="append", type=_extravar, default=[], metavar="KEY=VALUE")
    parser.add_argument("--artifacts", default=os.environ.get("TME_CI_ARTIFACTS", "ci-artifacts"))
    parser.add_argument("--report-dir", help="where PENDING_MIGRATIONS.md and pending.json go (ARTIFACTS/reports)")
    parser.add_argument("--limit")
    parser.add_argument("--check", action="store_true", help="check mode: nothing is written")
    args = parser.parse_args(argv[1:])
    # Out of the environment before anything starts: ansible-runner would copy it into its artifacts.
    password = os.environ.pop(VAULT_ENV, None) or None
    artifacts = Path(args.artifacts)
    summary = run_workflow(
        args.playbook,
        args.inventory,
        artifacts,
        extravars=dict(args.extra_var),
        vault_password=password,
        report_dir=Path(args.report_dir) if args.report_dir else None,
        limit=args.limit,
        check=args.check,
    )
    text = json.dumps(summary, indent=2)
    (artifacts / "summary.json").write_text(text + "\n")
    print(text)
    return int(summary["rc"])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
