# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The swap keeps the container: app_release recreates the running app with only its image changed
(volumes and bind mounts, labels, command, restart policy, networks with their aliases, published
port, environment), through deploy-breaking.yml and back through rollback.yml; and refuses, changing
nothing, a container with settings it does not reproduce."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from .topology import SAFE_BEFORE_013, Topology, deploy, docker_cli, health

OLD, NEW = "tme-local/portal:2.3", "tme-local/portal:2.4"
COMMAND = ["/bin/sh", "-c", "exec /app/start.sh"]  # not the image's CMD (["/app/start.sh"]): set on the container
LABELS = {"com.tme.portal.role": "web", "com.tme.portal.owner": "ops"}


def _inspect(kind: str, name: str) -> dict[str, Any]:
    done = docker_cli(kind, "inspect", name)
    assert done.returncode == 0, done.stderr
    [info] = json.loads(done.stdout)
    return dict(info)


def _snapshot(topo: Topology) -> dict[str, Any]:
    """Everything of the app container that the swap must keep, and its image."""
    info = _inspect("container", topo.production["tme_app_container"])
    image = _inspect("image", info["Image"])["Config"]
    image_env, image_labels = set(image["Env"] or []), image["Labels"] or {}
    config, host = info["Config"], info["HostConfig"]
    return {
        "image": config["Image"],
        "running": info["State"]["Running"],
        "env": sorted(set(config["Env"]) - image_env),  # what was set on the container
        "labels": {k: v for k, v in config["Labels"].items() if image_labels.get(k) != v},  # set on the container
        "cmd": config["Cmd"],
        "entrypoint": config["Entrypoint"],
        "user": config["User"],
        "workdir": config["WorkingDir"],
        "restart": host["RestartPolicy"],
        # without the mode: docker_container always writes one (vol:/data becomes vol:/data:z); Mounts has it
        "binds": sorted(":".join(bind.split(":")[:2]) for bind in host["Binds"] or []),
        "mounts": sorted(
            (m["Type"], m.get("Name", ""), m["Source"], m["Destination"], m["RW"], m["Mode"]) for m in info["Mounts"]
        ),
        "ports": host["PortBindings"],
        "network_mode": host["NetworkMode"],
        "networks": {  # without the container's short id, which Docker < 25 lists among the aliases
            name: sorted(a for a in ep["Aliases"] or [] if a != info["Id"][:12])
            for name, ep in info["NetworkSettings"]["Networks"].items()
        },
        "log": host["LogConfig"],
        "healthcheck": config.get("Healthcheck"),
    }


