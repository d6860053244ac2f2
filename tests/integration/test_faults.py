# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fault matrix, a seeded few trials per case (tests/integration/faults.py; the full count is
`make faults`): kill -9 of the ansible-playbook process group during apply, stepwise apply, rollback,
backup and restore; PostgreSQL stopped mid-run; eight runners at once. Nothing may be lost.

TME_FAULT_SEED picks the random moments, TME_FAULT_TRIALS the trials per case (default 2 here)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration import faults


@pytest.fixture(scope="module")
def matrix() -> Iterator[faults.Matrix]:
    with faults.matrix() as m:
        yield m


@pytest.mark.parametrize(
    "case",
    [
        "kill-apply",
        "kill-stepwise",
        "kill-rollback",
        "kill-backup",
        "kill-restore",
        "concurrent-8",
        "pg-stop-fast",
        "pg-stop-immediate",
    ],
)
def test_fault_case_loses_nothing(matrix: faults.Matrix, case: str) -> None:
    count = 1 if case == "concurrent-8" or case.startswith("pg-stop-") else faults.trials(2)
    result = faults.run_case(matrix, case, count)
    print(result.summary())
    assert len(result.trials) == count
    assert not result.lost, result.summary() + "\n" + "\n".join(t.line() for t in result.lost)
