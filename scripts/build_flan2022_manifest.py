"""Regenerate the shipped Flan 2022 collection manifest from flan_collection_info.csv.

    python scripts/build_flan2022_manifest.py ../shared/data/flan_cot/flan_collection_info.csv

Writes src/flanlab/tasks/collection/data/flan2022_manifest.json (atomically); the derivation rules
live in src/flanlab/tasks/collection/data/manifest_rules.yaml. ``--check`` only compares.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flanlab.core.io import atomic_write_text
from flanlab.tasks.collection.build_manifest import build_manifest, dump_manifest

OUT = Path(__file__).resolve().parents[1] / "src/flanlab/tasks/collection/data/flan2022_manifest.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", help="path to flan_cot/flan_collection_info.csv")
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--check", action="store_true", help="exit 1 if the shipped file differs")
    args = parser.parse_args()
    text = dump_manifest(build_manifest(args.csv))
    out = Path(args.out)
    if args.check:
        same = out.is_file() and out.read_text(encoding="utf-8") == text
        print(f"{out}: {'up to date' if same else 'differs from the CSV'}")
        return 0 if same else 1
    atomic_write_text(out, text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
