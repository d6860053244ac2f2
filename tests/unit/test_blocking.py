# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure logic: the error findings that stop an apply or a rehearsal, and their acceptance by the
file's ``-- Allow:`` header, as the reader marks it (no database; the refusals themselves run in
tests/integration/test_refusal.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.tme.migrations.plugins.module_utils._model import (
    Migration,
    refusal,
    refusal_message,
)
from ansible_collections.tme.migrations.plugins.plugin_utils import _files
from ansible_collections.tme.migrations.plugins.plugin_utils._lint import lint_path
from ansible_collections.tme.migrations.plugins.plugin_utils._parse_cache import load_path_cached

SECRET = "s3cret-Literal-42"

CLUSTER = f"""\
-- Type: SAFE
CREATE TABLE t (id int);
ALTER SYSTEM SET work_mem = '8MB';
CREATE ROLE app_reader LOGIN PASSWORD '{SECRET}';

-- ROLLBACK
-- DROP ROLE app_reader;
-- DROP TABLE t;
"""


def load(directory: Path, name: str, text: str, **kwargs: object) -> Migration:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(text)
    (m,) = _files.load_path(str(directory / name), **kwargs)  # type: ignore[arg-type]
    return m


def test_unaccepted_error_findings_block(tmp_path: Path) -> None:
    m = load(tmp_path, "001_cluster.sql", CLUSTER)
    assert [(f["rule"], f["line"]) for f in m.blocking_findings()] == [
        ("cluster-wide", 3),
        ("cluster-wide", 4),
        ("password-literal", 4),
        ("cluster-wide", 7),  # the rollback's DROP ROLE: a rollback runs like a migration
    ]
    assert m.blocking_findings()[-1]["path"].endswith("001_cluster.sql (ROLLBACK block)")
    assert not any(f.get("accepted") for f in m.findings)


def test_the_header_accepts_them_and_they_stay_as_accepted_infos(tmp_path: Path) -> None:
    m = load(tmp_path, "001_cluster.sql", "-- Allow: cluster-wide, password-literal\n" + CLUSTER)
    assert m.blocking_findings() == []
    accepted = [f for f in m.findings if f.get("accepted")]
    assert sorted({f["rule"] for f in accepted}) == ["cluster-wide", "password-literal"]
    assert all(f["severity"] == "info" for f in accepted)
    # One rule accepted, the other still refused.
    m = load(tmp_path / "one", "001_cluster.sql", "-- Allow: cluster-wide\n" + CLUSTER)
    assert [f["rule"] for f in m.blocking_findings()] == ["password-literal"]


def test_warnings_and_the_readers_own_errors_do_not_block(tmp_path: Path) -> None:
    """SET ROLE is a warning; a missing rollback is governed by require_rollback; neither is refused here."""
    m = load(tmp_path, "001_role.sql", "SET ROLE other;\nCREATE TABLE t (id int);\n", require_rollback=False)
    rules = {f["rule"]: f["severity"] for f in m.findings}
    assert rules == {"set-role": "warning", "missing-rollback": "error"}
    assert m.blocking_findings() == []
    assert refusal_message([m], "refused") is None


def test_a_rollback_file_is_checked_and_its_header_is_the_migrations(tmp_path: Path) -> None:
    d = tmp_path / "m"
    d.mkdir()
    (d / "001_a.rollback.sql").write_text("DROP TABLE a;\nALTER SYSTEM RESET work_mem;\n")
    m = load(d, "001_a.sql", "CREATE TABLE a (id int);\n")
    (finding,) = m.blocking_findings()
    assert finding["rule"] == "cluster-wide" and finding["path"].endswith("001_a.rollback.sql")
    line = refusal(m, finding)
    assert line.startswith("001_a.rollback.sql line 2: refused (cluster-wide): ALTER SYSTEM")
    assert line.endswith("add '-- Allow: cluster-wide' to the header of 001_a.sql to accept it deliberately")
    (d / "001_a.sql").write_text("-- Allow: cluster-wide\nCREATE TABLE a (id int);\n")
    (accepted,) = _files.load_path(str(d / "001_a.sql"))
    assert accepted.blocking_findings() == []


