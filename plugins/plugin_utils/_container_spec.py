# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A running container (``docker inspect``, as community.docker.docker_container_info returns it)
turned into community.docker.docker_container options that recreate it with another image, and the
list of what such a container would lose: the settings this module does not reproduce.

What the container inherited from its image is left out, so that the new image's own values apply:
environment entries, labels, command, entry point, user, working directory, health check, stop
signal and exposed ports equal to those of the container's image (``image``, as
community.docker.docker_image_info returns it). A value set on the container that happens to equal
the image's is therefore taken as the image's: it follows the new image.

Settings are read from ``Config`` and ``HostConfig`` key by key. Every key is either reproduced,
known to carry nothing the container was given (runtime state, daemon defaults), or reported as
unsupported when it holds a value: a key Docker adds later is reported, never dropped silently.
Pure functions, run on the controller."""

from __future__ import annotations

from typing import Any

# Config keys: reproduced below, or runtime/build-only ones that carry nothing to recreate.
_CONFIG_HANDLED = frozenset(
    {
        "Hostname",
        "Domainname",
        "User",
        "ExposedPorts",
        "Tty",
        "OpenStdin",
        "Env",
        "Cmd",
        "Healthcheck",
        "Image",
        "Volumes",  # image VOLUMEs and anonymous volumes: reproduced from Mounts
        "WorkingDir",
        "Entrypoint",
        "Labels",
        "StopSignal",
        "StopTimeout",
    }
)
_CONFIG_IGNORED = frozenset(
    {"AttachStdin", "AttachStdout", "AttachStderr", "StdinOnce", "ArgsEscaped", "OnBuild", "Shell"}
)

_HOST_HANDLED = frozenset(
    {
        "Binds",
        "Mounts",
        "PortBindings",
        "RestartPolicy",
        "LogConfig",
        "NetworkMode",
        "Memory",
        "MemoryReservation",
        "MemorySwap",
        "NanoCpus",
        "CpuShares",
        "CpuPeriod",
        "CpuQuota",
        "CpusetCpus",
        "CpusetMems",
        "PidsLimit",
        "Init",
        "AutoRemove",
        "ReadonlyRootfs",
        "ExtraHosts",
        "Dns",
        "DnsSearch",
        "DnsOptions",
        "OomScoreAdj",
        "ShmSize",
    }
)
# Filled in by the daemon whatever the container was given (or only a default value of theirs).
_HOST_DEFAULTS: dict[str, tuple[Any, ...]] = {
    "ContainerIDFile": (),  # any value: the client's file, nothing of the container
    "ConsoleSize": (),
    "CgroupnsMode": (),  # the daemon's default (private on cgroup v2, host on v1)
    "MaskedPaths": (),  # the daemon's defaults; changed only through SecurityOpt, reported there
    "ReadonlyPaths": (),
    "IpcMode": ("", "private", "shareable"),
    "Runtime": ("", "runc"),
    "Isolation": ("", "default"),
}
_SHM_DEFAULT = 64 * 1024 * 1024
# docker run's flags of the settings most often met among those not reproduced, for the message.
_HOST_FLAGS = {
    "Tmpfs": "--tmpfs",
    "Devices": "--device",
    "DeviceRequests": "--gpus",
    "CapAdd": "--cap-add",
    "CapDrop": "--cap-drop",
    "Privileged": "--privileged",
    "SecurityOpt": "--security-opt",
    "Sysctls": "--sysctl",
    "Ulimits": "--ulimit",
    "VolumesFrom": "--volumes-from",
    "Links": "--link",
    "PidMode": "--pid",
    "IpcMode": "--ipc",
    "UTSMode": "--uts",
    "UsernsMode": "--userns",
    "GroupAdd": "--group-add",
    "CgroupParent": "--cgroup-parent",
    "Runtime": "--runtime",
    "PublishAllPorts": "--publish-all",
    "OomKillDisable": "--oom-kill-disable",
}

_ENDPOINT_IGNORED = frozenset(
    {
        "NetworkID",
        "EndpointID",
        "Gateway",
        "IPAddress",
        "IPPrefixLen",
        "IPv6Gateway",
        "GlobalIPv6Address",
        "GlobalIPv6PrefixLen",
        "MacAddress",  # assigned anew on every network connection
        "DNSNames",  # the container's name, its short id and the aliases: derived
        "GwPriority",
    }
)

_VOLUME_MODES = frozenset(
    {"rw", "ro", "z", "Z", "consistent", "delegated", "cached"}
    | {"rprivate", "private", "rshared", "shared", "rslave", "slave", "nocopy"}
)
_DURATIONS = (("h", 3_600_000_000_000), ("m", 60_000_000_000), ("s", 1_000_000_000), ("ms", 1_000_000), ("us", 1_000))


def _empty(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_empty(item) for item in value)
    if isinstance(value, dict):
        return not value  # its keys say something ({"/scratch": ""} is a tmpfs)
    return value is None or value is False or value == "" or value == 0


def _duration(nanoseconds: int) -> str:
    for unit, size in _DURATIONS:
        if nanoseconds % size == 0:
            return f"{nanoseconds // size}{unit}"
    return f"{round(nanoseconds / 1000)}us"


def _env_dict(entries: list[str] | None) -> dict[str, str]:
    result: dict[str, str] = {}
    for entry in entries or []:
        key, _sep, value = entry.partition("=")
        result[key] = value
    return result


def _port(binding: dict[str, Any], container_port: str) -> str:
    port, _sep, proto = container_port.partition("/")
    target = port if proto in ("", "tcp") else f"{port}/{proto}"
    host_ip = binding.get("HostIp") or ""
    host_port = binding.get("HostPort") or ""
    if ":" in host_ip:
        host_ip = f"[{host_ip}]"
    if host_ip:
        return f"{host_ip}:{host_port}:{target}"
    return f"{host_port}:{target}" if host_port else target


def _bind_target(bind: str) -> tuple[str, list[str]]:
    """The container path of a HostConfig.Binds entry (source:target[:mode]) and its mode's parts."""
    parts = bind.split(":")
    if len(parts) == 1:
        return parts[0], []
    mode = parts[2].split(",") if len(parts) > 2 else []
    return parts[1], [m for m in mode if m]


