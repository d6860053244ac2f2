# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every module, filter and role renders with ansible-doc, as a user runs it from the checkout
(ANSIBLE_CONFIG is the repository's ansible.cfg, so the checkout resolves as tme.migrations), with
the short description written in its source; and the collection's docs and changelog pass
antsibull-docs and antsibull-changelog, as `make lint` runs them."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
COLLECTION = "tme.migrations"
HEADER = {"module": "> MODULE {}", "filter": "> FILTER {}", "role": "> ROLE: {}"}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        PATH=str(BIN) + os.pathsep + env.get("PATH", ""),
    )
    return env


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600, check=False)


def _modules() -> list[str]:
    return sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py") if p.stem != "__init__")


def _filters() -> list[str]:
    return sorted(p.stem for p in (REPO / "plugins" / "filter").glob("*.yml"))


def _roles() -> list[str]:
    return sorted(p.parent.parent.name for p in (REPO / "roles").glob("*/meta/argument_specs.yml"))


def _module_doc(name: str) -> dict[str, Any]:
    path = REPO / "plugins" / "modules" / f"{name}.py"
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "DOCUMENTATION" for t in node.targets
        ):
            doc = yaml.safe_load(ast.literal_eval(node.value))
            assert isinstance(doc, dict), f"{path}: DOCUMENTATION is not a mapping"
            return doc
    raise AssertionError(f"{path}: no DOCUMENTATION")


def _filter_doc(name: str) -> dict[str, Any]:
    path = REPO / "plugins" / "filter" / f"{name}.yml"
    doc = yaml.safe_load(path.read_text())["DOCUMENTATION"]
    assert isinstance(doc, dict), f"{path}: DOCUMENTATION is not a mapping"
    return doc


def _role_entry_points(name: str) -> dict[str, str]:
    path = REPO / "roles" / name / "meta" / "argument_specs.yml"
    specs = yaml.safe_load(path.read_text())["argument_specs"]
    return {entry: str(spec.get("short_description", "")) for entry, spec in specs.items()}


def _source_short_description(kind: str, name: str) -> str:
    doc = _module_doc(name) if kind == "module" else _filter_doc(name)
    return str(doc.get("short_description", ""))


@pytest.fixture(scope="module")
def listings() -> dict[str, dict[str, Any]]:
    """What `ansible-doc -t TYPE -l tme.migrations --json` shows: each plugin with its short description."""
    result = {}
    for kind in ("module", "filter", "role"):
        done = _run(str(BIN / "ansible-doc"), "-t", kind, "-l", COLLECTION, "--json")
        assert done.returncode == 0, f"ansible-doc -t {kind} -l {COLLECTION}: {done.stderr}"
        result[kind] = json.loads(done.stdout)
    return result


CASES = [("module", n) for n in _modules()] + [("filter", n) for n in _filters()] + [("role", n) for n in _roles()]


def test_every_plugin_is_here() -> None:
    assert _modules() and _filters() and _roles(), "no module, filter or role found"
    assert {"migration", "migration_info", "backup", "restore"} <= set(_modules())


@pytest.fixture(scope="module")
def rendered() -> dict[tuple[str, str], subprocess.CompletedProcess[str]]:
    """`ansible-doc -t TYPE tme.migrations.NAME` of every case, a few at a time."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = {
            case: pool.submit(_run, str(BIN / "ansible-doc"), "-t", case[0], f"{COLLECTION}.{case[1]}")
            for case in CASES
        }
        return {case: future.result() for case, future in runs.items()}


@pytest.mark.parametrize(("kind", "name"), CASES, ids=[f"{k}-{n}" for k, n in CASES])
def test_renders(
    kind: str,
    name: str,
    listings: dict[str, dict[str, Any]],
    rendered: dict[tuple[str, str], subprocess.CompletedProcess[str]],
) -> None:
    fqcn = f"{COLLECTION}.{name}"
    done = rendered[(kind, name)]
    where = f"ansible-doc -t {kind} {fqcn}"
    assert done.returncode == 0, f"{where} exited {done.returncode}: {done.stderr[-3000:]}"
    # A plugin ansible-doc cannot find or parse is a warning with exit status 0.
    assert "[WARNING]" not in done.stderr and "[ERROR]" not in done.stderr, f"{where}: {done.stderr[-3000:]}"
    # Without colour, ansible-doc marks what it would print in bold as *name*.
    text = re.sub(r"\*([^*\s]+)\*", r"\1", done.stdout)
    assert text.startswith(HEADER[kind].format(fqcn)), f"{where} rendered: {done.stdout[:500]}"
    flat = " ".join(text.split())
    if kind == "role":
        entry_points = _role_entry_points(name)
        assert "main" in entry_points, f"roles/{name}/meta/argument_specs.yml has no entry point main"
        for entry, short in entry_points.items():
            assert short.strip(), f"roles/{name}/meta/argument_specs.yml: {entry} has no short_description"
            assert f"ENTRY POINT: {entry} - {' '.join(short.split())}" in flat, f"{where}: {done.stdout[:800]}"
            assert listings["role"][fqcn]["entry_points"][entry] == short
    else:
        short = _source_short_description(kind, name)
        assert short.strip(), f"{kind} {name} has no short_description"
        assert listings[kind].get(fqcn) == short, f"ansible-doc -l shows {listings[kind].get(fqcn)!r}"
        assert "OPTIONS" in done.stdout or kind == "module", f"{where}: no options rendered"


def test_nothing_undocumented(listings: dict[str, dict[str, Any]]) -> None:
    """Every module and filter ansible-doc finds in the collection has its documentation here."""
    prefix = f"{COLLECTION}."
    for kind, names in (("module", _modules()), ("filter", _filters()), ("role", _roles())):
        found = {k[len(prefix) :] for k in listings[kind]}
        assert found == set(names), f"{kind}: ansible-doc finds {sorted(found)}, the sources document {names}"
    for kind in ("module", "filter"):
        undocumented = sorted(k for k, v in listings[kind].items() if not v or v == "UNDOCUMENTED")
        assert not undocumented, f"{kind} without documentation: {undocumented}"


def test_changelog_lint() -> None:
    for argv in (
        ["antsibull-changelog", "lint"],
        ["antsibull-changelog", "lint-changelog-yaml", "changelogs/changelog.yaml"],
    ):
        done = _run(str(BIN / argv[0]), *argv[1:])
        assert done.returncode == 0 and not done.stdout.strip(), f"{' '.join(argv)}: {done.stdout}{done.stderr}"


def test_changelog_md_is_generated(tmp_path: Path) -> None:
    """CHANGELOG.md is what `antsibull-changelog generate` makes of changelogs/changelog.yaml."""
    out = tmp_path / "CHANGELOG.md"
    done = _run(str(BIN / "antsibull-changelog"), "generate", "--output", str(out), "--output-format", "md")
    assert done.returncode == 0, done.stdout + done.stderr
    assert out.read_text() == (REPO / "CHANGELOG.md").read_text(), (
        "CHANGELOG.md differs from changelogs/changelog.yaml: run `antsibull-changelog generate`"
    )


def test_collection_docs_lint() -> None:
    done = _run(str(BIN / "antsibull-docs"), "lint-collection-docs", "--plugin-docs", ".")
    assert done.returncode == 0, f"antsibull-docs lint-collection-docs --plugin-docs .:\n{done.stdout}{done.stderr}"