def test_light_keeps_what_the_plan_refuses(tmp_path: Path) -> None:
    text = (
        "CREATE TABLE t (id int);\n"
        "ALTER SYSTEM SET work_mem = '8MB';\n"
        "ALTER TABLE users DROP COLUMN legacy;\n"
        "CREATE INDEX users_x ON users (x);\n"
        "-- ROLLBACK\n-- SELECT 1;\n"
    )
    m = load(tmp_path, "001_mixed.sql", text)
    assert {f["rule"]: f["severity"] for f in m.findings} == {
        "cluster-wide": "error",
        "drop-column": "info",
        "require-concurrent-index": "warning",
    }
    light = m.light()
    assert light.sent_light and light.forward.statements == ()
    # BREAKING for the reports, the refused error for the plan; the warning stays on the controller.
    assert [f["rule"] for f in light.findings] == ["cluster-wide", "drop-column"]
    assert light.blocking_findings() == m.blocking_findings() != []
    # Through the module's JSON and back, as the plan receives it.
    assert Migration.from_dict(light.to_dict()).blocking_findings() == m.blocking_findings()
    accepted = load(tmp_path / "a", "001_mixed.sql", "-- Allow: cluster-wide\n" + text)
    assert accepted.light().blocking_findings() == []
    assert [f["rule"] for f in accepted.light().findings] == ["drop-column"]


def test_refusal_message_names_file_line_rule_and_never_the_password(tmp_path: Path) -> None:
    a = load(tmp_path, "001_cluster.sql", CLUSTER)
    b = load(tmp_path / "b", "002_copy.sql", "COPY t FROM PROGRAM 'cat /etc/passwd';\n-- ROLLBACK\n-- SELECT 1;\n")
    message = refusal_message([a, b], "refused, nothing was applied")
    assert message is not None
    lines = message.splitlines()
    assert lines[0].startswith("001_cluster.sql line 3: refused (cluster-wide): ALTER SYSTEM")
    # The cluster-wide finding says how to accept it itself; the others get it added.
    assert lines[0].endswith("or accept it with '-- Allow: cluster-wide' in the file's header")
    assert lines[0].count("-- Allow:") == 1
    assert lines[1].startswith("refused, nothing was applied: 001_cluster, 002_copy have error findings")
    assert lines[2].startswith("001_cluster.sql line 4: refused (cluster-wide):")
    assert lines[3].startswith("001_cluster.sql line 4: refused (password-literal):")
    assert lines[4].startswith("001_cluster.sql (ROLLBACK block) line 7: refused (cluster-wide):")
    assert lines[3].endswith("add '-- Allow: password-literal' to the file's header to accept it deliberately")
    assert lines[5].startswith("002_copy.sql line 1: refused (copy-program):")
    assert lines[5].endswith("add '-- Allow: copy-program' to the file's header to accept it deliberately")
    assert len(lines) == 6
    assert SECRET not in message


def test_lint_accepts_once(tmp_path: Path) -> None:
    """The reader has marked them already; the lint's own accept() must not mark them twice."""
    d = tmp_path / "m"
    d.mkdir()
    (d / "001_cluster.sql").write_text("-- Allow: cluster-wide, password-literal\n" + CLUSTER)
    report = lint_path(str(d))
    findings = report["migrations"][0]["findings"]
    accepted = [f for f in findings if f.get("accepted")]
    assert len(accepted) == 4 and report["summary"]["errors"] == 0
    assert all(f["message"].count("accepted by the file's") == 1 for f in accepted)


@pytest.mark.parametrize("header", ["", "-- Allow: cluster-wide, password-literal\n"])
def test_the_parse_cache_returns_the_same_acceptance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, header: str
) -> None:
    monkeypatch.setenv("TME_MIGRATIONS_CACHE", str(tmp_path / "cache"))
    d = tmp_path / "m"
    d.mkdir()
    (d / "001_cluster.sql").write_text(header + CLUSTER)
    stats: dict[str, int] = {}
    (first,) = load_path_cached(str(d), stats=stats)
    assert stats.get("parsed") == 1
    stats = {}
    (cached,) = load_path_cached(str(d), stats=stats)
    assert stats.get("parsed") == 0
    assert cached.findings == first.findings
    assert len(cached.blocking_findings()) == (0 if header else 4)
