# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Read one large migration file (1, 10 and 50 MB by default) and print the seconds each took.

The file is generated: blocks of CREATE TABLE, CREATE INDEX, ALTER TABLE and INSERT with comments,
strings and dollar quotes holding semicolons, and non-ASCII text throughout (pglast's own mapping of
byte offsets to characters made a file like this quadratic). Reading is the whole of
``load_path``: parse, split, line numbers, checksum, classification. No database, no cache.
Figures are printed, never asserted; peak memory is the process's own (ru_maxrss).

    python bench/parse_large.py [--sizes 1,10,50]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / ".collections"))

from ansible_collections.tme.migrations.plugins.plugin_utils._files import load_path  # noqa: E402

BLOCK = """-- block {i}: a table, its index, some rows — «données»
CREATE TABLE IF NOT EXISTS t_{i} (
    id bigint PRIMARY KEY,
    name text NOT NULL DEFAULT 'naïve; value'
);
CREATE INDEX IF NOT EXISTS idx_t_{i}_name ON t_{i} (name);
ALTER TABLE t_{i} ADD COLUMN IF NOT EXISTS note text;
INSERT INTO t_{i} (id, name) VALUES (1, 'a'), (2, 'b; c'), (3, $q$dollar; quoted$q$);

"""


def generate(size: int) -> str:
    parts, length, i = ["-- Migration: 001_big.sql\n-- Type: SAFE\nBEGIN;\n"], 0, 0
    while length < size:
        block = BLOCK.format(i=i)
        parts.append(block)
        length += len(block.encode("utf-8"))
        i += 1
    parts.append("COMMIT;\n\n-- ROLLBACK\n-- SELECT 1;\n")
    return "".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,50", help="sizes in MB, comma-separated")
    args = parser.parse_args()
    os.environ["TME_MIGRATIONS_CACHE"] = "off"
    with tempfile.TemporaryDirectory(prefix="tme-parse-large-") as tmp:
        for size in (float(s) for s in args.sizes.split(",")):
            path = Path(tmp) / "001_big.sql"
            path.write_text(generate(int(size * 1_000_000)), encoding="utf-8")
            start = time.perf_counter()
            (migration,) = load_path(str(path))
            seconds = time.perf_counter() - start
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
            print(
                f"{size:g} MB: {seconds:.2f} s, {len(migration.forward.statements)} statements, "
                f"last on line {migration.forward.statements[-1].line}, peak RSS so far {peak} MB",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
