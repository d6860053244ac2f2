# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""tools/lint.py, the pre-commit lint: its options (read by hand, without argparse) and exit statuses,
run as a hook runs it: a new interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT = REPO / "tools" / "lint.py"
EXAMPLES = REPO / "examples" / "migrations"


def lint(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "TME_MIGRATIONS_CACHE": str(cache)}
    return subprocess.run([sys.executable, str(LINT), *args], capture_output=True, text=True, check=False, env=env)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "one path is required"),
        (("a", "b"), "unrecognized arguments: b"),
        (("--bogus", "a"), "unrecognized arguments: --bogus"),
        (("--fail-on",), "argument --fail-on: expected one argument"),
        (("--fail-on=sometimes", "a"), "argument --fail-on: invalid choice: 'sometimes'"),
        (("--fail-on", "--json", "a"), "argument --fail-on: expected one argument"),
        (("--json=1", "a"), "argument --json: ignored explicit argument '1'"),
        (("-x", "a"), "unrecognized arguments: -x"),
    ],
)
def test_bad_arguments_exit_2_with_the_usage(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    result = lint(*args, cache=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    usage, error = result.stderr.splitlines()
    assert usage.startswith("usage: lint.py [-h] [--json] [--fail-on {error,warning,never}] path")
    assert error.startswith(f"lint.py: error: {message}")


def test_help(tmp_path: Path) -> None:
    result = lint("--help", cache=tmp_path)
    assert result.returncode == 0 and "--fail-on {error,warning,never}" in result.stdout


def test_the_report_and_the_threshold(tmp_path: Path) -> None:
    """The examples pass at the default threshold and fail at warning (they have one warning), in both forms."""
    text = lint(str(EXAMPLES), cache=tmp_path)
    assert text.returncode == 0 and text.stdout.splitlines()[-1].endswith("lint passed (fail_on=error)")
    strict = lint("--fail-on", "warning", str(EXAMPLES), cache=tmp_path)
    assert strict.returncode == 1 and strict.stdout.splitlines()[-1].endswith("lint FAILED (fail_on=warning)")
    report = lint(str(EXAMPLES), "--json", "--fail-on=never", cache=tmp_path)
    assert report.returncode == 0
    assert json.loads(report.stdout)["summary"]["migrations"] == 15
    after_dashes = lint("--json", "--", str(EXAMPLES), cache=tmp_path)
    assert json.loads(after_dashes.stdout) == json.loads(report.stdout)


def test_a_unique_prefix_names_its_option_as_argparse_allowed(tmp_path: Path) -> None:
    report = lint("--js", "--fail", "warning", str(EXAMPLES), cache=tmp_path)
    assert report.returncode == 1 and json.loads(report.stdout)["summary"]["warnings"] == 1
