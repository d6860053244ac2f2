# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The migration_lint analysis without Ansible, for a pre-commit hook or a quick look.

    python tools/lint.py database/migrations [--json] [--fail-on error|warning|never]

Prints the readable report (or the JSON one); exits 1 when the lint fails, 0 otherwise. A file's
``-- Allow: rule, rule`` header accepts those rules for that migration (shown, not failing); password
literals appear as '***' in both reports.
"""

from __future__ import annotations

import json
import os
import sys

# Its three options read by hand and os.path, not argparse (or getopt, which imports gettext) and pathlib:
# a pre-commit hook starts this on every commit, and those imports cost a fifth of a warm run over a
# thousand files.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(__file__))), ".collections"))

from ansible_collections.tme.migrations.plugins.plugin_utils._lint import (  # noqa: E402
    FAIL_ON,
    failing,
    lint_path,
    render,
)

USAGE = f"usage: lint.py [-h] [--json] [--fail-on {{{','.join(FAIL_ON)}}}] path"
HELP = f"""{USAGE}

{(__doc__ or "").strip().splitlines()[0]}

positional arguments:
  path                  a directory of migrations, or one migration file

options:
  -h, --help            show this help message and exit
  --json                print the JSON report
  --fail-on {{{",".join(FAIL_ON)}}}
                        the lowest severity that fails the lint (default: error)
"""


def _usage_error(message: str) -> int:
    sys.stderr.write(f"{USAGE}\nlint.py: error: {message}\n")
    return 2


LONG = ("--help", "--json", "--fail-on")


def _long(arg: str) -> str | int:
    """The long option an argument names, a unique prefix of one included (as argparse allows), or the
    exit status of a usage error."""
    name = arg.partition("=")[0]
    found = [option for option in LONG if option.startswith(name)]
    if name in LONG or len(found) == 1:
        return name if name in LONG else found[0]
    if found:
        return _usage_error(f"ambiguous option: {name} could match {', '.join(found)}")
    return _usage_error(f"unrecognized arguments: {arg}")


def parse_args(argv: list[str]) -> tuple[str, bool, str] | int:
    """(path, --json, --fail-on), or the exit status when the arguments are done with (help, an error)."""
    paths: list[str] = []
    as_json, fail_on = False, "error"
    args = iter(argv)
    for arg in args:
        if arg == "--":
            paths.extend(args)
            break
        if arg == "-h":
            arg = "--help"
        if not arg.startswith("--"):
            if arg.startswith("-") and arg != "-":
                return _usage_error(f"unrecognized arguments: {arg}")
            paths.append(arg)
            continue
        option = _long(arg)
        if isinstance(option, int):
            return option
        value = arg.partition("=")[2] if "=" in arg else None
        if option == "--fail-on":
            if value is None:
                value = next(args, None)
                if value is not None and value.startswith("-"):
                    value = None
            if value is None or value not in FAIL_ON:
                shown = "expected one argument" if value is None else f"invalid choice: {value!r}"
                return _usage_error(f"argument --fail-on: {shown} (choose from {', '.join(FAIL_ON)})")
            fail_on = value
        elif value is not None:
            return _usage_error(f"argument {option}: ignored explicit argument {value!r}")
        elif option == "--help":
            sys.stdout.write(HELP)
            return 0
        else:
            as_json = True
    if len(paths) != 1:
        return _usage_error("one path is required" if not paths else f"unrecognized arguments: {' '.join(paths[1:])}")
    return paths[0], as_json, fail_on


def main(argv: list[str] | None = None) -> int:
    parsed = parse_args(sys.argv[1:] if argv is None else argv)
    if isinstance(parsed, int):
        return parsed
    path, as_json, fail_on = parsed
    report = lint_path(path)
    if as_json:
        json.dump(report, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        sys.stdout.write("\n".join(render(report, fail_on)) + "\n")
    return 1 if failing(report, fail_on) else 0


if __name__ == "__main__":
    sys.exit(main())
