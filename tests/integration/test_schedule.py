# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The schedule role (playbooks/schedule.yml) through ansible-runner: the systemd units rendered into a
temporary directory (no systemd is managed), idempotent, checked by `systemd-analyze verify`, the vault
password file refused unless 0600, and the timer's command line run once as systemd would run it
(ExecStartPre, ExecStart, ExecStopPost parsed from the unit with systemd's quoting rules, its environment,
working directory and log file), against a stand-in playbook and inventory: the lock (a second start
while it is held exits at once and runs nothing), the log file, PENDING_MIGRATIONS.md outside the app
checkout, and the alert command of the OnFailure= unit. No network, no Docker, no PostgreSQL."""

from __future__ import annotations

import fcntl
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..conftest import REPO, run_playbook

SCHEDULE = REPO / "playbooks" / "schedule.yml"
NAME = "tme-migrations-apply-safe"
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
ANSIBLE_VAULT = str(Path(sys.executable).parent / "ansible-vault")
# systemd's PATH for services (systemd.exec(5), "Environment variables in spawned processes").
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
USER = pwd.getpwuid(os.getuid())

# The stand-in for apply-safe.yml: it needs the vault (a vaulted variable of the inventory), records
# what it was given and writes PENDING_MIGRATIONS.md where tme_pending_file says, as the report role does.
STAND_IN = """\
- name: Stand-in for apply-safe.yml
  hosts: all
  gather_facts: false
  tasks:
    - name: Fail when asked to
      ansible.builtin.fail:
        msg: the stand-in fails, as a failed migration would
      when: lookup('ansible.builtin.fileglob', stand_in_dir ~ '/fail-please') | length > 0

    - name: Record the run
      ansible.builtin.copy:
        dest: "{{ stand_in_dir }}/ran.txt"
        content: |
          secret={{ vaulted_secret }}
          pending={{ tme_pending_file }}
          config={{ lookup('ansible.builtin.env', 'ANSIBLE_CONFIG') }}
        mode: "0644"

    - name: Write PENDING_MIGRATIONS.md
      ansible.builtin.copy:
        dest: "{{ tme_pending_file }}"
        content: "# Pending Production Migrations\\n"
        mode: "0644"
"""

# The alert hook: what it was given, one line per argument, and what systemd told it.
HOOK = """\
#!/bin/sh
out="$(dirname "$0")/alerted.txt"
for arg in "$@"; do printf 'arg=%s\\n' "$arg" >> "$out"; done
printf 'result=%s unit=%s schedule=%s log=%s\\n' "$MONITOR_SERVICE_RESULT" "$MONITOR_UNIT" \\
  "$TME_SCHEDULE_UNIT" "$TME_SCHEDULE_LOG" >> "$out"
