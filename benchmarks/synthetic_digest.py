"""Digests of synthetic trees: one SHA-256 per layout over every file's relative path and bytes.

The generator promises the same bytes for the same spec and seed (``GENERATOR_VERSION`` is bumped when it
does not). Run this against two checkouts to see that a refactoring kept that promise:

    PYTHONPATH=<old>/src python benchmarks/synthetic_digest.py > old.txt
    PYTHONPATH=<new>/src python benchmarks/synthetic_digest.py > new.txt
    diff old.txt new.txt

The spec covers every machine model and every anomaly kind (each at both severities) with short clips.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import print_table

from asdkit.data.synthetic import MACHINE_TYPES, SYNTHETIC_LAYOUTS, SyntheticSpec, generate


def tree_digest(root: Path) -> tuple[str, int]:
    """SHA-256 over (relative path, bytes) of every file below ``root``, in path order; and the file count."""
    digest = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.is_file())
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest(), len(files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    spec = SyntheticSpec(
        machines=tuple(MACHINE_TYPES),
        sections=2,
        n_train_source=2,
        n_train_target=1,
        n_test_normal=1,
        n_test_anomaly=8,
        duration=1.0,
        seed=args.seed,
    )
    rows = []
    for layout in SYNTHETIC_LAYOUTS:
        with tempfile.TemporaryDirectory() as tmp:
            root = generate(Path(tmp), layout, spec, workers=args.workers)
            digest, n_files = tree_digest(root)
        rows.append({"layout": layout, "files": n_files, "sha256": digest})
    print_table(rows, f"synthetic trees, seed {args.seed} ({spec.machines}, {spec.duration} s clips)")


if __name__ == "__main__":
    main()
