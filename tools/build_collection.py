# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Build the collection tarball (tme-migrations-<version>.tar.gz) from what git tracks.

    python tools/build_collection.py [--output-path .local/dist]

`ansible-galaxy collection build` takes every file of a directory except galaxy.yml's build_ignore; a
checkout also holds files no release should carry (a team's own inventory with its vault, caches, local
state). So the files git tracks or would track (`git ls-files --cached --others --exclude-standard`,
that is .gitignore applies) are copied to a staging directory first, and the tarball is built from
there, build_ignore applying on top (bench/, .ci/, the .collections symlink). Outside a git checkout,
the directory is built as it is. Prints the tarball's path.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def tracked_files(root: Path) -> list[str] | None:
    """Paths relative to root that git tracks or would track; None outside a git checkout."""
    if not (root / ".git").exists() or shutil.which("git") is None:
        return None
    listed = subprocess.run(
        ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
    )
    return sorted({p.decode() for p in listed.stdout.split(b"\0") if p})


def stage(root: Path, files: list[str], target: Path) -> None:
    for rel in files:
        source = root / rel
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree, not yet in the index
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            dest.symlink_to(source.readlink())
        else:
            shutil.copy2(source, dest)


def ansible_galaxy() -> str:
    """ansible-galaxy beside the running Python (the .venv's), else from PATH."""
    beside = Path(sys.executable).parent / "ansible-galaxy"
    return str(beside) if beside.exists() else "ansible-galaxy"


def build(output: Path, root: Path = ROOT) -> Path:
    output.mkdir(parents=True, exist_ok=True)
    files = tracked_files(root)
    with tempfile.TemporaryDirectory(prefix="tme-build-") as tmp:
        source = root
        if files is not None:
            source = Path(tmp) / "migrations"
            stage(root, files, source)
        done = subprocess.run(
            [ansible_galaxy(), "collection", "build", "--force", "--output-path", str(output.resolve()), str(source)],
            text=True,
            capture_output=True,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"ansible-galaxy collection build failed: {done.stderr.strip() or done.stdout.strip()}")
    # "Created collection for tme.migrations at /path/tme-migrations-X.tar.gz"
    return Path(done.stdout.strip().splitlines()[-1].rsplit(" at ", 1)[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-path", type=Path, default=ROOT / ".local" / "dist")
    args = parser.parse_args(argv)
    try:
        print(build(args.output_path))
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"build_collection: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
