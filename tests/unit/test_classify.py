"""Labelled cases for the classifier: the guide's SAFE/BREAKING lists, the lock canon, hygiene.

Each case is SQL, the class it must get, and the rules it must raise (exactly, as a set).
"""

from __future__ import annotations

import textwrap

import pytest

from ansible_collections.tme.migrations.plugins.plugin_utils._classify import classify_sql
from ansible_collections.tme.migrations.plugins.plugin_utils._files import load_path

S, B = "SAFE", "BREAKING"

CASES: list[tuple[str, str, str, set[str]]] = [
    # -- the guide's SAFE list ------------------------------------------------------------
    ("create-table", "CREATE TABLE invoices (id serial PRIMARY KEY, total numeric NOT NULL);", S, set()),
    ("create-table-if-not-exists", "CREATE TABLE IF NOT EXISTS a (id int);", S, set()),
    ("add-nullable-column", "ALTER TABLE clients ADD COLUMN notes text;", S, set()),
    ("add-column-constant-default", "ALTER TABLE clients ADD COLUMN active boolean NOT NULL DEFAULT true;", S, set()),
    ("add-column-now-default", "ALTER TABLE clients ADD COLUMN seen timestamptz DEFAULT now();", S, set()),
    ("add-column-if-not-exists", "ALTER TABLE clients ADD COLUMN IF NOT EXISTS x int;", S, set()),
    ("create-index-concurrently", "CREATE INDEX CONCURRENTLY idx_a ON clients (email);", S, set()),
    ("create-unique-index-concurrently", "CREATE UNIQUE INDEX CONCURRENTLY u ON clients (email);", S, set()),
    ("enum-add-value", "ALTER TYPE invoice_status ADD VALUE 'overdue';", S, set()),
    ("enum-add-value-if-not-exists", "ALTER TYPE invoice_status ADD VALUE IF NOT EXISTS 'x' BEFORE 'paid';", S, set()),
    ("backfill-update", "UPDATE clients SET country = 'AE' WHERE country IS NULL;", S, set()),
    ("insert-rows", "INSERT INTO settings (key, value) VALUES ('a', 'b');", S, set()),
    ("create-view", "CREATE VIEW active_clients AS SELECT * FROM clients WHERE active;", S, set()),
    ("create-or-replace-view", "CREATE OR REPLACE VIEW v AS SELECT 1 AS a;", S, set()),
    ("create-sequence", "CREATE SEQUENCE invoice_no START 1000;", S, set()),
    ("create-schema", "CREATE SCHEMA IF NOT EXISTS reporting;", S, set()),
    (
        "create-function",
        "CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN DROP TABLE x; RETURN NEW; END$$;",
        S,
        set(),
    ),
    ("create-trigger", "CREATE TRIGGER t BEFORE UPDATE ON clients FOR EACH ROW EXECUTE FUNCTION f();", S, set()),
    ("create-enum", "CREATE TYPE mood AS ENUM ('ok', 'sad');", S, set()),
    ("grant", "GRANT SELECT ON clients TO reporting;", S, set()),
    ("comment", "COMMENT ON COLUMN clients.notes IS 'DROP TABLE clients';", S, set()),
    ("create-extension", "CREATE EXTENSION IF NOT EXISTS pg_trgm;", S, set()),
    ("drop-not-null", "ALTER TABLE clients ALTER COLUMN phone DROP NOT NULL;", S, set()),
    ("set-default", "ALTER TABLE clients ALTER COLUMN phone SET DEFAULT '';", S, set()),
    ("validate-constraint", "ALTER TABLE a VALIDATE CONSTRAINT a_b_fk;", S, set()),
    ("fk-not-valid", "ALTER TABLE a ADD CONSTRAINT fk FOREIGN KEY (b) REFERENCES b (id) NOT VALID;", S, set()),
    ("check-not-valid", "ALTER TABLE a ADD CONSTRAINT ck CHECK (n > 0) NOT VALID;", S, set()),
    ("unique-using-index", "ALTER TABLE a ADD CONSTRAINT u UNIQUE USING INDEX u_idx;", S, set()),
    ("rename-index", "ALTER INDEX old_idx RENAME TO new_idx;", S, set()),
    ("rename-constraint", "ALTER TABLE a RENAME CONSTRAINT c1 TO c2;", S, set()),
    ("drop-constraint", "ALTER TABLE a DROP CONSTRAINT IF EXISTS ck;", S, set()),
    ("plain-vacuum", "VACUUM ANALYZE clients;", S, set()),
    ("set-statement", "SET TIME ZONE 'UTC';", S, set()),
    ("set-application-name", "SET LOCAL application_name = 'backfill';", S, set()),
    ("select-setval", "SELECT setval('invoice_no', 1000);", S, set()),
    # -- the guide's BREAKING list ----------------------------------------------------------
    ("drop-column", "ALTER TABLE clients DROP COLUMN fax;", B, {"drop-column"}),
    ("drop-column-if-exists", "ALTER TABLE clients DROP COLUMN IF EXISTS fax;", B, {"drop-column"}),
    ("rename-column", "ALTER TABLE clients RENAME COLUMN company_name TO legal_name;", B, {"rename-column"}),
    ("rename-table", "ALTER TABLE clients RENAME TO customers;", B, {"rename-table"}),
    (
        "type-change",
        "ALTER TABLE invoices ALTER COLUMN total TYPE bigint;",
        B,
        {"change-column-type", "column-type-rewrite"},
    ),
    ("type-change-to-text", "ALTER TABLE a ALTER COLUMN b TYPE text;", B, {"change-column-type"}),
    ("add-not-null-no-default", "ALTER TABLE clients ADD COLUMN tax_id text NOT NULL;", B, {"add-column-not-null"}),
    ("set-not-null", "ALTER TABLE clients ALTER COLUMN email SET NOT NULL;", B, {"set-not-null", "set-not-null-scan"}),
    ("drop-table", "DROP TABLE old_reports;", B, {"drop-table"}),
    ("drop-table-if-exists-cascade", "DROP TABLE IF EXISTS a, b CASCADE;", B, {"drop-table"}),
    ("drop-view", "DROP VIEW active_clients;", B, {"drop-view"}),
    ("drop-materialized-view", "DROP MATERIALIZED VIEW mv;", B, {"drop-view"}),
    ("drop-type", "DROP TYPE mood;", B, {"drop-type"}),
    ("drop-function", "DROP FUNCTION f(integer);", B, {"drop-function"}),
    ("drop-schema", "DROP SCHEMA reporting CASCADE;", B, {"drop-schema"}),
    ("rename-enum-value", "ALTER TYPE mood RENAME VALUE 'sad' TO 'unhappy';", B, {"rename-enum-value"}),
    ("set-schema", "ALTER TABLE clients SET SCHEMA archive;", B, {"set-schema"}),
    ("truncate", "TRUNCATE audit_log;", B, {"truncate"}),
    ("detach-partition", "ALTER TABLE events DETACH PARTITION events_2024;", B, {"detach-partition"}),
    ("drop-trigger", "DROP TRIGGER t ON clients;", B, {"drop-object"}),
    # -- lock hazards -------------------------------------------------------------------------
    ("plain-create-index", "CREATE INDEX idx ON clients (email);", S, {"require-concurrent-index"}),
    (
        "add-column-volatile-default",
        "ALTER TABLE a ADD COLUMN token uuid DEFAULT gen_random_uuid();",
        B,
        {"add-column-volatile-default"},
    ),
    ("add-serial-column", "ALTER TABLE a ADD COLUMN n bigserial;", B, {"add-column-volatile-default"}),
    (
        "fk-validated",
        "ALTER TABLE a ADD CONSTRAINT fk FOREIGN KEY (b) REFERENCES b (id);",
        S,
        {"foreign-key-not-valid"},
    ),
    ("check-validated", "ALTER TABLE a ADD CONSTRAINT ck CHECK (n > 0);", S, {"check-not-valid"}),
    ("unique-constraint", "ALTER TABLE a ADD CONSTRAINT u UNIQUE (email);", S, {"constraint-builds-index"}),
    ("primary-key", "ALTER TABLE a ADD PRIMARY KEY (id);", S, {"constraint-builds-index"}),
    ("inline-references", "ALTER TABLE a ADD COLUMN b_id int REFERENCES b (id);", S, {"foreign-key-not-valid"}),
    ("vacuum-full", "VACUUM FULL clients;", S, {"vacuum-full"}),
    ("cluster", "CLUSTER clients USING clients_pkey;", S, {"cluster"}),
    ("lock-table", "LOCK TABLE clients IN ACCESS EXCLUSIVE MODE;", S, {"lock-table"}),
    ("drop-index", "DROP INDEX idx_a;", S, {"drop-index-concurrently"}),
    ("drop-index-concurrently", "DROP INDEX CONCURRENTLY idx_a;", S, set()),
    ("reindex", "REINDEX INDEX idx_a;", S, {"reindex-concurrently"}),
    ("set-logged", "ALTER TABLE a SET LOGGED;", S, {"table-rewrite"}),
    # -- transaction hygiene ---------------------------------------------------------------------
    (
        "concurrently-in-begin",
        "BEGIN;\nCREATE INDEX CONCURRENTLY i ON a (b);\nCOMMIT;",
        S,
        {"concurrently-in-transaction"},
    ),
    ("begin-without-commit", "BEGIN;\nCREATE TABLE a (id int);\n", S, {"begin-without-commit"}),
    (
        "enum-value-used-same-transaction",
        "ALTER TYPE mood ADD VALUE 'meh';\nUPDATE people SET mood = 'meh' WHERE mood IS NULL;",
        S,
        {"enum-value-used-in-same-transaction"},
    ),
    ("begin-commit-clean", "BEGIN;\nALTER TABLE a ADD COLUMN b int;\nCOMMIT;", S, set()),
    # -- text that must not count --------------------------------------------------------------
    ("comment-line", "-- DROP TABLE clients;\nALTER TABLE a ADD COLUMN b int;", S, set()),
    ("comment-block", "/* ALTER TABLE a DROP COLUMN b; */\nCREATE TABLE c (id int);", S, set()),
    ("string-literal", "INSERT INTO notes (body) VALUES ('ALTER TABLE x DROP COLUMN y; DROP TABLE z;');", S, set()),
    ("dollar-literal", "SELECT $q$DROP TABLE clients$q$;", S, set()),
    # -- quoted identifiers and multi-statement files ----------------------------------------------
    ("quoted-drop-column", 'ALTER TABLE "Client Table" DROP COLUMN "Old; Name";', B, {"drop-column"}),
    ("quoted-new-table", 'CREATE TABLE "Foo" (id int);\nCREATE INDEX ON "Foo" (id);', S, set()),
    (
        "new-table-changes-free",
        "CREATE TABLE t (id int);\nCREATE INDEX ti ON t (id);\nALTER TABLE t ADD COLUMN x int NOT NULL;\n"
        "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (x) REFERENCES a (id);\nALTER TABLE t ALTER COLUMN x TYPE bigint;",
        S,
        set(),
    ),
    (
        "multi-statement-mixed",
        "CREATE TABLE t (id int);\nALTER TABLE clients ADD COLUMN n int;\nALTER TABLE clients DROP COLUMN fax;",
        B,
        {"drop-column"},
    ),
    (
        "replace-function-and-trigger",
        "DROP TRIGGER IF EXISTS t ON a;\nDROP FUNCTION IF EXISTS f();\n"
        "CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;\n"
        "CREATE TRIGGER t BEFORE INSERT ON a FOR EACH ROW EXECUTE FUNCTION f();",
        S,
        set(),
    ),
    ("drop-view-and-recreate", "DROP VIEW v;\nCREATE VIEW v AS SELECT 1 AS a;", B, {"drop-view"}),
    # -- DO blocks ------------------------------------------------------------------------------
    (
        "do-safe",
        "DO $$\nBEGIN\n  IF NOT EXISTS (SELECT 1 FROM pg_type WHERE typname = 'mood') THEN\n"
        "    CREATE TYPE mood AS ENUM ('ok');\n  END IF;\nEND\n$$;",
        S,
        set(),
    ),
    ("do-breaking", "DO $$ BEGIN ALTER TABLE a DROP COLUMN b; END $$;", B, {"drop-column"}),
    ("do-execute-literal", "DO $$ BEGIN EXECUTE 'ALTER TABLE a ADD COLUMN c int'; END $$;", S, set()),
    ("do-dynamic", "DO $$ BEGIN EXECUTE format('DROP TABLE %I', 'a'); END $$;", B, {"opaque-do-block"}),
    ("do-other-language", "DO LANGUAGE plpython3u $$ plpy.execute('select 1') $$;", B, {"opaque-do-block"}),
    ("do-comment-inside", "DO $$ BEGIN -- DROP TABLE a;\n UPDATE a SET b = 1; END $$;", S, set()),
    # -- unknown ---------------------------------------------------------------------------------
    ("call-procedure", "CALL do_something();", B, {"unknown-statement"}),
    # -- column defaults: a volatile one rewrites the table (PostgreSQL 11+ keeps only non-volatile ones) ----
    ("default-random", "ALTER TABLE a ADD COLUMN r float8 DEFAULT random();", B, {"add-column-volatile-default"}),
    (
        "default-clock-timestamp",
        "ALTER TABLE a ADD COLUMN t timestamptz NOT NULL DEFAULT clock_timestamp();",
        B,
        {"add-column-volatile-default"},
    ),
    (
        "default-nextval",
        "ALTER TABLE a ADD COLUMN n bigint DEFAULT nextval('a_n_seq'::regclass);",
        B,
        {"add-column-volatile-default"},
    ),
    (
        "default-volatile-in-expression",
        "ALTER TABLE a ADD COLUMN k text DEFAULT md5(random()::text);",
        B,
        {"add-column-volatile-default"},
    ),
    (
        "default-user-function",
        "ALTER TABLE emails ADD COLUMN token text NOT NULL DEFAULT random_string(26);",
        B,
        {"add-column-unknown-default"},
    ),
    (
        "default-qualified-user-function",
        "ALTER TABLE a ADD COLUMN u text DEFAULT app.lower('X');",
        B,
        {"add-column-unknown-default"},
    ),
    ("default-current-date", "ALTER TABLE a ADD COLUMN d date DEFAULT CURRENT_DATE;", S, set()),
    ("default-current-timestamp", "ALTER TABLE a ADD COLUMN d timestamptz DEFAULT current_timestamp;", S, set()),
    ("default-cast-constant", "ALTER TABLE a ADD COLUMN j jsonb NOT NULL DEFAULT '{}'::jsonb;", S, set()),
    ("default-lower", "ALTER TABLE a ADD COLUMN c text DEFAULT lower('ABC');", S, set()),
    (
        "default-stable-expression",
        "ALTER TABLE a ADD COLUMN e timestamptz DEFAULT pg_catalog.now() + interval '30 days';",
        S,
        set(),
    ),
    ("default-on-new-table", "CREATE TABLE t (id int);\nALTER TABLE t ADD COLUMN k text DEFAULT f();", S, set()),
    ("set-default-user-function", "ALTER TABLE a ALTER COLUMN k SET DEFAULT random_string(26);", S, set()),
    # -- session changes the engine resets after each migration (warnings) --------------------------
    ("set-role", "SET ROLE app_owner;", S, {"set-role"}),
    ("set-local-role", "SET LOCAL ROLE app_owner;", S, {"set-role"}),
    ("reset-role", "RESET ROLE;", S, {"set-role"}),
    ("set-session-authorization", "SET SESSION AUTHORIZATION app_owner;", S, {"set-role"}),
    ("reset-session-authorization", "RESET SESSION AUTHORIZATION;", S, {"set-role"}),
    ("set-search-path", "SET search_path TO app, public;", S, {"set-search-path"}),
    ("set-local-search-path", "SET LOCAL search_path = app;", S, {"set-search-path"}),
    ("set-config-search-path", "SELECT set_config('search_path', 'app', false);", S, {"set-search-path"}),
    ("set-config-other", "SELECT set_config('app.tenant', 'x', true);", S, set()),
    (
        "function-own-search-path",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS 'SELECT 1';",
        S,
        set(),
    ),
    # -- the engine's timeouts (errors) ------------------------------------------------------------
    ("set-statement-timeout", "SET statement_timeout = 0;", S, {"override-timeout"}),
    ("set-local-lock-timeout", "SET LOCAL lock_timeout = '1min';", S, {"override-timeout"}),
    ("reset-lock-timeout", "RESET lock_timeout;", S, {"override-timeout"}),
    ("set-idle-timeout", "SET idle_in_transaction_session_timeout = 0;", S, {"override-timeout"}),
    ("reset-all", "RESET ALL;", S, {"override-timeout"}),
    (
        "set-config-statement-timeout",
        "SELECT pg_catalog.set_config('statement_timeout', '0', false);",
        S,
        {"override-timeout"},
    ),
    (
        "do-set-lock-timeout",
        "DO $$ BEGIN PERFORM set_config('lock_timeout', '0', true); END $$;",
        S,
        {"override-timeout"},
    ),
    # -- the database server's files and programs (errors) ------------------------------------------
    ("copy-from-program", "COPY a FROM PROGRAM 'curl -s https://example.com/a.csv';", S, {"copy-program"}),
    ("copy-to-program", "COPY (SELECT * FROM a) TO PROGRAM 'gzip > /tmp/a.gz';", S, {"copy-program"}),
    ("copy-from-server-file", "COPY a FROM '/var/lib/postgresql/a.csv' WITH (FORMAT csv);", S, {"copy-server-file"}),
    ("copy-to-server-file", "COPY a TO '/tmp/a.csv';", S, {"copy-server-file"}),
    ("copy-from-stdin", "COPY a (id) FROM STDIN;", S, set()),
    ("lo-import", "SELECT lo_import('/etc/passwd');", S, {"server-file-access"}),
    ("lo-export", "SELECT lo_export(42, '/tmp/x');", S, {"server-file-access"}),
    (
        "pg-read-file-in-insert",
        "INSERT INTO settings (v) SELECT pg_read_file('/etc/hostname');",
        S,
        {"server-file-access"},
    ),
    ("pg-read-binary-file", "SELECT pg_read_binary_file('x');", S, {"server-file-access"}),
    ("pg-ls-dir", "SELECT * FROM pg_ls_dir('.');", S, {"server-file-access"}),
    ("pg-stat-file", "SELECT (pg_stat_file('PG_VERSION')).size;", S, {"server-file-access"}),
    ("file-function-in-string", "INSERT INTO notes (body) VALUES ('pg_read_file(''/etc/passwd'')');", S, set()),
    # -- roles, passwords and the cluster (errors) -------------------------------------------------------
    ("create-role", "CREATE ROLE reporting NOLOGIN;", S, {"cluster-wide"}),
    ("create-user-superuser", "CREATE USER admin SUPERUSER;", S, {"cluster-wide", "role-privileged-attribute"}),
    ("alter-role-createrole", "ALTER ROLE app CREATEROLE;", S, {"cluster-wide", "role-privileged-attribute"}),
    ("alter-role-bypassrls", "ALTER ROLE app WITH BYPASSRLS;", S, {"cluster-wide", "role-privileged-attribute"}),
    ("create-role-replication", "CREATE ROLE rep REPLICATION LOGIN;", S, {"cluster-wide", "role-privileged-attribute"}),
    ("alter-role-nosuperuser", "ALTER ROLE app NOSUPERUSER NOCREATEROLE;", S, {"cluster-wide"}),
    ("create-role-password", "CREATE ROLE app LOGIN PASSWORD 'hunter2';", S, {"cluster-wide", "password-literal"}),
    (
        "create-user-encrypted-password",
        "CREATE USER app WITH ENCRYPTED PASSWORD 'SCRAM-SHA-256$4096:abc';",
        S,
        {"cluster-wide", "password-literal"},
    ),
    ("alter-user-password", "ALTER USER app WITH PASSWORD 'hunter2';", S, {"cluster-wide", "password-literal"}),
    ("alter-role-password-null", "ALTER ROLE app PASSWORD NULL;", S, {"cluster-wide"}),
    ("drop-role", "DROP ROLE IF EXISTS reporting;", S, {"cluster-wide"}),
    ("drop-user", "DROP USER old_app;", S, {"cluster-wide"}),
    ("create-group", "CREATE GROUP readers;", S, {"cluster-wide"}),
    ("alter-group-add-user", "ALTER GROUP readers ADD USER app;", S, {"cluster-wide"}),
    ("rename-role", "ALTER ROLE app RENAME TO app2;", S, {"cluster-wide"}),
    ("alter-role-set", "ALTER ROLE app SET search_path = app, public;", S, {"cluster-wide"}),
    ("grant-role-membership", "GRANT reporting TO app;", S, {"cluster-wide"}),
    ("revoke-role-membership", "REVOKE reporting FROM app;", S, {"cluster-wide"}),
    ("alter-system", "ALTER SYSTEM SET work_mem = '64MB';", S, {"cluster-wide"}),
    ("create-database", "CREATE DATABASE scratch;", S, {"cluster-wide"}),
    ("drop-database", "DROP DATABASE IF EXISTS scratch;", S, {"cluster-wide"}),
    ("alter-database-set", "ALTER DATABASE tme_portal SET statement_timeout = '5s';", S, {"cluster-wide"}),
    ("alter-database-owner", "ALTER DATABASE tme_portal OWNER TO app;", S, {"cluster-wide"}),
    ("create-tablespace", "CREATE TABLESPACE fast LOCATION '/ssd';", S, {"cluster-wide"}),
    ("alter-tablespace", "ALTER TABLESPACE fast SET (random_page_cost = 1.1);", S, {"cluster-wide"}),
    ("rename-tablespace", "ALTER TABLESPACE fast RENAME TO faster;", S, {"cluster-wide"}),
    ("drop-tablespace", "DROP TABLESPACE fast;", S, {"cluster-wide"}),
    ("alter-table-owner", "ALTER TABLE a OWNER TO app;", S, set()),
    (
        "user-mapping-password",
        "CREATE USER MAPPING FOR app SERVER legacy OPTIONS (user 'app', password 'hunter2');",
        S,
        {"password-literal"},
    ),
    (
        "alter-user-mapping-password",
        "ALTER USER MAPPING FOR app SERVER legacy OPTIONS (SET password 'hunter2');",
        S,
        {"password-literal"},
    ),
    (
        "server-password",
        "CREATE SERVER legacy FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host 'db', password 'hunter2');",
        S,
        {"password-literal"},
    ),
    ("user-mapping-no-password", "CREATE USER MAPPING FOR app SERVER legacy OPTIONS (user 'app');", S, set()),
    (
        "dblink-connect-password",
        "SELECT dblink_connect('legacy', 'host=db dbname=old user=app password=hunter2');",
        S,
        {"password-literal"},
    ),
    (
        "dblink-uri-password",
        "SELECT * FROM dblink('postgresql://app:hunter2@db/old', 'SELECT 1') AS t(x int);",
        S,
        {"password-literal"},
    ),
    ("dblink-no-password", "SELECT dblink_connect('legacy', 'host=db dbname=old user=app');", S, set()),
    (
        "do-file-function-in-assignment",
        "DO $$ DECLARE x text; BEGIN x := pg_read_file('/etc/hostname'); END $$;",
        S,
        {"server-file-access"},
    ),
    (
        "do-file-function-in-condition",
        "DO $$ BEGIN IF lo_import('/tmp/x') > 0 THEN RAISE NOTICE 'x'; END IF; END $$;",
        S,
        {"server-file-access"},
    ),
    ("do-set-role", "DO $$ BEGIN SET ROLE app_owner; END $$;", S, {"set-role"}),
    ("do-create-role", "DO $$ BEGIN CREATE ROLE reporting; END $$;", S, {"cluster-wide"}),
]


