# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A password literal in a migration runs as written, and no result, message or artifact shows it.

A connection string with a password in a plain SELECT stands for every form (the role's PASSWORD, a
user mapping's option): it needs no role or extension on the test server, and PostgreSQL quotes the
value back in its error when the cast fails.
"""

from __future__ import annotations

from pathlib import Path

from ..conftest import Database
from .test_modules import APPLY, hostvars

SECRET = "hunter2-Zq9xv"

OK = f"""\
-- Allow: password-literal
CREATE TABLE redaction_a (id int);
SELECT 'host=db user=app password={SECRET}' AS conninfo;

-- ROLLBACK
-- DROP TABLE redaction_a;
"""

FAILS = f"""\
CREATE TABLE redaction_b (id int);
SELECT 'host=db password={SECRET}'::int;

-- ROLLBACK
-- DROP TABLE redaction_b;
"""


def _everything(run) -> list[tuple[str, str]]:  # noqa: ANN001
    """The run's output, its results and every ansible-runner artifact (events, stdout), by name."""
    texts = [("stdout", run.stdout), ("results", repr(run.results))]
    texts.extend((str(p), p.read_text(errors="replace")) for p in run.artifacts.rglob("*") if p.is_file())
    return texts


def test_results_and_errors_do_not_show_the_password(db: Database, tmp_path: Path, playbook) -> None:  # noqa: ANN001
    d = tmp_path / "redaction"
    d.mkdir()
    (d / "001_ok.sql").write_text(OK)
    run = playbook(APPLY, hostvars(db, d))
    assert run.rc == 0, run.stdout
    (entry,) = run.result("Apply migrations")["applied"]
    assert entry["statements"][1] == "SELECT '***' AS conninfo"
    assert "redaction_a" in db.tables()  # the SQL ran as written

    (d / "002_fails.sql").write_text(FAILS)
    failed = playbook(APPLY, hostvars(db, d))
    assert failed.rc != 0
    msg = failed.result("Apply migrations")["msg"]
    assert "002_fails.sql line 2" in msg and "'***'" in msg, msg
    for name, text in _everything(run) + _everything(failed):
        assert SECRET not in text, f"the password is in {name}"
