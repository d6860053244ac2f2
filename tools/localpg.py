# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The bundled PostgreSQL of this checkout: a thin wrapper around the collection's own server code,
roles/local_postgres/files/localpg.py (what role tme.migrations.local_postgres runs, installed or not).

    python tools/localpg.py start   # init if needed, start, create tme_user and both databases
    python tools/localpg.py stop
    python tools/localpg.py status

The tests, the benchmarks and tools/localdocker.py import LocalPostgres, free_port and embedded_bindir
from here.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SERVER_CODE = Path(__file__).resolve().parent.parent / "roles" / "local_postgres" / "files" / "localpg.py"
_NAME = "tme_migrations_localpg"


def _load() -> ModuleType:
    if _NAME in sys.modules:
        return sys.modules[_NAME]
    spec = importlib.util.spec_from_file_location(_NAME, SERVER_CODE)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the bundled server code {SERVER_CODE}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[_NAME] = module  # before running it: dataclasses and pickling look it up there
    spec.loader.exec_module(module)
    return module


_server = _load()

LocalPostgres = _server.LocalPostgres
free_port = _server.free_port
embedded_bindir = _server.embedded_bindir
main = _server.main
APP_USER: str = _server.APP_USER
DATABASES: tuple[str, ...] = _server.DATABASES
DEFAULT_PORT: int = _server.DEFAULT_PORT
DEFAULT_ROOT: Path = _server.DEFAULT_ROOT

__all__ = ["APP_USER", "DATABASES", "DEFAULT_PORT", "DEFAULT_ROOT", "LocalPostgres", "embedded_bindir", "free_port"]

if __name__ == "__main__":
    sys.exit(main())
