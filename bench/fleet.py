# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""P5, a fleet: N databases as N inventory hosts, the 15 example migrations applied to each.

Prints, as medians of --rounds rounds, each on fresh databases of a private bundled PostgreSQL:

* one database (one host) through ansible-playbook;
* the fleet with forks=10 (--forks) and with forks=1;
* the ratio fleet(forks=10) / one database. Goal: at most 4;
* for scale, what Ansible itself costs over the same hosts and forks: a `debug` task (no module) and
  an `ansible.builtin.ping` task (the smallest shipped module), once.

The playbook is what a fleet inventory runs: `tme.migrations.migration` per host, connection
options through `module_defaults` and the `connection_options` filter, as the shipped playbooks do.
Figures are printed, never asserted.

    python bench/fleet.py [--hosts 50] [--forks 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import REPO, VENV_BIN, ansible_env, private_server, timed

EXAMPLES = REPO / "examples" / "migrations"
GOAL = 4.0

PLAYBOOK = """\
- name: Apply the examples to every database of the fleet
  hosts: fleet
  gather_facts: false
  module_defaults:
    group/tme.migrations.all: "{{ hostvars[inventory_hostname] | tme.migrations.connection_options }}"
  tasks:
    - name: Apply pending migrations
      tme.migrations.migration:
        path: "{{ tme_migrations_dir }}"
"""


def inventory(path: Path, port: int, databases: list[str]) -> Path:
    hosts = {f"db-{i:03d}": {"tme_db_name": name} for i, name in enumerate(databases, 1)}
    data = {
        "all": {
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                "tme_db_host": "127.0.0.1",
                "tme_db_port": port,
                "tme_db_user": "tme_user",
                "tme_migrations_dir": str(EXAMPLES),
            },
            "children": {"fleet": {"hosts": hosts}},
        }
    }
    path.write_text(json.dumps(data))
    return path


def play(playbook: Path, inv: Path, forks: int, env: dict[str, str]) -> None:
    argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(inv), "-f", str(forks), str(playbook)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ansible-playbook failed ({done.returncode}):\n{done.stdout[-3000:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--forks", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tme-bench-fleet-") as tmp:
        root = Path(tmp)
        playbook = root / "fleet.yml"
        playbook.write_text(PLAYBOOK)
        with private_server(root) as server:
            env = ansible_env(server.password())
            counter = 0

            def fresh(count: int) -> list[str]:
                nonlocal counter
                names = [f"fleet_{counter + i}" for i in range(count)]
                counter += count
                server.ensure_databases(tuple(names))
                return names

            # warm-up: the controller's parse cache and Python's bytecode, as on any second run
            play(playbook, inventory(root / "warm.json", server.port, fresh(1)), 1, env)
            single, wide, narrow = [], [], []
            for _round in range(args.rounds):
                inv = inventory(root / "one.json", server.port, fresh(1))
                single.append(timed(lambda inv=inv: play(playbook, inv, 1, env)))
                inv = inventory(root / "wide.json", server.port, fresh(args.hosts))
                wide.append(timed(lambda inv=inv: play(playbook, inv, args.forks, env)))
                inv = inventory(root / "narrow.json", server.port, fresh(args.hosts))
                narrow.append(timed(lambda inv=inv: play(playbook, inv, 1, env)))
                print(
                    f"round {_round + 1}: one {single[-1]:.2f} s, {args.hosts} hosts forks={args.forks} "
                    f"{wide[-1]:.2f} s, forks=1 {narrow[-1]:.2f} s",
                    flush=True,
                )
            inv = inventory(root / "floor.json", server.port, [f"floor_{i}" for i in range(args.hosts)])
            floors: dict[str, float] = {}
            for name, task in (("debug", "ansible.builtin.debug:\n        msg: hi"), ("ping", "ansible.builtin.ping:")):
                floor = root / f"{name}.yml"
                floor.write_text(
                    "- name: Floor\n  hosts: fleet\n  gather_facts: false\n  tasks:\n"
                    f"    - name: {name}\n      {task}\n"
                )
                floors[name] = timed(lambda floor=floor, inv=inv: play(floor, inv, args.forks, env))
    one, fleet, serial = (statistics.median(x) for x in (single, wide, narrow))
    ratio = fleet / one
    files = len([p for p in EXAMPLES.glob("[0-9]*.sql") if not p.name.endswith(".rollback.sql")])
    print(f"\nP5 fleet: {args.hosts} databases x {files} migrations, medians of {args.rounds} rounds")
    print(f"  one database             {one:6.2f} s")
    print(f"  fleet, forks={args.forks:<3}        {fleet:6.2f} s   ratio {ratio:.2f} (goal <= {GOAL:g})")
    print(f"  fleet, forks=1           {serial:6.2f} s   ratio {serial / one:.2f}")
    print(f"  goal {'met' if ratio <= GOAL else 'NOT met'}")
    print(
        f"  Ansible alone over the same {args.hosts} hosts, forks={args.forks}: a debug task {floors['debug']:.2f} s,"
        f" an ansible.builtin.ping task {floors['ping']:.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
