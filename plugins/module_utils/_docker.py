# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Where a database container listens, as the team's server runs it: PostgreSQL in a container on a
docker network (compose: the service ``postgres``), no port published on the host. The host reaches
it at the container's address on that network; ``docker inspect`` tells the address, on the host
that runs the module (the same docker client the guide's ``docker exec`` uses)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

_FORMAT = "{{.State.Running}} {{.HostConfig.NetworkMode}}\n{{json .NetworkSettings.Networks}}"


class ContainerError(Exception):
    """The container cannot be reached; the message names it and says why."""


def inspect_networks(name: str, docker_bin: str = "docker") -> tuple[bool, str, dict[str, Any]]:
    """(running, network mode, networks) of a container, read with ``docker inspect``."""
    argv = [docker_bin, "inspect", "--type", "container", "--format", _FORMAT, name]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)  # noqa: S603
    except FileNotFoundError:
        raise ContainerError(f"container {name}: the docker client {docker_bin!r} is not installed here") from None
    except subprocess.TimeoutExpired:
        raise ContainerError(f"container {name}: docker inspect did not answer within 30s") from None
    if done.returncode != 0:
        raise ContainerError(f"container {name}: docker inspect failed: {done.stderr.strip()}")
    head, _sep, networks = done.stdout.partition("\n")
    running, _sep, mode = head.partition(" ")
    return running == "true", mode.strip(), json.loads(networks or "{}") or {}


def container_address(name: str, network: str | None = None, docker_bin: str = "docker") -> str:
    """The address of the container on its docker network (``network`` when it is on several);
    127.0.0.1 for a container on the host's network."""
    running, mode, networks = inspect_networks(name, docker_bin)
    if not running:
        raise ContainerError(f"container {name} is not running")
    if mode == "host":
        return "127.0.0.1"
    addresses = {net: str(info.get("IPAddress") or "") for net, info in networks.items()}
    if network:
        if not addresses.get(network):
            attached = ", ".join(sorted(addresses)) or "none"
            raise ContainerError(f"container {name} has no address on network {network} (its networks: {attached})")
        return addresses[network]
    found = {net: ip for net, ip in addresses.items() if ip}
    if len(found) == 1:
        return next(iter(found.values()))
    if not found:
        raise ContainerError(f"container {name} has no address on any docker network (network mode {mode})")
    raise ContainerError(
        f"container {name} is on several networks ({', '.join(sorted(found))}): set container_network to one"
    )
