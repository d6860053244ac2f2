# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Day one on the guide's server, as the team meets it: PostgreSQL in a container on a docker network
(no published port, `tme_user` its superuser), no PostgreSQL client and no psycopg on the host, the
migrations of the last months applied by hand with the guide's `docker exec -i ... psql < file`, a
backup from their `backup-daily.sh` (`pg_dump | gzip`). The collection takes over without anything
changed on the server but the virtualenv of prepare.yml: status, setup-tracking, apply-safe with its
rehearsal inside the container, a release, a rollback, and a restore of the team's own backup."""

from __future__ import annotations

import gzip
from pathlib import Path

from .test_adoption import ALL, GUIDE_SETUP, recap, section
from .topology import SAFE_BEFORE_013, Topology, app_image, deploy, health, start_app


def docker_psql(topo: Topology, host: str, sql: str) -> None:
    """The guide's Step 2, word for word: docker exec -i tme-user-postgres-1 psql -U tme_user -d DB < file."""
    assert topo.container is not None
    done = topo.container.exec("psql", "-U", "tme_user", "-d", topo.hostvars[host]["tme_db_name"], input=sql)
    assert done.returncode == 0 and "ERROR" not in done.stderr, done.stderr


def backup_daily(topo: Topology, path: Path) -> None:
    """The team's backup-daily.sh: pg_dump inside the container, gzip on the host, no --clean."""
    assert topo.container is not None
    done = topo.container.exec("pg_dump", "-U", "tme_user", topo.production["tme_db_name"])
    assert done.returncode == 0, done.stderr
    path.write_bytes(gzip.compress(done.stdout.encode()))


def test_day_one_on_the_guides_server(guide_topology: Topology, migrations_dir: Path) -> None:
    topo = guide_topology
    files = {p.name[:3]: p for p in sorted(migrations_dir.glob("0*.sql")) if not p.name.endswith(".rollback.sql")}
    for host in ("staging-db", "production-db"):
        docker_psql(topo, host, GUIDE_SETUP)
    for number in ALL[:10]:
        docker_psql(topo, "staging-db", files[number].read_text())
    for number in ALL[:6]:
        docker_psql(topo, "production-db", files[number].read_text())
    pending_file = Path(topo.production["tme_pending_file"])

    status = topo.run("status.yml")
    assert status.rc == 0, status.stdout[-3000:]
    for number in ("007", "008", "009", "010"):
        assert "not adopted" in section(pending_file.read_text(), number)

    setup = topo.run("setup-tracking.yml")
    assert setup.rc == 0, setup.stdout[-3000:]
    assert "adopted (applied by hand" in setup.stdout

    run = topo.run("apply-safe.yml")
    assert run.rc == 0, run.stdout[-4000:]
    rehearsal = "Rehearse the rollback of every pending migration"
    assert rehearsal in run.stdout and "ok: [staging-db]" in run.stdout.split(rehearsal)[1].split("TASK")[0]
    assert topo.versions("staging-db") == ALL
    assert topo.versions("production-db") == SAFE_BEFORE_013
    assert "- Blocked by: Next production deployment" in section(pending_file.read_text(), "013")
    again = topo.run("apply-safe.yml")
    assert "changed=0" in recap(again, "staging-db") and "changed=0" in recap(again, "production-db")

    # The team's own backup, from before the release.
    guide_backup = Path(topo.production["tme_backup_dir"]).parent / "tme_portal_backup_daily.sql.gz"
    backup_daily(topo, guide_backup)

    # Release day: 2.3 serves production; 2.4 goes out with 013-015.
    start_app(topo, "tme-local/portal:2.3")
    released = deploy(topo, "tme-local/portal:2.4")
    assert released.rc == 0, released.stdout[-4000:]
    assert topo.versions("production-db") == ALL
    assert app_image(topo) == "tme-local/portal:2.4" and health(topo)[0] == 200

    # Emergency rollback of the release, then the team's backup restored over it (superuser, no --clean dump).
    back = topo.run("rollback.yml", target="production", steps=3, redeploy_previous=True)
    assert back.rc == 0, back.stdout[-3000:]
    assert topo.versions("production-db") == SAFE_BEFORE_013 and app_image(topo) == "tme-local/portal:2.3"
    topo.query("production-db", "CREATE TABLE made_after_the_backup (id int)")
    restored = topo.run(
        "restore.yml", target="production", backup=str(guide_backup), confirm_restore=topo.production["tme_db_name"]
    )
    assert restored.rc == 0, restored.stdout[-3000:]
    assert topo.versions("production-db") == ALL[:12]  # as the team's backup had it
    assert topo.query("production-db", "SELECT to_regclass('made_after_the_backup')") == [(None,)]
    assert health(topo)[0] == 200
    topo.assert_no_secret()
