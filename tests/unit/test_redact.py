"""Password literals hidden from what leaves the controller code: findings, lint output, module results.

The SQL itself is never changed (it must still run); what is shown of it is.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.tme.migrations.plugins.plugin_utils._classify import classify_sql
from ansible_collections.tme.migrations.plugins.plugin_utils._files import load_path
from ansible_collections.tme.migrations.plugins.plugin_utils._lint import lint_path, render
from ansible_collections.tme.migrations.plugins.plugin_utils._migration_files import redactor_for
from ansible_collections.tme.migrations.plugins.plugin_utils._redact import (
    HIDDEN,
    Redactor,
    has_secret,
    redact,
    secrets,
)

SECRET = "hunter2-Sécret"

REDACTED = [
    ("CREATE ROLE app LOGIN PASSWORD 'hunter2-Sécret'", "CREATE ROLE app LOGIN PASSWORD '***'"),
    ("CREATE USER app WITH ENCRYPTED PASSWORD 'hunter2-Sécret'", "CREATE USER app WITH ENCRYPTED PASSWORD '***'"),
    (
        "ALTER USER app WITH PASSWORD 'hunter2-Sécret' VALID UNTIL '2030-01-01'",
        "ALTER USER app WITH PASSWORD '***' VALID UNTIL '2030-01-01'",
    ),
    ("alter role app password 'hunter2-Sécret'", "alter role app password '***'"),
    ("ALTER ROLE app PASSWORD E'hunter2-Sécret'", "ALTER ROLE app PASSWORD '***'"),
    ("ALTER ROLE app PASSWORD $$hunter2-Sécret$$", "ALTER ROLE app PASSWORD '***'"),
    ("ALTER ROLE app PASSWORD $pw$hunter2-Sécret$pw$", "ALTER ROLE app PASSWORD '***'"),
    ("ALTER ROLE app PASSWORD U&'hunter2-Sécret'", "ALTER ROLE app PASSWORD '***'"),
    ("ALTER ROLE app PASSWORD 'hunter2-''Sécret'''", "ALTER ROLE app PASSWORD '***'"),
    ("ALTER ROLE \"Ünïcode\" PASSWORD 'hunter2-Sécret' LOGIN", "ALTER ROLE \"Ünïcode\" PASSWORD '***' LOGIN"),
    (
        "CREATE USER MAPPING FOR app SERVER legacy OPTIONS (user 'app', password 'hunter2-Sécret')",
        "CREATE USER MAPPING FOR app SERVER legacy OPTIONS (user 'app', password '***')",
    ),
    (
        "ALTER USER MAPPING FOR app SERVER legacy OPTIONS (SET \"password\" 'hunter2-Sécret')",
        "ALTER USER MAPPING FOR app SERVER legacy OPTIONS (SET \"password\" '***')",
    ),
    (
        "CREATE SERVER legacy FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host 'db', password 'hunter2-Sécret')",
        "CREATE SERVER legacy FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host 'db', password '***')",
    ),
    (
        "SELECT dblink_connect('legacy', 'host=db user=app password=hunter2-Sécret')",
        "SELECT dblink_connect('legacy', '***')",
    ),
    (
        "SELECT * FROM dblink('postgresql://app:hunter2-Sécret@db/old', 'SELECT 1') AS t(x int)",
        "SELECT * FROM dblink('***', 'SELECT 1') AS t(x int)",
    ),
]


@pytest.mark.parametrize(("sql", "shown"), REDACTED, ids=[r[0][:40] for r in REDACTED])
def test_password_literals_are_hidden(sql: str, shown: str) -> None:
    assert redact(sql) == shown
    assert "hunter2" not in redact(sql)
    assert has_secret(sql)


UNTOUCHED = [
    "SELECT 'password' AS word, password FROM users",  # a literal and a column that are not secrets
    "UPDATE users SET password_hash = 'x' WHERE id = 1",
    "CREATE ROLE app LOGIN PASSWORD NULL",
    "COMMENT ON COLUMN users.password IS 'bcrypt hash'",
    "SELECT dblink_connect('legacy', 'host=db user=app')",
    "INSERT INTO links (url) VALUES ('https://example.com/a')",
    "ALTER TABLE a ADD COLUMN b int",
]


@pytest.mark.parametrize("sql", UNTOUCHED)
def test_other_text_is_left_alone(sql: str) -> None:
    assert redact(sql) == sql
    assert not has_secret(sql)
    assert secrets(sql) == {}


def test_an_unreadable_text_that_may_hold_a_password_is_not_shown() -> None:
    assert redact("ALTER ROLE app PASSWORD 'hunter2") == HIDDEN
    assert has_secret("ALTER ROLE app PASSWORD 'hunter2")


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1))
def test_any_password_is_hidden(password: str) -> None:
    sql = f"ALTER ROLE app WITH LOGIN PASSWORD {_quote(password)} VALID UNTIL 'infinity'"
    assert redact(sql) == "ALTER ROLE app WITH LOGIN PASSWORD '***' VALID UNTIL 'infinity'"


def test_redactor_scrubs_module_results() -> None:
    statement = "CREATE ROLE app LOGIN\n  PASSWORD 'hunter2-Sécret'"
    hide = Redactor(["CREATE TABLE a (id int)", statement])
    result = {
        "applied": [{"version": "001_a", "statements": ["CREATE TABLE a (id int)", statement]}],
        "msg": "001_a.sql line 2: permission denied\nstatement: CREATE ROLE app LOGIN PASSWORD 'hunter2-Sécret'",
        "warnings": ["value hunter2-Sécret seen"],
        "changed": True,
        "count": 2,
    }
    shown = hide.apply(result)
    assert SECRET not in json.dumps(shown, ensure_ascii=False)
    assert shown["applied"][0]["statements"] == ["CREATE TABLE a (id int)", "CREATE ROLE app LOGIN\n  PASSWORD '***'"]
    assert shown["msg"].endswith("PASSWORD '***'")
    assert shown["warnings"] == ["value *** seen"]
    assert (shown["changed"], shown["count"]) == (True, 2)


def test_redactor_without_secrets_returns_the_result_as_is() -> None:
    hide = Redactor(["CREATE TABLE a (id int)", "SELECT 'password'"])
    result = {"msg": "ok"}
    assert not hide
    assert hide.apply(result) is result


MIGRATION = """\
-- Migration: 001_app_role
-- Type: SAFE
BEGIN;
CREATE ROLE app LOGIN PASSWORD 'hunter2-Sécret';
CREATE USER MAPPING FOR app SERVER legacy OPTIONS (user 'app', password 'hunter2-Sécret');
COMMIT;