@pytest.mark.parametrize(("sql", "expected", "rules"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_labelled_case(sql: str, expected: str, rules: set[str]) -> None:
    analysis = classify_sql(sql, "case.sql")
    found = {f.rule for f in analysis.findings}
    assert (analysis.classification, found) == (expected, rules), [str(f) for f in analysis.findings]


def test_case_count() -> None:
    assert len(CASES) >= 60
    assert {c[0] for c in CASES}.__len__() == len(CASES)


def test_findings_name_file_line_and_statement() -> None:
    sql = "CREATE TABLE t (id int);\n\n-- a comment\nALTER TABLE clients\n  DROP COLUMN fax;\n"
    (finding,) = classify_sql(sql, "017_x.sql").findings
    assert finding.path == "017_x.sql"
    assert finding.line == 4
    assert finding.statement == "ALTER TABLE clients DROP COLUMN fax"
    assert "clients.fax" in finding.message


def test_do_block_finding_points_at_the_inner_line() -> None:
    sql = "SELECT 1;\nDO $$\nBEGIN\n  ALTER TABLE a DROP COLUMN b;\nEND $$;"
    (finding,) = classify_sql(sql, "x.sql").findings
    assert finding.line == 4


def test_hazard_messages_name_the_safe_alternative() -> None:
    sql = (
        "CREATE INDEX i ON a (b);\nALTER TABLE a ADD CONSTRAINT fk FOREIGN KEY (b) REFERENCES c (id);\n"
        "ALTER TABLE a ADD CONSTRAINT ck CHECK (b > 0);\nALTER TABLE a ALTER COLUMN b SET NOT NULL;\n"
        "DROP INDEX j;\nALTER TABLE a ADD UNIQUE (b);"
    )
    hints = {f.rule: f.message for f in classify_sql(sql).findings if f.severity == "warning"}
    assert "CONCURRENTLY" in hints["require-concurrent-index"]
    assert "NOT VALID" in hints["foreign-key-not-valid"]
    assert "NOT VALID" in hints["check-not-valid"]
    assert "IS NOT NULL" in hints["set-not-null-scan"]
    assert "CONCURRENTLY" in hints["drop-index-concurrently"]
    assert "USING INDEX" in hints["constraint-builds-index"]


TEMPLATE = """\
-- Migration: {number}_{name}
-- Date: 2025-09-20
-- Author: ops
-- Type: {declared} - Can deploy before code?
-- Description: {name}

BEGIN;

{sql}

INSERT INTO schema_migrations (version, description)
VALUES ('{number}_{name}', '{name}');

COMMIT;

-- ============================================
-- ROLLBACK (if needed):
-- ============================================
-- BEGIN;
{rollback}
-- DELETE FROM schema_migrations WHERE version = '{number}_{name}';
-- COMMIT;
"""


def _template(tmp_path, declared: str, sql: str, rollback: str, number: str = "016", name: str = "change"):  # noqa: ANN001, ANN202
    commented = "\n".join("-- " + line for line in rollback.splitlines())
    path = tmp_path / f"{number}_{name}.sql"
    path.write_text(TEMPLATE.format(number=number, name=name, declared=declared, sql=sql, rollback=commented))
    (migration,) = load_path(str(path))
    return migration


def test_template_declared_safe_but_breaking_is_an_error(tmp_path) -> None:  # noqa: ANN001
    m = _template(tmp_path, "SAFE", "ALTER TABLE clients DROP COLUMN fax;", "ALTER TABLE clients ADD COLUMN fax text;")
    assert (m.declared_type, m.detected_type, m.classification) == ("SAFE", "BREAKING", "BREAKING")
    errors = [f for f in m.findings if f["severity"] == "error"]
    assert [f["rule"] for f in errors] == ["declared-safe-but-breaking"]
    assert "line 9: drop-column" in errors[0]["message"]
    assert m.rollback_type == "SAFE"
    assert m.breaking_reasons == [
        next(f for f in m.findings if f["rule"] == "drop-column")["message"].join(["line 9: ", ""])
    ]


def test_template_safe_is_clean_and_rollback_classified(tmp_path) -> None:  # noqa: ANN001
    m = _template(
        tmp_path, "SAFE", "ALTER TABLE clients ADD COLUMN notes text;", "ALTER TABLE clients DROP COLUMN notes;"
    )
    assert (m.classification, m.findings, m.rollback_type) == ("SAFE", (), "BREAKING")


def test_template_undeclared_takes_the_detected_class(tmp_path) -> None:  # noqa: ANN001
    m = _template(
        tmp_path, "[SAFE|BREAKING]", "ALTER TABLE a RENAME COLUMN b TO c;", "ALTER TABLE a RENAME COLUMN c TO b;"
    )
    assert (m.declared_type, m.classification) == (None, "BREAKING")
    assert not [f for f in m.findings if f["severity"] == "error"]


def test_declared_breaking_stays_breaking(tmp_path) -> None:  # noqa: ANN001
    m = _template(tmp_path, "BREAKING", "ALTER TABLE a ADD COLUMN c int;", "ALTER TABLE a DROP COLUMN c;")
    assert (m.detected_type, m.classification) == ("SAFE", "BREAKING")
    assert [f["rule"] for f in m.findings] == ["declared-breaking-but-safe"]


def test_missing_and_broken_rollbacks_are_errors(tmp_path) -> None:  # noqa: ANN001
    (tmp_path / "001_a.sql").write_text("CREATE TABLE a (id int);\n")
    (missing,) = load_path(str(tmp_path / "001_a.sql"), require_rollback=False)
    assert [f["rule"] for f in missing.findings] == ["missing-rollback"]
    (tmp_path / "002_b.sql").write_text("CREATE TABLE b (id int);\n")
    (tmp_path / "002_b.rollback.sql").write_text("DROP TABLE b\nDROP TABLE c;\n")
    (broken,) = load_path(str(tmp_path / "002_b.sql"))
    (finding,) = broken.findings
    assert finding["rule"] == "rollback-syntax"
    assert "002_b.rollback.sql line 2" in finding["message"]


def test_non_ascii_text_keeps_lines_and_statements() -> None:
    sql = textwrap.dedent(
        """\
        COMMENT ON TABLE a IS 'Überweisung – ✓';
        ALTER TABLE "Ünïcode" DROP COLUMN "ß";
        """
    )
    (finding,) = classify_sql(sql).findings
    assert (finding.line, finding.statement) == (2, 'ALTER TABLE "Ünïcode" DROP COLUMN "ß"')


def test_new_findings_give_the_reason_and_the_safer_way() -> None:
    sql = (
        "SET ROLE app_owner;\nSET search_path = app;\nSET lock_timeout = 0;\nCOPY a FROM '/tmp/a.csv';\n"
        "COPY a FROM PROGRAM 'cat /tmp/a';\nSELECT pg_read_file('x');\nCREATE ROLE r SUPERUSER PASSWORD 'hunter2';\n"
        "ALTER TABLE a ADD COLUMN t text DEFAULT random_string(26);\nALTER TABLE a ADD COLUMN u uuid DEFAULT "
        "gen_random_uuid();"
    )
    found = {f.rule: f for f in classify_sql(sql).findings}
    assert found["set-role"].severity == "warning" and "resets" in found["set-role"].message
    assert "schema-qualify" in found["set-search-path"].message
    assert found["override-timeout"].severity == "error"
    assert "lock_timeout / statement_timeout options" in found["override-timeout"].message
    assert "COPY FROM STDIN" in found["copy-server-file"].message
    assert found["copy-program"].severity == found["server-file-access"].severity == "error"
    assert "SUPERUSER" in found["role-privileged-attribute"].message
    assert "do not belong in migration files" in found["password-literal"].message
    assert "every database of the server" in found["cluster-wide"].message
    assert "-- Allow: cluster-wide" in found["cluster-wide"].message
    unknown = found["add-column-unknown-default"]
    assert (unknown.severity, unknown.breaking) == ("warning", True)
    assert "random_string()" in unknown.message and "offline" in unknown.message
    assert "ACCESS EXCLUSIVE" in found["add-column-volatile-default"].message
    assert all("hunter2" not in f.message + f.statement for f in found.values())
    assert found["password-literal"].statement == "CREATE ROLE r SUPERUSER PASSWORD '***'"


def test_rollback_is_checked_for_cluster_and_session_rules(tmp_path) -> None:  # noqa: ANN001
    m = _template(
        tmp_path,
        "SAFE",
        "ALTER TABLE clients ADD COLUMN notes text;",
        "SET statement_timeout = 0;\nDROP ROLE reporting;\nALTER TABLE clients DROP COLUMN notes;",
    )
    rollback = [(f["rule"], f["severity"]) for f in m.findings if "ROLLBACK" in f["path"]]
    assert sorted(rollback) == [("cluster-wide", "error"), ("override-timeout", "error")]
    assert m.classification == "SAFE"  # the rollback's drop is its nature, not a finding


def test_allow_header_accepts_deliberately_and_keeps_it_visible(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    from ansible_collections.tme.migrations.plugins.plugin_utils._lint import failing, lint_path, render

    monkeypatch.setenv("TME_MIGRATIONS_CACHE", "off")
    body = "CREATE ROLE reporting NOLOGIN;\nSET lock_timeout = 0;\n\n-- ROLLBACK\n-- DROP ROLE reporting;\n"
    (tmp_path / "001_role.sql").write_text("-- Type: SAFE\n-- Allow: cluster-wide, drop-table\n" + body)
    report = lint_path(str(tmp_path))
    findings = report["migrations"][0]["findings"]
    accepted = [f for f in findings if f.get("accepted")]
    assert [(f["rule"], f["severity"]) for f in accepted] == [("cluster-wide", "info")] * 2
    assert all(f["message"].startswith("accepted by the file's '-- Allow: cluster-wide' header") for f in accepted)
    # Only the accepted rule: the timeout is still an error; drop-table is not a rule a header can accept.
    assert [f["rule"] for f in failing(report, "error")] == ["override-timeout"]
    assert sum("accepted by" in line for line in render(report)) == 2


@pytest.mark.parametrize(
    ("sql", "functions", "defined_here"),
    [
        ("ALTER TABLE a ADD COLUMN t text DEFAULT generate_unique_changeme();", ["generate_unique_changeme"], []),
        ("ALTER TABLE a ADD COLUMN u text DEFAULT app.token(26);", ["app.token"], []),
        ("ALTER TABLE a ADD COLUMN v text DEFAULT lower(app.token(1) || tok());", ["app.token", "tok"], []),
        (
            "CREATE FUNCTION tok() RETURNS text LANGUAGE sql AS 'SELECT 1';\nALTER TABLE a ADD COLUMN w text "
            "DEFAULT tok();",
            ["tok"],
            ["tok"],
        ),
    ],
)
def test_unknown_default_names_its_functions(sql: str, functions: list[str], defined_here: list[str]) -> None:
    """The finding carries the functions as written, for the engine to read their volatility from pg_proc."""
    [finding] = [f.to_dict() for f in classify_sql(sql).findings if f.rule == "add-column-unknown-default"]
    assert sorted(finding["functions"]) == sorted(functions)
    assert finding["defined_here"] == defined_here
    assert all(f"{name}()" in finding["message"] for name in functions)


def test_only_the_unknown_default_finding_names_functions() -> None:
    analysis = classify_sql("ALTER TABLE a ADD COLUMN r float8 DEFAULT random();\nALTER TABLE a ADD COLUMN s text;")
    assert [f.to_dict().get("functions") for f in analysis.findings] == [None]
