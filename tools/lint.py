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

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / ".collections"))

from ansible_collections.tme.migrations.plugins.plugin_utils._lint import (  # noqa: E402
    FAIL_ON,
    failing,
    lint_path,
    render,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="a directory of migrations, or one migration file")
    parser.add_argument("--json", action="store_true", help="print the JSON report")
    parser.add_argument("--fail-on", choices=list(FAIL_ON), default="error")
    args = parser.parse_args(argv)
    report = lint_path(args.path)
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        sys.stdout.write("\n".join(render(report, args.fail_on)) + "\n")
    return 1 if failing(report, args.fail_on) else 0


if __name__ == "__main__":
    sys.exit(main())
