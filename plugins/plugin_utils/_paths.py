# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Where a task's ``path`` is on the controller. Controller only."""

from __future__ import annotations

import os

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase


def resolve_path(action: ActionBase, path: str) -> str:
    """A controller path as the task gave it: absolute, in the role's or playbook's files/, or
    relative to the playbook."""
    path = os.path.expanduser(path)
    if os.path.isabs(path):
        return path
    try:
        return str(action._find_needle("files", path))
    except AnsibleError:
        return os.path.join(action._loader.get_basedir(), path)
