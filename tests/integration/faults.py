# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fault matrix: kill -9 of the whole ansible-playbook process group at seeded moments, PostgreSQL
stopped mid-run, eight runners at once; after each trial, the invariants that say nothing was lost.

Shared by tests/integration/test_faults.py (a few trials per case, in `make test`) and bench/faults.py
(the full count, `make faults`). Every trial runs on a private server in a private directory; every
server is stopped and every ansible-playbook process group killed, also on failure.

Invariants after a trial (`Trial.lost` lists what broke):
* the tracking table matches the schema: the tracked versions are a prefix of the migration list and
  the catalog fingerprint equals the reference fingerprint of that prefix (a stepwise migration that
  the progress table shows as in progress may have left its objects: resumable, not lost);
* no advisory lock is held and no backend of the killed run remains;
* no `.partial` file is left in the backup directory after the next run, and its lock file is free;
* a rerun exits 0 and reaches the full reference (or, for restore, the backup's source fingerprint).
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))

from localpg import LocalPostgres, free_port  # noqa: E402

EXAMPLES = REPO / "examples" / "migrations"
VENV_BIN = Path(sys.executable).parent
DEFAULT_SEED = 20261125
TRACKING = "schema_migrations"

# Columns, indexes (with indisvalid), types, enum labels, constraints of the public schema, tracking tables excluded.
FINGERPRINT_SQL = """
SELECT 'column', c.relname || '.' || a.attname || ':' || format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
       || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'm', 'p') AND a.attnum > 0 AND NOT a.attisdropped
   AND c.relname NOT LIKE 'schema\\_migrations%'
UNION ALL
SELECT 'relation', c.relname || ':' || c.relkind::text
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'm', 'p', 'S') AND c.relname NOT LIKE 'schema\\_migrations%'
UNION ALL
SELECT 'index', i.relname || ' valid=' || x.indisvalid::text || ' ' || pg_get_indexdef(x.indexrelid)
  FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
 WHERE n.nspname = 'public' AND t.relname NOT LIKE 'schema\\_migrations%'
UNION ALL
SELECT 'type', t.typname || ':' || t.typtype::text
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd', 'c') AND t.typrelid = 0
UNION ALL
SELECT 'enum', t.typname || ':' || string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
  FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE n.nspname = 'public' GROUP BY t.typname
UNION ALL
SELECT 'constraint', t.relname || '.' || c.conname || ' ' || pg_get_constraintdef(c.oid)
  FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace
 WHERE n.nspname = 'public' AND t.relname NOT LIKE 'schema\\_migrations%'
ORDER BY 1, 2
"""


def seed() -> int:
    return int(os.environ.get("TME_FAULT_SEED", DEFAULT_SEED))


def trials(default: int) -> int:
    return int(os.environ.get("TME_FAULT_TRIALS", default))


# -- migrations -----------------------------------------------------------------------------------
def versions_of(directory: Path) -> list[str]:
    return sorted(p.name[:-4] for p in directory.glob("*.sql") if not p.name.endswith(".rollback.sql"))


def stepwise_migrations(root: Path, rows: int = 400_000) -> Path:
    """The examples, then a big table and a CREATE INDEX CONCURRENTLY on it (stepwise), then one more."""
    directory = root / "stepwise"
    directory.mkdir()
    for path in EXAMPLES.glob("*.sql"):
        (directory / path.name).write_text(path.read_text())
    fill = "INSERT INTO events (kind, payload) SELECT 'k' || (g %% 97), md5(g::text) FROM generate_series(1, %d) g;\n"
    extra = {
        "016_create_events": (
            "BEGIN;\nCREATE TABLE events (id bigserial PRIMARY KEY, kind text NOT NULL, payload text);\n"
            + fill % rows
            + "COMMIT;\n",
            "BEGIN;\nDROP TABLE IF EXISTS events;\nCOMMIT;\n",
        ),
        "017_index_events_payload": (
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_events_payload ON events (payload);\n"
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_events_kind ON events (kind);\n",
            "DROP INDEX CONCURRENTLY IF EXISTS idx_events_kind;\n"
            "DROP INDEX CONCURRENTLY IF EXISTS idx_events_payload;\n",
        ),
        "018_add_events_note": (
            "BEGIN;\nALTER TABLE events ADD COLUMN note text;\nCOMMIT;\n",
            "BEGIN;\nALTER TABLE events DROP COLUMN IF EXISTS note;\nCOMMIT;\n",
        ),
    }
    for version, (forward, rollback) in extra.items():
        header = f"-- Migration: {version}.sql\n-- Type: SAFE\n-- Description: fault matrix {version}\n\n"
        (directory / f"{version}.sql").write_text(header + forward)
        (directory / f"{version}.rollback.sql").write_text(f"-- Rollback of {version}.sql\n" + rollback)
    return directory