def _mount(mount: dict[str, Any], lost: list[str]) -> dict[str, Any] | None:
    """A HostConfig.Mounts entry (docker run --mount) as a docker_container mount."""
    target = mount.get("Target", "?")
    kind = mount.get("Type") or "volume"
    if kind not in ("bind", "volume"):
        lost.append(f"mount {target} of type {kind}")
        return None
    result: dict[str, Any] = {"type": kind, "target": target}
    if mount.get("Source"):
        result["source"] = mount["Source"]
    if mount.get("ReadOnly"):
        result["read_only"] = True
    if mount.get("Consistency") not in (None, "", "default"):
        result["consistency"] = mount["Consistency"]
    known = {"Type", "Source", "Target", "ReadOnly", "Consistency", "BindOptions", "VolumeOptions"}
    for key in sorted(set(mount) - known):
        if not _empty(mount[key]):
            lost.append(f"mount {target}: {key}")
    bind_options = {
        "Propagation": "propagation",
        "NonRecursive": "non_recursive",
        "CreateMountpoint": "create_mountpoint",
        "ReadOnlyNonRecursive": "read_only_non_recursive",
        "ReadOnlyForceRecursive": "read_only_force_recursive",
    }
    for key, value in (mount.get("BindOptions") or {}).items():
        if key in bind_options:
            if not _empty(value):
                result[bind_options[key]] = value
        elif not _empty(value):
            lost.append(f"mount {target}: BindOptions.{key}")
    for key, value in (mount.get("VolumeOptions") or {}).items():
        if _empty(value):
            continue
        if key == "NoCopy":
            result["no_copy"] = True
        elif key == "Labels":
            result["labels"] = dict(value)
        elif key == "Subpath":
            result["subpath"] = value
        elif key == "DriverConfig":
            if value.get("Name"):
                result["volume_driver"] = value["Name"]
            if value.get("Options"):
                result["volume_options"] = dict(value["Options"])
        else:
            lost.append(f"mount {target}: VolumeOptions.{key}")
    return result


def _networks(container: dict[str, Any], network_mode: str, lost: list[str]) -> list[dict[str, Any]]:
    endpoints: dict[str, Any] = (container.get("NetworkSettings") or {}).get("Networks") or {}
    short_id = str(container.get("Id", ""))[:12]
    names = sorted(endpoints, key=lambda name: (name != network_mode, name))  # the primary one first
    result = []
    for name in names:
        endpoint = endpoints[name] or {}
        network: dict[str, Any] = {"name": name}
        aliases = [a for a in endpoint.get("Aliases") or [] if a != short_id]
        if aliases:
            network["aliases"] = aliases
        ipam = endpoint.get("IPAMConfig") or {}
        if ipam.get("IPv4Address"):
            network["ipv4_address"] = ipam["IPv4Address"]
        if ipam.get("IPv6Address"):
            network["ipv6_address"] = ipam["IPv6Address"]
        for key, value in ipam.items():
            if key not in ("IPv4Address", "IPv6Address") and not _empty(value):
                lost.append(f"network {name}: IPAMConfig.{key}")
        if endpoint.get("Links"):
            network["links"] = list(endpoint["Links"])
        for key in sorted(set(endpoint) - _ENDPOINT_IGNORED - {"Aliases", "IPAMConfig", "Links"}):
            if not _empty(endpoint[key]):
                lost.append(f"network {name}: {key}")
        result.append(network)
    return result


