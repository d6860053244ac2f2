# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""`make demo-release`: release day on the guide's topology, on this checkout's own Docker engine.

    python tools/demo_release.py start   # engine, images, tme-postgres, tme-portal 2.3, then the release
    python tools/demo_release.py stop    # containers, network, engine and its data

What `start` does, as the guide's team would on release day:

1. dockerd of tools/localdocker.py (in .local/docker), the images tme-local/postgres:18 and
   tme-local/portal:2.3/2.4 (built from files on this machine, no registry);
2. the network tme_net, PostgreSQL in the container tme-postgres (alias postgres, no port
   published, both databases), the app tme-portal release 2.3 on 127.0.0.1:53000;
3. ``ansible-playbook -i inventory/demo-release playbooks/apply-safe.yml``: staging takes 001-015,
   production 001-012; 013 (BREAKING) waits for the release;
4. ``ansible-playbook -i inventory/demo-release playbooks/deploy-breaking.yml
   -e app_image=tme-local/portal:2.4 -e release_target=015_create_user_preferences``: the candidate
   on port 3001 against staging (smoke test), a verified backup of production, 013-015 on
   production, the swap of tme-portal to 2.4 with everything else of the container kept, health;
5. the app's health answer.

A second `start` finds everything applied and released and changes nothing. Without root, dockerd
or busybox it stops before doing anything and says what it needs.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from localdocker import PORTAL_IMAGE, POSTGRES_IMAGE, LocalDocker, why_no_engine  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ROOT = REPO / ".local" / "docker"
STATE = REPO / ".local" / "demo-release"
PASSWORD = REPO / ".local" / "secrets" / "demo_release.password"
INVENTORY = REPO / "inventory" / "demo-release"
NETWORK = "tme_net"
DB_CONTAINER = "tme-postgres"
APP_CONTAINER = "tme-portal"
APP_PORT = 53000
HEALTH = f"http://127.0.0.1:{APP_PORT}/cgi-bin/health"
RELEASE_IMAGE = f"{PORTAL_IMAGE}:2.4"
RELEASE_TARGET = "015_create_user_preferences"


def say(line: str) -> None:
    print(f"demo-release: {line}", flush=True)


def password() -> str:
    """The database password of the demo, generated once into a 0600 file of .local/."""
    if not PASSWORD.exists():
        PASSWORD.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(PASSWORD, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(18))
    return PASSWORD.read_text().strip()


def exists(engine: LocalDocker, kind: str, name: str) -> bool:
    return engine.docker(kind, "inspect", name).returncode == 0


def run_container(engine: LocalDocker, argv: list[str], env: dict[str, str]) -> None:
    """docker run with secrets passed by name (-e NAME), their values only in the environment."""
    done = subprocess.run(
        ["docker", "run", "-d", *argv], env={**os.environ, **engine.env, **env},
        text=True,
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"demo-release: docker run {argv[1]} failed: {done.stderr.strip()}")


def wait_postgres(engine: LocalDocker, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        probe = ["exec", DB_CONTAINER, "psql", "-X", "-q", "-U", "tme_user", "-d", "tme_portal", "-c", "SELECT 1"]
        if engine.docker(*probe).returncode == 0:
            return
        time.sleep(0.5)
    logs = engine.docker("logs", "--tail", "20", DB_CONTAINER)
    raise SystemExit(f"demo-release: {DB_CONTAINER} did not accept connections within {timeout:g}s:\n{logs.stderr}")


def health() -> tuple[int, str]:
    for _attempt in range(40):
        try:
            with urllib.request.urlopen(HEALTH, timeout=5) as response:  # noqa: S310 - loopback only
                return response.status, response.read().decode().strip()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode().strip()
        except OSError:
            time.sleep(0.25)
    return -1, "no answer"


def topology(engine: LocalDocker) -> None:
    """The guide's server: the network, the database container, the app on its old release."""
    secret = password()
    if not exists(engine, "network", NETWORK):
        engine.create_network(NETWORK)
    if not exists(engine, "container", DB_CONTAINER):
        say(f"starting {DB_CONTAINER} ({POSTGRES_IMAGE}) on {NETWORK} as postgres, no port published")
        argv = ["--name", DB_CONTAINER, "--network", NETWORK, "--network-alias", "postgres"]
        argv += ["--restart", "unless-stopped", "-e", "POSTGRES_USER=tme_user", "-e", "POSTGRES_PASSWORD"]
        run_container(engine, [*argv, POSTGRES_IMAGE], {"POSTGRES_PASSWORD": secret})
    wait_postgres(engine)
    if not exists(engine, "container", APP_CONTAINER):
        say(f"starting {APP_CONTAINER} ({PORTAL_IMAGE}:2.3) on 127.0.0.1:{APP_PORT}")
        url = f"postgresql://tme_user:{secret}@postgres:5432/tme_portal"
        argv = ["--name", APP_CONTAINER, "--network", NETWORK, "-p", f"127.0.0.1:{APP_PORT}:3000"]
        argv += ["--restart", "unless-stopped", "-e", "DATABASE_URL"]
        run_container(engine, [*argv, f"{PORTAL_IMAGE}:2.3"], {"DATABASE_URL": url})


def playbook(engine: LocalDocker, name: str, *extra: str) -> None:
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(INVENTORY), f"playbooks/{name}", *extra]
    say(" ".join(["ansible-playbook", "-i", "inventory/demo-release", f"playbooks/{name}", *extra]))
    done = subprocess.run(argv, cwd=REPO, env={**os.environ, **engine.env}, check=False)
    if done.returncode != 0:
        raise SystemExit(f"demo-release: playbooks/{name} failed (exit {done.returncode}); see its output above")


def start() -> int:
    reason = why_no_engine()
    if reason:
        print(
            "demo-release needs a Docker engine of its own and cannot run here: "
            f"{reason}.\nIt runs as root with Debian's docker.io and busybox-static installed "
            "(apt-get install docker.io busybox-static); nothing was started or changed.\n"
            "`make demo` shows the same gate without Docker.",
            file=sys.stderr,
        )
        return 2
    engine = LocalDocker(ROOT)
    say(f"Docker engine in {ROOT.relative_to(REPO)} (DOCKER_HOST=unix://{engine.sock})")
    engine.start()
    built = engine.build_images()
    if built:
        say("built images " + ", ".join(built))
    STATE.mkdir(parents=True, exist_ok=True, mode=0o700)
    topology(engine)
    status, body = health()
    say(f"before the release: {APP_CONTAINER} answers {status}: {body}")
    playbook(engine, "apply-safe.yml")
    release = ["-e", f"app_image={RELEASE_IMAGE}", "-e", f"release_target={RELEASE_TARGET}"]
    playbook(engine, "deploy-breaking.yml", *release)
    status, body = health()
    image = engine.docker("inspect", "--format", "{{.Config.Image}}", APP_CONTAINER).stdout.strip()
    say(f"after the release: {APP_CONTAINER} runs {image} and answers {status}: {body}")
    say("stop it all with `make demo-release-stop`")
    return 0 if status == 200 else 1


def stop() -> int:
    engine = LocalDocker(ROOT)
    engine.destroy()
    say("containers, network and the Docker engine stopped and removed")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["start", "stop"])
    args = parser.parse_args(argv)
    return start() if args.action == "start" else stop()


if __name__ == "__main__":
    sys.exit(main())