# -- the server and its databases -----------------------------------------------------------------
@contextmanager
def private_server(root: Path) -> Iterator[LocalPostgres]:
    """A bundled PostgreSQL in root/pg on a free port of 127.0.0.1, stopped and removed on exit."""
    root.chmod(0o755)  # the server may run as another system user (tools/localpg.py)
    server = LocalPostgres(root / "pg", free_port())
    try:
        server.start()
        server.wait_ready()
        server.ensure_databases(())
        yield server
    finally:
        server.destroy()


def admin(server: LocalPostgres, dbname: str = "postgres") -> Any:
    import psycopg

    return psycopg.connect(autocommit=True, connect_timeout=5, **server.admin_kwargs(dbname))


def create_database(server: LocalPostgres, name: str, template: str | None = None) -> str:
    from psycopg import sql

    with admin(server) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        query = sql.SQL("CREATE DATABASE {} OWNER tme_user").format(sql.Identifier(name))
        if template:
            query = sql.SQL("CREATE DATABASE {} OWNER tme_user TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        conn.execute(query)
    return name


def query(server: LocalPostgres, dbname: str, text: str, params: Any = None) -> list[tuple[Any, ...]]:
    with admin(server, dbname) as conn:
        cur = conn.execute(text, params)
        return cur.fetchall() if cur.description else []


def fingerprint(server: LocalPostgres, dbname: str) -> list[tuple[str, str]]:
    return [(str(a), str(b)) for a, b in query(server, dbname, FINGERPRINT_SQL)]


def tracked(server: LocalPostgres, dbname: str) -> list[str]:
    exists = query(server, dbname, "SELECT to_regclass('public.schema_migrations') IS NOT NULL")[0][0]
    if not exists:
        return []
    return [r[0] for r in query(server, dbname, "SELECT version FROM schema_migrations ORDER BY version")]


def in_progress(server: LocalPostgres, dbname: str) -> dict[str, str]:
    exists = query(server, dbname, "SELECT to_regclass('public.schema_migrations_progress') IS NOT NULL")[0][0]
    if not exists:
        return {}
    return {r[0]: r[1] for r in query(server, dbname, "SELECT version, status FROM schema_migrations_progress")}


# -- ansible-playbook -----------------------------------------------------------------------------
def playbook_text(tasks: list[dict[str, Any]]) -> str:
    """A play on localhost (JSON is YAML)."""
    return json.dumps([{"name": "Fault trial", "hosts": "localhost", "gather_facts": False, "tasks": tasks}], indent=1)


def connection(server: LocalPostgres, dbname: str) -> dict[str, Any]:
    return {"login_host": "127.0.0.1", "login_port": server.port, "login_user": "tme_user", "login_db": dbname}


def migration_task(server: LocalPostgres, dbname: str, directory: Path, **options: Any) -> dict[str, Any]:
    return {
        "name": "Migrate",
        "tme.migrations.migration": {"path": str(directory), **connection(server, dbname), **options},
    }


@dataclass
class Run:
    rc: int
    output: str
    seconds: float
    killed: bool = False
    survivors: list[tuple[int, str]] = field(default_factory=list)


class Runner:
    """ansible-playbook in its own session (process group), as a CI job runs it; never left behind."""

    def __init__(self, root: Path, server: LocalPostgres) -> None:
        self.root = root
        self.server = server
        self.count = 0
        self.tmp = root / "ansible-tmp"
        self.tmp.mkdir(exist_ok=True)

    def env(self) -> dict[str, str]:
        return dict(
            os.environ,
            PGPASSWORD=self.server.password(),
            ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
            ANSIBLE_LOCAL_TEMP=str(self.tmp),
            ANSIBLE_REMOTE_TEMP=str(self.tmp),
            ANSIBLE_NOCOLOR="1",
            PATH=str(self.server.bindir) + os.pathsep + os.environ.get("PATH", ""),  # this server's pg_dump
            ANSIBLE_FORCE_COLOR="0",
        )

    def write(self, tasks: list[dict[str, Any]]) -> Path:
        self.count += 1
        path = self.root / f"play{self.count}.yml"
        path.write_text(playbook_text(tasks))
        return path

    def argv(self, playbook: Path) -> list[str]:
        return [
            str(VENV_BIN / "ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            str(playbook),
        ]

    def start(self, tasks: list[dict[str, Any]]) -> tuple[subprocess.Popen[str], Path]:
        log = self.root / f"out{self.count + 1}.log"
        handle = log.open("w")
        proc = subprocess.Popen(
            self.argv(self.write(tasks)),
            env=self.env(),
            stdout=handle,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        handle.close()
        return proc, log

    def run(
        self,
        tasks: list[dict[str, Any]],
        kill_after: float | None = None,
        during: Callable[[], None] | None = None,
        timeout: float = 300,
    ) -> Run:
        """Run to the end; or SIGKILL the whole group after `kill_after` s; or call `during` after `kill_after` s."""
        start = time.monotonic()
        proc, log = self.start(tasks)
        killed = False
        survivors: list[tuple[int, str]] = []
        try:
            if kill_after is not None:
                try:
                    proc.wait(timeout=kill_after)
                except subprocess.TimeoutExpired:
                    if during is None:
                        os.killpg(proc.pid, signal.SIGKILL)
                        killed = True
                        # Ansible's workers call setsid(): the group kill leaves them and the module running.
                        # Kill them too, at once, as a container stop or a cgroup kill does.
                        try:
                            proc.wait(timeout=5)
                        except subprocess.TimeoutExpired:
                            pass
                        survivors = [(pid, cmd) for pid, cmd in self.survivors() if session_of(pid) != proc.pid]
                        for pid, _cmd in survivors:
                            try:
                                os.kill(pid, signal.SIGKILL)
                            except ProcessLookupError:
                                pass
                    else:
                        during()
            proc.wait(timeout=timeout)
        finally:
            kill_group(proc)
        output = log.read_text(errors="replace")
        return Run(proc.returncode if not killed else -9, output, time.monotonic() - start, killed, survivors)

    def survivors(self) -> list[tuple[int, str]]:
        return leftover_processes(str(self.tmp), str(self.root / "play"))


def kill_group(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def session_of(pid: int) -> int | None:
    """The session id of a process (field 6 of /proc/PID/stat), None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[3])


def leftover_processes(*markers: str) -> list[tuple[int, str]]:
    """Processes whose command line names a marker (the playbooks, Ansible's temp dir): what survived a kill."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(marker in cmd for marker in markers):
            found.append((int(entry.name), cmd[:200]))
    return found


# -- invariants -----------------------------------------------------------------------------------
def sessions_gone(server: LocalPostgres, dbname: str, wait: float = 10.0) -> list[str]:
    """Locks and backends left on `dbname` (other than this check's own), after waiting for them to go."""
    deadline = time.monotonic() + wait
    while True:
        problems = []
        locks = query(
            server,
            dbname,
            "SELECT pid, objid FROM pg_locks l WHERE locktype = 'advisory' AND pid <> pg_backend_pid()"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        if locks:
            problems.append(f"advisory locks held: {locks}")
        backends = query(
            server,
            dbname,
            "SELECT pid, application_name, state, left(query, 80) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
        )
        if backends:
            problems.append(f"backends of the killed run remain: {backends}")
        if not problems or time.monotonic() > deadline:
            return problems
        time.sleep(0.2)


def consistent(
    server: LocalPostgres, dbname: str, versions: list[str], reference: list[list[tuple[str, str]]]
) -> list[str]:
    """The tracked versions are a prefix of `versions` and the schema is that prefix's reference."""
    done = tracked(server, dbname)
    if done != versions[: len(done)]:
        return [f"tracked versions are not a prefix of the migrations: {done}"]
    actual = fingerprint(server, dbname)
    if actual == reference[len(done)]:
        return []
    progress = in_progress(server, dbname)
    if len(done) < len(versions) and versions[len(done)] in progress and progress[versions[len(done)]] != "done":
        return []  # a stepwise migration interrupted: its progress row says so, the next run resumes it
    want = set(reference[len(done)])
    return [
        f"schema does not match the {len(done)} tracked versions: extra {sorted(set(actual) - want)[:5]},"
        f" missing {sorted(want - set(actual))[:5]}"
    ]


def no_traceback(run: Run) -> list[str]:
    return ["Python traceback in the output"] if "Traceback (most recent call last)" in run.output else []


@dataclass
class Trial:
    case: str
    index: int
    delay: float = 0.0
    lost: list[str] = field(default_factory=list)
    survivors: int = 0  # processes that outlived the group kill (Ansible's worker and the module)

    def line(self) -> str:
        return f"  {self.case} #{self.index} delay={self.delay:.2f}s: " + (
            "ok" if not self.lost else "; ".join(self.lost)
        )


@dataclass
class CaseResult:
    case: str
    trials: list[Trial] = field(default_factory=list)

    @property
    def lost(self) -> list[Trial]:
        return [t for t in self.trials if t.lost]

    def summary(self) -> str:
        line = f"fault {self.case}: {len(self.trials)} trials, {len(self.lost)} lost anything"
        outlived = sum(1 for t in self.trials if t.survivors)
        if outlived:
            line += f" ({outlived} where the module outlived the process-group kill; killed too)"
        return line


# -- the matrix -----------------------------------------------------------------------------------
class Matrix:
    """One private server with reference fingerprints; each case runs `count` seeded trials."""

    def __init__(self, root: Path, server: LocalPostgres, rng: random.Random) -> None:
        self.root = root
        self.server = server
        self.rng = rng
        self.runner = Runner(root, server)
        self.examples = list(versions_of(EXAMPLES))
        self.stepwise_dir = stepwise_migrations(root)
        self.stepwise = versions_of(self.stepwise_dir)
        self.refs: dict[Path, list[list[tuple[str, str]]]] = {}
        self.durations: dict[str, float] = {}
        self.serial = 0

    def name(self, stem: str) -> str:
        self.serial += 1
        return f"{stem}_{self.serial}"

    def reference(self, directory: Path) -> list[list[tuple[str, str]]]:
        """Fingerprints of every prefix of the list: database k has the first k applied (one playbook)."""
        if directory in self.refs:
            return self.refs[directory]
        versions = versions_of(directory)
        names = [create_database(self.server, self.name("ref")) for _index in range(len(versions) + 1)]
        tasks = [migration_task(self.server, names[0], directory, state="tracked")]
        tasks += [migration_task(self.server, names[k], directory, up_to=versions[k - 1]) for k in range(1, len(names))]
        run = self.runner.run(tasks)
        if run.rc != 0:
            raise RuntimeError(f"reference run failed ({run.rc}): {run.output[-3000:]}")
        for k, dbname in enumerate(names):
            if tracked(self.server, dbname) != versions[:k]:
                raise RuntimeError(f"reference database {dbname} does not hold the first {k} versions")
        self.refs[directory] = [fingerprint(self.server, n) for n in names]
        return self.refs[directory]

    def measured(self, key: str, tasks: Callable[[], list[dict[str, Any]]], setup: Callable[[], None]) -> float:
        """How long the operation takes end to end, measured once: the window of the random kill."""
        if key not in self.durations:
            setup()
            run = self.runner.run(tasks())
            if run.rc != 0:
                raise RuntimeError(f"{key}: the unkilled run failed ({run.rc}): {run.output[-3000:]}")
            self.durations[key] = run.seconds
        return self.durations[key]

    def after_kill(self, trial: Trial, dbname: str, run: Run) -> None:
        trial.survivors = len(run.survivors)
        time.sleep(0.2)
        left = self.runner.survivors()
        if left:
            trial.lost.append(f"processes of the killed run remain: {left}")
            for pid, _cmd in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        trial.lost += sessions_gone(self.server, dbname)

    # case 1 (a)/(b): kill during an apply
    def kill_apply(self, case: str, directory: Path, count: int) -> CaseResult:
        result = CaseResult(case)
        versions = versions_of(directory)
        refs = self.reference(directory)
        current = [""]

        def setup() -> None:
            current[0] = create_database(self.server, self.name("apply"))

        def tasks() -> list[dict[str, Any]]:
            return [migration_task(self.server, current[0], directory)]

        window = self.measured(case, tasks, setup)
        for i in range(count):
            trial = Trial(case, i, self.rng.uniform(0.0, window))
            setup()
            killed = self.runner.run(tasks(), kill_after=trial.delay)
            self.after_kill(trial, current[0], killed)
            trial.lost += consistent(self.server, current[0], versions, refs)
            rerun = self.runner.run(tasks())
            if rerun.rc != 0:
                trial.lost.append(f"rerun failed ({rerun.rc}): {rerun.output[-1500:]}")
            elif tracked(self.server, current[0]) != versions or fingerprint(self.server, current[0]) != refs[-1]:
                trial.lost.append("rerun did not reach the full reference schema")
            result.trials.append(trial)
        return result

    # case 1 (c): kill during a rollback of everything
    def kill_rollback(self, count: int) -> CaseResult:
        case = "kill-rollback"
        result = CaseResult(case)
        directory = EXAMPLES
        versions = self.examples
        refs = self.reference(directory)
        template = create_database(self.server, self.name("applied"))
        run = self.runner.run([migration_task(self.server, template, directory)])
        if run.rc != 0:
            raise RuntimeError(f"applying the template failed: {run.output[-3000:]}")
        current = [""]

        def setup() -> None:
            current[0] = create_database(self.server, self.name("rollback"), template)

        def tasks() -> list[dict[str, Any]]:
            return [migration_task(self.server, current[0], directory, state="rolled_back", steps=len(versions))]

        window = self.measured(case, tasks, setup)
        for i in range(count):
            trial = Trial(case, i, self.rng.uniform(0.0, window))
            setup()
            killed = self.runner.run(tasks(), kill_after=trial.delay)
            self.after_kill(trial, current[0], killed)
            trial.lost += consistent(self.server, current[0], versions, refs)
            left = len(tracked(self.server, current[0]))
            rerun = self.runner.run(
                [migration_task(self.server, current[0], directory, state="rolled_back", steps=max(left, 1))]
            )
            if rerun.rc != 0:
                trial.lost.append(f"rollback rerun failed ({rerun.rc}): {rerun.output[-1500:]}")
            elif tracked(self.server, current[0]) or fingerprint(self.server, current[0]) != refs[0]:
                trial.lost.append("rollback rerun did not reach the empty reference schema")
            reapply = self.runner.run([migration_task(self.server, current[0], directory)])
            if reapply.rc != 0 or fingerprint(self.server, current[0]) != refs[-1]:
                trial.lost.append(f"apply after the rollback did not reach the full reference ({reapply.rc})")
            result.trials.append(trial)
        return result

    # case 1 (d)/(e): backup and restore
    def backup_source(self) -> str:
        """A database with the stepwise list applied (400k event rows): pg_dump takes about a second."""
        name = "backup_source"
        if not query(self.server, "postgres", "SELECT 1 FROM pg_database WHERE datname = %s", (name,)):
            create_database(self.server, name)
            run = self.runner.run([migration_task(self.server, name, self.stepwise_dir)])
            if run.rc != 0:
                raise RuntimeError(f"preparing the backup source failed: {run.output[-3000:]}")
        return name

    def backup_dir_problems(self, directory: Path, prefix: str) -> list[str]:
        problems = [f"left in the backup dir: {p.name}" for p in directory.iterdir() if p.name.endswith(".partial")]
        lock = directory / f".{prefix}.lock"
        if lock.exists():  # the flock file stays by design; it must not be held by anyone
            fd = os.open(lock, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
            except OSError:
                problems.append(f"{lock.name} is still locked")
            finally:
                os.close(fd)
        return problems

    def kill_backup(self, count: int) -> CaseResult:
        case = "kill-backup"
        result = CaseResult(case)
        source = self.backup_source()
        directory = self.root / "backups"

        def tasks() -> list[dict[str, Any]]:
            return [
                {
                    "name": "Back up",
                    "tme.migrations.backup": {
                        "dest": str(directory),
                        "prefix": "faults",
                        "keep": 2,
                        **connection(self.server, source),
                    },
                }
            ]

        window = self.measured(case, tasks, lambda: None)
        for i in range(count):
            trial = Trial(case, i, self.rng.uniform(0.0, window))
            killed = self.runner.run(tasks(), kill_after=trial.delay)
            self.after_kill(trial, source, killed)
            rerun = self.runner.run(tasks())
            if rerun.rc != 0:
                trial.lost.append(f"backup rerun failed ({rerun.rc}): {rerun.output[-1500:]}")
            trial.lost += self.backup_dir_problems(directory, "faults")
            if not list(directory.glob("faults_*.sql.gz")):
                trial.lost.append("no finished backup in the directory")
            result.trials.append(trial)
        return result

    def kill_restore(self, count: int) -> CaseResult:
        case = "kill-restore"
        result = CaseResult(case)
        source = self.backup_source()
        directory = self.root / "restore-src"
        run = self.runner.run(
            [
                {
                    "name": "Back up",
                    "tme.migrations.backup": {
                        "dest": str(directory),
                        "prefix": "src",
                        **connection(self.server, source),
                    },
                }
            ]
        )
        if run.rc != 0:
            raise RuntimeError(f"the backup to restore failed: {run.output[-3000:]}")
        src = sorted(directory.glob("src_*.sql.gz"))[-1]
        want = fingerprint(self.server, source)
        want_tracked = tracked(self.server, source)
        current = [""]

        def setup() -> None:
            current[0] = create_database(self.server, self.name("restore"))

        def tasks() -> list[dict[str, Any]]:
            return [
                {"name": "Restore", "tme.migrations.restore": {"src": str(src), **connection(self.server, current[0])}}
            ]

        window = self.measured(case, tasks, setup)
        for i in range(count):
            trial = Trial(case, i, self.rng.uniform(0.0, window))
            setup()
            killed = self.runner.run(tasks(), kill_after=trial.delay)
            self.after_kill(trial, current[0], killed)
            now = fingerprint(self.server, current[0])
            if now not in ([], want):
                trial.lost.append(f"half a restore is visible: {len(now)} catalog rows of {len(want)}")
            rerun = self.runner.run(tasks())
            if rerun.rc != 0:
                trial.lost.append(f"restore rerun failed ({rerun.rc}): {rerun.output[-1500:]}")
            elif fingerprint(self.server, current[0]) != want or tracked(self.server, current[0]) != want_tracked:
                trial.lost.append("the restored database differs from the backup's source")
            result.trials.append(trial)
        return result

    # case 3: eight runners at once
    def concurrent(self, count: int, runners: int = 8) -> CaseResult:
        case = "concurrent-8"
        result = CaseResult(case)
        refs = self.reference(EXAMPLES)
        for i in range(count):
            trial = Trial(case, i)
            dbname = create_database(self.server, self.name("many"))
            procs = [self.runner.start([migration_task(self.server, dbname, EXAMPLES)]) for _index in range(runners)]
            try:
                for proc, _log in procs:
                    proc.wait(timeout=300)
            finally:
                for proc, _log in procs:
                    kill_group(proc)
            for proc, log in procs:
                if proc.returncode != 0:
                    trial.lost.append(f"a runner exited {proc.returncode}: {log.read_text(errors='replace')[-1000:]}")
            if tracked(self.server, dbname) != self.examples:
                trial.lost.append(f"tracked versions: {tracked(self.server, dbname)}")
            applies = query(
                self.server,
                dbname,
                "SELECT version, count(*) FROM schema_migrations_audit WHERE action = 'apply' AND outcome = 'succeeded'"
                " GROUP BY version ORDER BY version",
            )
            if list(applies) != [(v, 1) for v in self.examples]:
                trial.lost.append(f"audit does not show one apply per version: {applies}")
            if fingerprint(self.server, dbname) != refs[-1]:
                trial.lost.append("schema differs from the reference")
            trial.lost += sessions_gone(self.server, dbname)
            result.trials.append(trial)
        return result


# case 2: PostgreSQL stopped mid-run (a server of its own: the matrix's server stays up)
def pg_stop(m: Matrix, mode: str, count: int) -> CaseResult:
    case = f"pg-stop-{mode}"
    result = CaseResult(case)
    base = m.root.parent / f"stop-{mode}"
    base.mkdir()
    directory = m.stepwise_dir  # files only: the matrix's reference fingerprints hold for any server
    versions = m.stepwise
    refs = m.reference(directory)
    rng = m.rng
    with private_server(base) as server:
        runner = Runner(base, server)
        dbname = create_database(server, "probe")
        window = runner.run([migration_task(server, dbname, directory)]).seconds
        for i in range(count):
            # Inside the run as measured: from a third of it (ansible's start-up, shorter since the module
            # runs in the worker) to two thirds (a run a little faster than the measured one still is
            # under way).
            trial = Trial(case, i, rng.uniform(0.3 * window, 0.65 * window))
            dbname = create_database(server, f"stop_{i}")

            def stop() -> None:
                server._as_owner(
                    [server._bin("pg_ctl"), "stop", "--pgdata", str(server.data), "--mode", mode, "--wait"]
                )

            run = runner.run([migration_task(server, dbname, directory)], kill_after=trial.delay, during=stop)
            if not server.running():
                server.start()
                server.wait_ready()
            if run.rc == 0:
                trial.lost.append("finished before the stop (no fault injected)")  # counted: the window was wrong
            else:
                trial.lost += no_traceback(run)
                text = run.output.lower()
                if "127.0.0.1" not in text or dbname not in text:
                    trial.lost.append(f"the error does not name host and database: {run.output[-800:]}")
                if not any(w in text for w in ("connection", "server closed", "terminat", "shut")):
                    trial.lost.append(f"the error does not say the connection was lost: {run.output[-800:]}")
            trial.lost += sessions_gone(server, dbname)
            trial.lost += consistent(server, dbname, versions, refs)
            rerun = runner.run([migration_task(server, dbname, directory)])
            if rerun.rc != 0:
                trial.lost.append(f"rerun after restart failed ({rerun.rc}): {rerun.output[-1500:]}")
            elif tracked(server, dbname) != versions or fingerprint(server, dbname) != refs[-1]:
                trial.lost.append("rerun did not reach the full reference schema")
            result.trials.append(trial)
    return result


CASES = (
    "kill-apply",
    "kill-stepwise",
    "kill-rollback",
    "kill-backup",
    "kill-restore",
    "pg-stop-fast",
    "pg-stop-immediate",
    "concurrent-8",
)


@contextmanager
def matrix(seed_value: int | None = None) -> Iterator[Matrix]:
    root = Path(tempfile.mkdtemp(prefix="tme-faults-"))
    try:
        root.chmod(0o755)  # the server may run as another system user
        (root / "main").mkdir()
        with private_server(root / "main") as server:
            yield Matrix(root / "main", server, random.Random(seed() if seed_value is None else seed_value))
    finally:
        import shutil

        shutil.rmtree(root, ignore_errors=True)


def run_case(m: Matrix, case: str, count: int) -> CaseResult:
    if case == "kill-apply":
        return m.kill_apply(case, EXAMPLES, count)
    if case == "kill-stepwise":
        return m.kill_apply(case, m.stepwise_dir, count)
    if case == "kill-rollback":
        return m.kill_rollback(count)
    if case == "kill-backup":
        return m.kill_backup(count)
    if case == "kill-restore":
        return m.kill_restore(count)
    if case.startswith("pg-stop-"):
        return pg_stop(m, case.removeprefix("pg-stop-"), count)
    if case == "concurrent-8":
        return m.concurrent(count)
    raise ValueError(f"unknown fault case {case!r}; known: {', '.join(CASES)}")
