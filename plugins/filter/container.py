# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filter of tme.migrations: container_spec (a running container as docker_container options)."""

from __future__ import annotations

from typing import Any, Callable

from ansible.errors import AnsibleFilterError

from ansible_collections.tme.migrations.plugins.plugin_utils import _container_spec


def container_spec(container: dict[str, Any], image: dict[str, Any] | None = None) -> dict[str, Any]:
    try:
        return _container_spec.container_spec(container, image)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise AnsibleFilterError(f"tme.migrations.container_spec: {exc}") from exc


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"container_spec": container_spec}