-- ROLLBACK
-- ALTER ROLE app PASSWORD 'hunter2-Sécret';
-- DROP ROLE app;
"""


def test_no_finding_lint_report_or_readable_output_shows_the_password(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("TME_MIGRATIONS_CACHE", "off")
    (tmp_path / "001_app_role.sql").write_text(MIGRATION, encoding="utf-8")
    report = lint_path(str(tmp_path))
    text = json.dumps(report, ensure_ascii=False) + "\n".join(render(report))
    assert "hunter2" not in text
    rules = [(f["rule"], f["severity"]) for f in report["migrations"][0]["findings"]]
    assert rules.count(("password-literal", "error")) == 3  # the role, the mapping and the rollback's ALTER ROLE
    assert "PASSWORD '***'" in text


def test_the_sql_that_runs_keeps_the_password_and_results_do_not(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("TME_MIGRATIONS_CACHE", "off")
    path = tmp_path / "001_app_role.sql"
    path.write_text(MIGRATION, encoding="utf-8")
    (migration,) = load_path(str(path))
    assert "PASSWORD 'hunter2-Sécret'" in migration.forward.statements[0].sql  # executable as written
    assert "hunter2" not in json.dumps(list(migration.findings), ensure_ascii=False)
    hide = redactor_for([migration])
    entry = {"statements": [s.sql for s in migration.forward.statements]}
    rolled = {"statements": [s.sql for s in migration.rollback.statements]} if migration.rollback else {}
    assert "hunter2" not in json.dumps(hide.apply([entry, rolled]), ensure_ascii=False)


def test_findings_never_echo_the_literal() -> None:
    for sql, _shown in REDACTED:
        for finding in classify_sql(sql + ";").findings:
            assert "hunter2" not in finding.statement + finding.message, finding


def test_a_parse_error_near_the_password_does_not_show_it(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("TME_MIGRATIONS_CACHE", "off")
    (tmp_path / "001_a.sql").write_text(
        "CREATE TABLE a (id int);\nALTER ROLE x PASSWORD 'first' 'hunter2-Sécret';\n\n-- ROLLBACK\n-- DROP TABLE a;\n",
        encoding="utf-8",
    )
    report = lint_path(str(tmp_path))
    (finding,) = report["migrations"][0]["findings"]
    assert finding["rule"] == "invalid-migration"
    assert "hunter2" not in finding["message"] and "'***'" in finding["message"]


def test_redactor_reaches_into_error_summaries() -> None:
    """ansible-core 2.19 keeps a failed module's message in result["exception"], a frozen dataclass."""
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Event:
        msg: str
        help_text: str | None = None

    @dataclasses.dataclass(frozen=True)
    class Summary:
        event: Event
        error_type: type | None = None

    hide = Redactor(["ALTER ROLE app PASSWORD 'hunter2-Sécret'"])
    summary = Summary(Event("statement: ALTER ROLE app PASSWORD 'hunter2-Sécret'"), ValueError)
    shown = hide.apply({"exception": summary})["exception"]
    assert shown.event.msg == "statement: ALTER ROLE app PASSWORD '***'"
    assert shown.error_type is ValueError
    untouched = Summary(Event("nothing secret"))
    assert hide.apply(untouched) is untouched
