# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The full fault matrix (`make faults`): at least 20 seeded trials per case, one summary line per case
(`fault kill-apply: 20 trials, 0 lost anything`), exit status 1 when any trial lost anything.

    python bench/faults.py [--trials N] [--seed S] [CASE ...]

TME_FAULT_TRIALS and TME_FAULT_SEED are the defaults of --trials and --seed. The trial logic and the
invariants are in tests/integration/faults.py, shared with tests/integration/test_faults.py.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

# tests/integration/faults.py under another name: this script is bench/faults.py.
_SPEC = importlib.util.spec_from_file_location(
    "tme_fault_matrix", Path(__file__).resolve().parent.parent / "tests" / "integration" / "faults.py"
)
assert _SPEC is not None and _SPEC.loader is not None
faults = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = faults  # dataclasses look their module up
_SPEC.loader.exec_module(faults)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("cases", nargs="*", choices=[[], *faults.CASES], default=[], metavar="CASE")
    parser.add_argument("--trials", type=int, default=faults.trials(20), help="trials per case (default 20)")
    parser.add_argument("--seed", type=int, default=faults.seed())
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per trial")
    args = parser.parse_args(argv)
    cases = args.cases or list(faults.CASES)
    print(f"fault matrix: seed {args.seed}, {args.trials} trials per case", flush=True)
    failed = False
    with faults.matrix(args.seed) as matrix:
        for case in cases:
            start = time.monotonic()
            result = faults.run_case(matrix, case, args.trials)
            print(f"{result.summary()}  [{time.monotonic() - start:.0f}s]", flush=True)
            for trial in result.trials if args.verbose else result.lost:
                print(trial.line(), flush=True)
            failed = failed or bool(result.lost)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