@pytest.fixture
def app_world(guide_topology: Topology, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Production after the scheduled SAFE runs; a second network, a volume holding a document and a
    directory to bind, for the app container the test starts."""
    topo = guide_topology
    assert topo.run("apply-safe.yml").rc == 0
    suffix = uuid.uuid4().hex[:8]
    network, volume = f"tme-app-second-{suffix}", f"tme-app-docs-{suffix}"
    assert docker_cli("network", "create", network).returncode == 0
    assert docker_cli("volume", "create", volume).returncode == 0
    seeded = docker_cli(
        "run", "--rm", "-u", "root", "-v", f"{volume}:/data", OLD, "/bin/sh", "-c", "echo contract-42 > /data/doc.txt"
    )
    assert seeded.returncode == 0, seeded.stderr
    config = tmp_path / "config"
    config.mkdir()
    (config / "settings.txt").write_text("settings-7\n")
    config.chmod(0o755)
    (config / "settings.txt").chmod(0o644)
    try:
        yield {"topo": topo, "network": network, "volume": volume, "config": config}
    finally:
        docker_cli("rm", "-f", topo.production["tme_app_container"])
        docker_cli("rm", "-f", "tme-test")
        docker_cli("network", "rm", network)
        docker_cli("volume", "rm", volume)


def _start(world: dict[str, Any], *extra: str) -> None:
    """The app as ops started it by hand, with everything the old role dropped."""
    topo: Topology = world["topo"]
    p = topo.production
    assert topo.container is not None
    argv = [
        "create",
        "--name",
        p["tme_app_container"],
        "--network",
        p["tme_app_network"],
        "--network-alias",
        "portal",
        "-p",
        p["tme_app_ports"][0],
        "-v",
        f"{world['volume']}:/data",
        "-v",
        f"{world['config']}:/app/config:ro",
        *[arg for key, value in LABELS.items() for arg in ("--label", f"{key}={value}")],
        "--restart",
        "on-failure:3",
        "-e",
        "DATABASE_URL",
        "-e",
        "PORTAL_NOTE=kept",
        *extra,
        OLD,
        *COMMAND,
    ]
    env = {**os.environ, "DATABASE_URL": topo.container.url(p["tme_db_name"])}  # not on the command line
    done = subprocess.run(["docker", *argv], env=env, text=True, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr
    # Debian's dockerd (API < 1.44) takes one network at create: the second one is connected before the start.
    connect = docker_cli("network", "connect", "--alias", "portal-web", world["network"], p["tme_app_container"])
    assert connect.returncode == 0, connect.stderr
    assert docker_cli("start", p["tme_app_container"]).returncode == 0
    assert health(topo)[0] == 200


def _read(topo: Topology, path: str) -> str:
    done = docker_cli("exec", topo.production["tme_app_container"], "cat", path)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_swap_and_rollback_keep_the_container(app_world: dict[str, Any]) -> None:
    topo: Topology = app_world["topo"]
    _start(app_world)
    before = _snapshot(topo)
    assert before["labels"] == LABELS and before["cmd"] == COMMAND
    assert before["restart"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert before["networks"] == {topo.production["tme_app_network"]: ["portal"], app_world["network"]: ["portal-web"]}
    assert [m[3] for m in before["mounts"]] == ["/app/config", "/data"]
    assert "PORTAL_NOTE=kept" in before["env"]
    old_id = _inspect("container", topo.production["tme_app_container"])["Id"]

    run = deploy(topo, NEW)
    assert run.rc == 0, run.stdout[-4000:]
    assert topo.versions("production-db") == [f"{n:03d}" for n in range(1, 16)]
    after = _snapshot(topo)
    assert _inspect("container", topo.production["tme_app_container"])["Id"] != old_id  # recreated
    assert after == {**before, "image": NEW}  # only the image differs
    env = _inspect("container", topo.production["tme_app_container"])["Config"]["Env"]
    assert "PORTAL_VERSION=2.4" in env  # the new image's own environment, not the old one's
    status, body = health(topo)
    assert status == 200 and "TME Portal 2.4 ok" in body
    assert _read(topo, "/data/doc.txt") == "contract-42"  # the uploaded document is still there
    assert _read(topo, "/app/config/settings.txt") == "settings-7"
    assert "its settings kept" in run.stdout

    back = topo.run("rollback.yml", target="production", steps=3, redeploy_previous=True)
    assert back.rc == 0, back.stdout[-4000:]
    assert topo.versions("production-db") == SAFE_BEFORE_013
    assert _snapshot(topo) == before  # the old image, everything else as it was
    status, body = health(topo)
    assert status == 200 and "TME Portal 2.3 ok" in body
    assert _read(topo, "/data/doc.txt") == "contract-42"
    assert _read(topo, "/app/config/settings.txt") == "settings-7"
    topo.assert_no_secret()


def test_swap_refuses_what_it_would_lose(app_world: dict[str, Any], tmp_path: Path) -> None:
    topo: Topology = app_world["topo"]
    _start(app_world, "--tmpfs", "/scratch", "--cap-add", "SYS_PTRACE")
    before = _snapshot(topo)
    old_id = _inspect("container", topo.production["tme_app_container"])["Id"]
    playbook = tmp_path / "swap.yml"
    playbook.write_text(
        "- name: Swap the app\n"
        "  hosts: production\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - name: Swap\n"
        "      ansible.builtin.include_role:\n"
        "        name: tme.migrations.app_release\n"
        "      vars:\n"
        f"        app_release_image: {NEW}\n"
        '        app_release_action: "{{ swap_action }}"\n'
    )
    state = Path(topo.production["tme_state_dir"]) / f"{topo.production['tme_app_container']}.previous-image"
    for action in ("check", "deploy"):
        run = topo.run(str(playbook), swap_action=action)
        assert run.rc != 0
        message = run.stdout.split("settings the swap would not reproduce")[1].split("Nothing was changed")[0]
        assert "--tmpfs" in message and "/scratch" in message
        assert "--cap-add" in message and "SYS_PTRACE" in message
        assert _inspect("container", topo.production["tme_app_container"])["Id"] == old_id  # not touched
        assert _snapshot(topo) == before
        assert not state.exists()  # nothing recorded either
    assert health(topo)[0] == 200
    topo.assert_no_secret()