"""
HOOK_ARGS = ["webhook with space", 'it\'s "quoted"', "$HOME stays", "100% %n", "back\\slash"]


# -- systemd's reading of a unit file --------------------------------------------------------------------
def read_unit(path: Path) -> dict[str, list[str]]:
    """`Section.Key` -> its values in order (keys repeat: Environment=, ExecStartPre=)."""
    entries: dict[str, list[str]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        assert not line.endswith("\\"), f"{path.name}: no continuation lines expected: {raw}"
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _sep, value = line.partition("=")
        entries.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return entries


def unescape_specifiers(text: str) -> str:
    """systemd.unit(5) specifiers: the role writes none but the escaped `%%`."""
    stray = re.search(r"%[^%]", text.replace("%%", ""))
    assert stray is None, f"unescaped specifier {stray.group(0)!r} in {text!r}"
    return text.replace("%%", "%")


_C_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t", "r": "\r", "s": " "}


def split_words(text: str) -> list[str]:
    """systemd's word splitting of a command line or an Environment= value: whitespace separates words,
    double or single quotes group, C escapes are unescaped (systemd.service(5), "Command lines")."""
    words: list[str] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            break
        word, quote = [], ""
        while i < n and (quote or text[i] not in " \t"):
            char = text[i]
            if char == "\\":
                escaped = text[i + 1]
                assert escaped in _C_ESCAPES, f"unexpected escape \\{escaped} in {text!r}"
                word.append(_C_ESCAPES[escaped])
                i += 2
                continue
            if quote and char == quote:
                quote = ""
            elif not quote and char in "\"'":
                quote = char
            else:
                word.append(char)
            i += 1
        assert not quote, f"unbalanced quoting in {text!r}"
        words.append("".join(word))
    return words


def command_line(value: str, env: dict[str, str]) -> list[str]:
    """A command line as systemd runs it: specifiers, words, then `$$` and `${NAME}` (the role writes no
    bare `$NAME`, which would split into words)."""
    argv = []
    for word in split_words(unescape_specifiers(value)):
        parts = re.split(r"(\$\$|\$\{[A-Za-z_][A-Za-z0-9_]*\})", word)
        out = []
        for part in parts:
            if part == "$$":
                out.append("$")
            elif part.startswith("${"):
                out.append(env.get(part[2:-1], ""))
            else:
                assert "$" not in part, f"unescaped $ in {word!r}"
                out.append(part)
        argv.append("".join(out))
    return argv


@dataclass
class Run:
    rc: int
    seconds: float
    result: str
    output: bytes  # what went to the journal (StandardOutput=journal), empty with a log file


def start_service(unit: Path, timeout: float = 300) -> Run:
    """One start of a Type=oneshot service as systemd does it, for the user running the test (the unit's
    User=): its Environment=, WorkingDirectory= and StandardOutput=; ExecStartPre=, ExecStart= (exit status
    in SuccessExitStatus= is success), then ExecStopPost= with SERVICE_RESULT, EXIT_CODE, EXIT_STATUS."""
    entries = read_unit(unit)
    assert entries["Service.Type"] == ["oneshot"]
    assert entries["Service.User"] == [USER.pw_name]
    env = {"PATH": SYSTEMD_PATH, "HOME": USER.pw_dir, "USER": USER.pw_name, "LOGNAME": USER.pw_name}
    env["SHELL"] = USER.pw_shell
    for value in entries.get("Service.Environment", []):
        for assignment in split_words(unescape_specifiers(value)):
            key, _sep, val = assignment.partition("=")
            env[key] = val
    cwd = unescape_specifiers(entries["Service.WorkingDirectory"][0])
    output = entries["Service.StandardOutput"][0]
    assert entries.get("Service.StandardError", ["inherit"]) == ["inherit"]
    success = {0} | {int(code) for value in entries.get("Service.SuccessExitStatus", []) for code in value.split()}
    log: Any
    if output.startswith("append:"):
        log = open(unescape_specifiers(output[len("append:") :]), "ab")
    else:
        assert output == "journal"
        log = subprocess.PIPE
    captured = b""

    def execute(value: str, extra: dict[str, str] | None = None) -> int:
        nonlocal captured
        argv = command_line(value, {**env, **(extra or {})})
        done = subprocess.run(
            argv,
            cwd=cwd,
            env={**env, **(extra or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
        captured += done.stdout or b""
        return done.returncode

    started = time.monotonic()
    try:
        for value in entries.get("Service.ExecStartPre", []):
            assert execute(value) == 0
        (exec_start,) = entries["Service.ExecStart"]
        rc = execute(exec_start)
        seconds = time.monotonic() - started
        result = "success" if rc in success else "exit-code"
        for value in entries.get("Service.ExecStopPost", []):
            execute(value, {"SERVICE_RESULT": result, "EXIT_CODE": "exited", "EXIT_STATUS": str(rc)})
    finally:
        if log is not subprocess.PIPE:
            log.close()
    return Run(rc, seconds, result, captured)


def start_on_failure(unit: Path, failed_unit: str) -> int:
    """The OnFailure= unit as systemd starts it after a failed run (MONITOR_* set, systemd >= 251)."""
    entries = read_unit(unit)
    env = {"PATH": SYSTEMD_PATH, "MONITOR_SERVICE_RESULT": "exit-code", "MONITOR_UNIT": failed_unit}
    for value in entries.get("Service.Environment", []):
        for assignment in split_words(unescape_specifiers(value)):
            key, _sep, val = assignment.partition("=")
            env[key] = val
    (exec_start,) = entries["Service.ExecStart"]
    return subprocess.run(command_line(exec_start, env), env=env, check=False, timeout=60).returncode


# -- the set-up: a checkout with a stand-in playbook, an inventory with a vaulted variable ----------------
@dataclass
class Setup:
    root: Path
    checkout: Path  # schedule_workdir
    units: Path
    state: Path
    vault: Path
    log: Path
    hook: Path
    app_checkout: Path  # the app repository: a scheduled run must leave it clean

    @property
    def pending(self) -> Path:
        return self.state / "PENDING_MIGRATIONS.md"

    @property
    def lock(self) -> Path:
        return self.state / f"{NAME}.lock"

    def extravars(self, **overrides: Any) -> dict[str, Any]:
        return {
            "schedule_become": False,
            "schedule_manage_systemd": False,
            "schedule_user": USER.pw_name,
            "schedule_workdir": str(self.checkout),
            "schedule_playbook": "playbooks/stand-in.yml",
            "schedule_inventory": "inventory/hosts.yml",
            "schedule_ansible_playbook": ANSIBLE_PLAYBOOK,
            "schedule_vault_password_file": str(self.vault),
            "schedule_state_dir": str(self.state),
            "schedule_unit_dir": str(self.units),
            "schedule_log": str(self.log),
            "schedule_on_failure": [str(self.hook), *HOOK_ARGS],
            **overrides,
        }

    def install(self, tmp_path: Path, **overrides: Any) -> Any:
        return run_playbook(tmp_path, SCHEDULE, {"localhost": {}}, extravars=self.extravars(**overrides))

    def unit(self, suffix: str = ".service") -> Path:
        return self.units / f"{NAME}{suffix}"


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    # Spaces, quotes and % in the paths, $ and backslashes in the alert's arguments: the unit's quoting
    # must carry each one through as one word. (No $ in paths: Ansible expands $VAR in path options, which
    # the role refuses; no quote in an executable's path: systemd refuses it.)
    root = tmp_path / "sched"
    checkout = root / "collection 'checkout' \"x\" %n"
    (checkout / "playbooks").mkdir(parents=True)
    (checkout / "inventory" / "group_vars").mkdir(parents=True)
    (checkout / "playbooks" / "stand-in.yml").write_text(STAND_IN)
    (checkout / "ansible.cfg").write_text("[defaults]\nretry_files_enabled = false\nnocows = true\n")
    vault = checkout / "vault pass"
    vault.write_text("correct horse battery staple\n")
    vault.chmod(0o600)
    encrypted = subprocess.run(
        [ANSIBLE_VAULT, "encrypt_string", "--vault-password-file", str(vault), "--name", "vaulted_secret", "s3cret"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (checkout / "inventory" / "group_vars" / "all.yml").write_text(
        f"stand_in_dir: {json.dumps(str(checkout))}\n{encrypted}"
    )
    (checkout / "inventory" / "hosts.yml").write_text(
        "all:\n  hosts:\n    localhost:\n"
        f"      ansible_connection: local\n      ansible_python_interpreter: {sys.executable}\n"
    )
    hook = root / "alert hook %i" / "alert.sh"
    hook.parent.mkdir(parents=True)
    hook.write_text(HOOK)
    hook.chmod(0o755)
    app_checkout = root / "tme-portal" / "database" / "migrations"
    app_checkout.mkdir(parents=True)
    units = root / "units"
    units.mkdir()
    return Setup(
        root=root,
        checkout=checkout,
        units=units,
        state=root / "state %h 'x'",
        vault=vault,
        log=root / 'logs "%p"' / "apply safe.log",
        hook=hook,
        app_checkout=app_checkout,
    )


def changed(run: Any) -> int:
    recap = re.search(r"localhost\s+:\s+ok=\d+\s+changed=(\d+)", run.stdout)
    assert recap, run.stdout
    return int(recap.group(1))


def test_units_are_written_idempotent_and_quoted(tmp_path: Path, setup: Setup) -> None:
    first = setup.install(tmp_path)
    assert first.rc == 0, first.stdout
    assert changed(first) > 0
    for suffix in (".service", ".timer", "-failure.service"):
        assert setup.unit(suffix).stat().st_mode & 0o777 == 0o644
    assert setup.state.is_dir() and setup.log.parent.is_dir()
    # The vault password file is named, never copied or read into the units.
    assert "correct horse" not in "".join(p.read_text() for p in setup.units.iterdir())

    again = setup.install(tmp_path)
    assert again.rc == 0, again.stdout
    assert changed(again) == 0, again.stdout

    service = read_unit(setup.unit())
    argv = command_line(service["Service.ExecStart"][0], {})
    assert argv == [
        "/usr/bin/flock",
        "--nonblock",
        "--close",
        "--verbose",
        "--conflict-exit-code",
        "75",
        str(setup.lock),
        ANSIBLE_PLAYBOOK,
        "-i",
        str(setup.checkout / "inventory" / "hosts.yml"),
        "--vault-password-file",
        str(setup.vault),
        "-e",
        json.dumps({"tme_pending_file": str(setup.pending)}),
        str(setup.checkout / "playbooks" / "stand-in.yml"),
    ]
    assert service["Service.SuccessExitStatus"] == ["75"]
    assert service["Unit.OnFailure"] == [f"{NAME}-failure.service"]
    timer = read_unit(setup.unit(".timer"))
    assert timer["Timer.OnCalendar"] == ["Mon..Fri *-*-* 06:30:00 UTC"]
    assert timer["Timer.Unit"] == [f"{NAME}.service"]
    alert = read_unit(setup.unit("-failure.service"))
    assert command_line(alert["Service.ExecStart"][0], {}) == [str(setup.hook), *HOOK_ARGS]

    # Without an alert command the alert unit goes, and so does OnFailure=.
    removed = setup.install(tmp_path, schedule_on_failure=[])
    assert removed.rc == 0, removed.stdout
    assert not setup.unit("-failure.service").exists()
    assert "Unit.OnFailure" not in read_unit(setup.unit())


def test_systemd_analyze_verify(tmp_path: Path, setup: Setup) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here (Debian package systemd): units not verified by systemd")
    for overrides in ({}, {"schedule_log": "journal", "schedule_on_failure": []}):
        for unit in setup.units.iterdir():
            unit.unlink()
        run = setup.install(tmp_path, **overrides)
        assert run.rc == 0, run.stdout
        units = sorted(str(p) for p in setup.units.iterdir())
        assert len(units) == (3 if overrides == {} else 2)
        verified = subprocess.run(
            [analyze, "verify", "--man=no", *units], capture_output=True, text=True, check=False, timeout=120
        )
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert verified.stderr.strip() == "", verified.stderr
    calendar = subprocess.run(
        [analyze, "calendar", "Mon..Fri *-*-* 06:30:00 UTC"], capture_output=True, text=True, check=False
    )
    assert calendar.returncode == 0, calendar.stderr


def test_vault_password_file_must_be_0600(tmp_path: Path, setup: Setup) -> None:
    setup.vault.chmod(0o644)
    refused = setup.install(tmp_path)
    assert refused.rc != 0
    assert "must be a regular file owned by" in refused.stdout and "mode 0644" in refused.stdout, refused.stdout
    assert list(setup.units.iterdir()) == []

    missing = setup.install(tmp_path, schedule_vault_password_file=str(setup.root / "no-such-file"))
    assert missing.rc != 0
    assert "(it is: missing)" in missing.stdout, missing.stdout
    assert list(setup.units.iterdir()) == []

    setup.vault.chmod(0o600)
    assert setup.install(tmp_path).rc == 0


def test_paths_ansible_or_systemd_would_misread_are_refused(tmp_path: Path, setup: Setup) -> None:
    for overrides in (
        {"schedule_state_dir": str(setup.root / "$HOME")},
        {"schedule_log": "~/x.log"},
        {"schedule_on_failure": [str(setup.root / "it's" / "alert")]},
    ):
        refused = setup.install(tmp_path, **overrides)
        assert refused.rc != 0
        assert "no $ and no leading ~" in refused.stdout, refused.stdout
    assert list(setup.units.iterdir()) == []


def test_the_timers_command_runs_once_locks_and_logs(tmp_path: Path, setup: Setup) -> None:
    assert setup.install(tmp_path).rc == 0
    unit = setup.unit()

    # As the timer starts it: the stand-in ran with the vault, PENDING_MIGRATIONS.md went to the state
    # directory, the app checkout stays clean, everything went to the log file.
    run = start_service(unit)
    assert (run.rc, run.result) == (0, "success"), setup.log.read_text()
    ran = (setup.checkout / "ran.txt").read_text()
    assert "secret=s3cret\n" in ran
    assert f"pending={setup.pending}\n" in ran
    assert f"config={setup.checkout / 'ansible.cfg'}\n" in ran
    assert setup.pending.read_text().startswith("# Pending Production Migrations")
    assert list(setup.app_checkout.iterdir()) == []
    log = setup.log.read_text()
    assert re.search(rf"=== \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ {NAME} starts\n", log), log
    assert "flock: executing" in log and "PLAY RECAP" in log
    assert log.rstrip().endswith(f"=== {NAME} ends: success (exited 0)"), log
    assert run.output == b""  # nothing outside the log file

    # A second start while a run holds the lock exits at once, runs nothing, says so, and is no failure.
    (setup.checkout / "ran.txt").unlink()
    with open(setup.lock, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        busy = start_service(unit, timeout=30)
    assert (busy.rc, busy.result) == (75, "success")
    assert busy.seconds < 5, busy.seconds
    assert not (setup.checkout / "ran.txt").exists()
    log = setup.log.read_text()
    assert "flock: failed to get lock" in log
    assert log.rstrip().endswith(f"=== {NAME} ends: success (exited 75)"), log

    # The lock released, the next start runs again.
    again = start_service(unit)
    assert again.rc == 0 and (setup.checkout / "ran.txt").exists()


def test_a_failed_run_is_logged_and_alerts(tmp_path: Path, setup: Setup) -> None:
    assert setup.install(tmp_path).rc == 0
    (setup.checkout / "fail-please").touch()
    run = start_service(setup.unit())
    assert run.result == "exit-code" and run.rc == 2
    log = setup.log.read_text()
    assert "the stand-in fails" in log
    assert log.rstrip().endswith(f"=== {NAME} ends: exit-code (exited 2)"), log

    # systemd then starts the OnFailure= unit: the alert command gets its arguments word for word.
    assert start_on_failure(setup.unit("-failure.service"), f"{NAME}.service") == 0
    alerted = (setup.hook.parent / "alerted.txt").read_text().splitlines()
    assert alerted[:-1] == [f"arg={arg}" for arg in HOOK_ARGS]
    assert alerted[-1] == f"result=exit-code unit={NAME}.service schedule={NAME}.service log={setup.log}"


def test_journal_mode(tmp_path: Path, setup: Setup) -> None:
    assert setup.install(tmp_path, schedule_log="journal").rc == 0
    service = read_unit(setup.unit())
    assert service["Service.StandardOutput"] == ["journal"]
    assert "Service.ExecStartPre" not in service and "Service.ExecStopPost" not in service
    run = start_service(setup.unit())
    assert run.rc == 0
    assert b"PLAY RECAP" in run.output
    assert not setup.log.exists()
