"""Build a small train/test protocol tree of REAL clips from the DCASE2020 development sample (by links).

Run: ``.venv/bin/python benchmarks/real_protocol.py --source ../shared/data/dcase2020_dev_sample --out TREE``
then ``benchmarks/bench_quality.py --data TREE ...``.

The sample holds only test clips (``<machine>/test/{normal,anomaly}_id_XX_*.wav``, 2-6 normals per id). Per
machine type the id with the most normal clips is the evaluated one: its first ``--test-normals`` normals
(sorted by name) and all its anomalies go to ``test/``; its other normals and the normals of every other id
go to ``train/`` (the DCASE2020 baseline trains one model per machine type on all its ids). The tree holds
symbolic links into the source, never copies, and is written outside the repository. Nothing here looks at
scores: the split is fixed by file names alone.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

from asdkit.data.naming import dcase2020, label_word


def build(source: Path, out: Path, test_normals: int) -> dict[str, tuple[str, int, int]]:
    """Link the protocol into ``out``; returns per machine (evaluated id, training clips, test clips)."""
    summary = {}
    for machine_dir in sorted(p for p in source.iterdir() if (p / "test").is_dir()):
        by_id: dict[str, dict[str, list[Path]]] = defaultdict(lambda: defaultdict(list))
        for wav in sorted((machine_dir / "test").glob("*.wav")):
            fields = dcase2020.parse_name(wav.name)
            if fields is not None:
                by_id[fields.section][label_word(fields.label)].append(wav)
        evaluated = max(sorted(by_id), key=lambda i: len(by_id[i]["normal"]))
        normals = by_id[evaluated]["normal"]
        if len(normals) <= test_normals or not by_id[evaluated]["anomaly"]:
            print(f"warning: {machine_dir.name}: too few clips for a protocol; skipped", file=sys.stderr)
            continue
        test = normals[:test_normals] + by_id[evaluated]["anomaly"]
        train = normals[test_normals:] + [w for i in by_id if i != evaluated for w in by_id[i]["normal"]]
        for split, files in (("train", train), ("test", test)):
            folder = out / machine_dir.name / split
            folder.mkdir(parents=True, exist_ok=True)
            for wav in files:
                link = folder / wav.name
                if not link.exists():
                    link.symlink_to(wav.resolve())
        summary[machine_dir.name] = (evaluated, len(train), len(test))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("../shared/data/dcase2020_dev_sample"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--test-normals", type=int, default=2)
    args = parser.parse_args()
    if not args.source.is_dir():
        raise SystemExit(f"error: --source {args.source}: no such directory")
    for machine, (evaluated, n_train, n_test) in build(args.source, args.out, args.test_normals).items():
        print(f"{machine}: id {evaluated} evaluated; {n_train} training clips, {n_test} test clips")


if __name__ == "__main__":
    main()
