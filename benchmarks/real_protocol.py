"""Build a small train/test protocol tree of REAL clips from the DCASE2020 development sample (by links).

Run: ``.venv/bin/python benchmarks/real_protocol.py --source ../shared/data/dcase2020_dev_sample --out TREE``
then ``benchmarks/bench_quality.py --data TREE ...``.

The sample holds only test clips (``<machine>/test/{normal,anomaly}_id_XX_*.wav``, 2-6 normals per id). Per
machine type the id with the most normal clips is the evaluated one: ``--test-normals`` of its normals
(sorted by name; ``--fold F`` takes the F-th window of them, wrapping round) and all its anomalies go to
``test/``; its other normals and the normals of every other id go to ``train/`` (the DCASE2020 baseline
trains one model per machine type on all its ids). The folds 0..N-1 (N printed) test every normal of the
evaluated ids once, so their mean rests on about three times the clip pairs of one fold. The tree holds
symbolic links into the source, never copies, and is written outside the repository. Nothing here looks at
scores: the split is fixed by file names alone.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

from asdkit.data.naming import dcase2020, label_word


def n_folds(n_normals: int, test_normals: int) -> int:
    """Folds that test every normal of the evaluated id at least once."""
    return -(-n_normals // test_normals)


def build(source: Path, out: Path, test_normals: int, fold: int = 0) -> dict[str, tuple[str, int, int, int]]:
    """Link the protocol into ``out``; per machine: (evaluated id, training clips, test clips, folds)."""
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
        folds = n_folds(len(normals), test_normals)
        if not 0 <= fold < folds:
            raise SystemExit(f"error: --fold {fold}: {machine_dir.name} has folds 0-{folds - 1}")
        tested = {(fold * test_normals + j) % len(normals) for j in range(test_normals)}
        test = [w for j, w in enumerate(normals) if j in tested] + by_id[evaluated]["anomaly"]
        train = [w for j, w in enumerate(normals) if j not in tested]
        train += [w for i in by_id if i != evaluated for w in by_id[i]["normal"]]
        for split, files in (("train", train), ("test", test)):
            folder = out / machine_dir.name / split
            folder.mkdir(parents=True, exist_ok=True)
            for wav in files:
                link = folder / wav.name
                if not link.exists():
                    link.symlink_to(wav.resolve())
        summary[machine_dir.name] = (evaluated, len(train), len(test), folds)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("../shared/data/dcase2020_dev_sample"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--test-normals", type=int, default=2)
    parser.add_argument("--fold", type=int, default=0, help="which window of the evaluated normals is tested")
    args = parser.parse_args()
    if not args.source.is_dir():
        raise SystemExit(f"error: --source {args.source}: no such directory")
    if args.test_normals < 1:
        raise SystemExit("error: --test-normals must be >= 1")
    summary = build(args.source, args.out, args.test_normals, args.fold)
    for machine, (evaluated, n_train, n_test, folds) in summary.items():
        print(
            f"{machine}: id {evaluated} evaluated; {n_train} train, {n_test} test clips; folds 0-{folds - 1}"
        )


if __name__ == "__main__":
    main()
