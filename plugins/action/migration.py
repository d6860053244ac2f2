# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Reads the migration files on the controller for tme.migrations.migration."""

from __future__ import annotations

from ansible_collections.tme.migrations.plugins.plugin_utils._migration_files import MigrationFilesAction


class ActionModule(MigrationFilesAction):
    STATEMENTS = "plan"  # plan without statements first; send only those that run