def container_spec(container: dict[str, Any], image: dict[str, Any] | None = None) -> dict[str, Any]:
    """``{'options': {...}, 'unsupported': [...]}``: the docker_container options (besides name and
    image) that reproduce ``container``, and what it has that they would not reproduce.

    ``image`` is the container's image (by its id); without it nothing can be told apart from the
    image's defaults, so that is reported as unsupported."""
    if not isinstance(container, dict) or "Config" not in container:
        raise ValueError("container_spec: expects the container of community.docker.docker_container_info")
    config: dict[str, Any] = container.get("Config") or {}
    host: dict[str, Any] = container.get("HostConfig") or {}
    lost: list[str] = []
    if not image:
        lost.append(f"the settings of its image {container.get('Image', '?')} (not found: cannot tell them apart)")
        image = {}
    image_config: dict[str, Any] = image.get("Config") or {}
    options: dict[str, Any] = {}

    for key in sorted(set(config) - _CONFIG_HANDLED - _CONFIG_IGNORED):
        if not _empty(config[key]):
            lost.append(f"Config.{key}={config[key]!r}")
    for key in sorted(set(host) - _HOST_HANDLED):
        value = host[key]
        allowed = _HOST_DEFAULTS.get(key)
        if _empty(value) or (allowed is not None and (not allowed or value in allowed)):
            continue
        flag = _HOST_FLAGS.get(key)
        lost.append(f"{flag} {value!r} (HostConfig.{key})" if flag else f"HostConfig.{key}={value!r}")

    # -- environment, labels: only what differs from the image ---------------------------------
    image_env = _env_dict(image_config.get("Env"))
    options["env"] = {k: v for k, v in _env_dict(config.get("Env")).items() if image_env.get(k) != v}
    image_labels = image_config.get("Labels") or {}
    labels = {k: v for k, v in (config.get("Labels") or {}).items() if image_labels.get(k) != v}
    if labels:
        options["labels"] = labels

    # -- what runs, as whom, where -------------------------------------------------------------
    entrypoint_set = config.get("Entrypoint") != image_config.get("Entrypoint")
    if entrypoint_set:
        options["entrypoint"] = list(config.get("Entrypoint") or [])
    # With its own entry point the container does not get the image's command: keep it as it is.
    if config.get("Cmd") and (entrypoint_set or config.get("Cmd") != image_config.get("Cmd")):
        options["command"] = list(config["Cmd"])
    elif not config.get("Cmd") and image_config.get("Cmd") and not entrypoint_set:
        lost.append("an empty command where the image has one")
    for key, option in (("User", "user"), ("WorkingDir", "working_dir"), ("StopSignal", "stop_signal")):
        if config.get(key) and config.get(key) != image_config.get(key):
            options[option] = config[key]
    if config.get("StopTimeout") is not None:
        options["stop_timeout"] = int(config["StopTimeout"])
    if config.get("Healthcheck") and config["Healthcheck"] != image_config.get("Healthcheck"):
        check = config["Healthcheck"]
        healthcheck: dict[str, Any] = {"test": list(check.get("Test") or [])}
        for key, option in (
            ("Interval", "interval"),
            ("Timeout", "timeout"),
            ("StartPeriod", "start_period"),
            ("StartInterval", "start_interval"),
        ):
            if check.get(key):
                healthcheck[option] = _duration(int(check[key]))
        if check.get("Retries"):
            healthcheck["retries"] = int(check["Retries"])
        for key in sorted(set(check) - {"Test", "Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"}):
            if not _empty(check[key]):
                lost.append(f"Config.Healthcheck.{key}")
        options["healthcheck"] = healthcheck
    if config.get("Tty"):
        options["tty"] = True
    if config.get("OpenStdin"):
        options["interactive"] = True

    # -- network -------------------------------------------------------------------------------
    network_mode = str(host.get("NetworkMode") or "default")
    if network_mode.startswith("container:"):
        lost.append(f"network mode {network_mode}")
    else:
        options["network_mode"] = network_mode
        if network_mode not in ("host", "none"):
            networks = _networks(container, network_mode, lost)
            if networks:
                options["networks"] = networks
    if network_mode != "host":
        short_id = str(container.get("Id", ""))[:12]
        if config.get("Hostname") and config["Hostname"] != short_id:
            options["hostname"] = config["Hostname"]
        if config.get("Domainname"):
            options["domainname"] = config["Domainname"]
        ports = [
            _port(binding, container_port)
            for container_port, bindings in sorted((host.get("PortBindings") or {}).items())
            for binding in bindings or [{}]
        ]
        if ports:
            options["published_ports"] = ports
    exposed = set(config.get("ExposedPorts") or {}) - set(image_config.get("ExposedPorts") or {})
    exposed -= set(host.get("PortBindings") or {})
    if exposed:
        options["exposed_ports"] = sorted(exposed)
    if host.get("ExtraHosts"):
        etc_hosts: dict[str, str] = {}
        for entry in host["ExtraHosts"]:
            name, _sep, address = str(entry).partition(":")
            etc_hosts[name] = address
        options["etc_hosts"] = etc_hosts
    for key, option in (("Dns", "dns_servers"), ("DnsSearch", "dns_search_domains"), ("DnsOptions", "dns_opts")):
        if host.get(key):
            options[option] = list(host[key])

    # -- storage -------------------------------------------------------------------------------
    volumes: list[str] = []
    targets: set[str] = set()
    applied = {str(m.get("Destination")): str(m.get("Mode") or "") for m in container.get("Mounts") or []}
    for bind in host.get("Binds") or []:
        target, mode = _bind_target(str(bind))
        unknown = [m for m in mode if m not in _VOLUME_MODES]
        if unknown or ":" not in str(bind):
            lost.append(f"volume {bind} (mode {','.join(unknown) or 'missing'})")
            continue
        # docker_container writes ":rw" where no mode was given; the mode Docker applied then (a named
        # volume's "z") is kept instead, so that the mount is the same.
        if not mode and applied.get(target) and set(applied[target].split(",")) <= _VOLUME_MODES:
            bind = f"{bind}:{applied[target]}"
        volumes.append(str(bind))
        targets.add(target)
    mounts = []
    for mount in host.get("Mounts") or []:
        spec = _mount(mount, lost)
        targets.add(str(mount.get("Target")))
        if spec:
            mounts.append(spec)
    # Anonymous volumes (the image's VOLUMEs, -v /path): the same volume again, by its name.
    for mount in container.get("Mounts") or []:
        target = str(mount.get("Destination"))
        if target in targets:
            continue
        if mount.get("Type") == "volume" and mount.get("Name"):
            volumes.append(f"{mount['Name']}:{target}" + ("" if mount.get("RW", True) else ":ro"))
        elif not (mount.get("Type") == "tmpfs" and target in (host.get("Tmpfs") or {})):  # else reported above
            lost.append(f"mount {target} of type {mount.get('Type')}")
    if volumes:
        options["volumes"] = volumes
    if mounts:
        options["mounts"] = mounts
    if host.get("ReadonlyRootfs"):
        options["read_only"] = True
    if host.get("ShmSize") and int(host["ShmSize"]) != _SHM_DEFAULT:
        options["shm_size"] = str(host["ShmSize"])

    # -- restart, logs, init -------------------------------------------------------------------
    restart = host.get("RestartPolicy") or {}
    options["restart_policy"] = restart.get("Name") or "no"
    if restart.get("Name") == "on-failure" and restart.get("MaximumRetryCount"):
        options["restart_retries"] = int(restart["MaximumRetryCount"])
    log = host.get("LogConfig") or {}
    if log.get("Type"):
        options["log_driver"] = log["Type"]
    if log.get("Config"):
        options["log_options"] = {k: str(v) for k, v in log["Config"].items()}
    if host.get("Init"):
        options["init"] = True
    if host.get("AutoRemove"):
        options["auto_remove"] = True

    # -- resources -----------------------------------------------------------------------------
    for key, option in (
        ("Memory", "memory"),
        ("MemoryReservation", "memory_reservation"),
        ("MemorySwap", "memory_swap"),
    ):
        if host.get(key):
            options[option] = str(host[key])
    if host.get("NanoCpus"):
        options["cpus"] = int(host["NanoCpus"]) / 1e9
    for key, option in (
        ("CpuShares", "cpu_shares"),
        ("CpuPeriod", "cpu_period"),
        ("CpuQuota", "cpu_quota"),
        ("OomScoreAdj", "oom_score_adj"),
    ):
        if host.get(key):
            options[option] = int(host[key])
    if host.get("PidsLimit") and int(host["PidsLimit"]) > 0:
        options["pids_limit"] = int(host["PidsLimit"])
    for key, option in (("CpusetCpus", "cpuset_cpus"), ("CpusetMems", "cpuset_mems")):
        if host.get(key):
            options[option] = str(host[key])

    return {"options": options, "unsupported": lost}
