"""Clip statistics (``stats=``, ``quantiles=``) of the statistics detectors, per data set and machine type.

Run (the README's table)::

    for F in 0 1 2; do python benchmarks/real_protocol.py --source ../shared/data/dcase2020_dev_sample \\
        --out /tmp/real_f$F --fold $F; done
    python benchmarks/proxy_sets.py --out /tmp/proxy
    OMP_NUM_THREADS=1 python benchmarks/bench_clip_stats.py --out /tmp/clip_stats \\
        --data real=/tmp/real_f0,/tmp/real_f1,/tmp/real_f2 heldback_like=/tmp/proxy/heldback_like_1,\\
/tmp/proxy/heldback_like_2 synthetic=/tmp/proxy/synthetic

``--data NAME=TREE[,TREE...]``: a group of data trees whose per-machine scores are averaged (the real
protocol's folds; the two held-back-like sets). Each ``--options`` entry (``KEY=VALUE,KEY=VALUE`` as
``bench_quality.py`` reads them; the first is the reference) is run with ``--model`` on every tree by
:func:`asdkit.api.run`, one seed: the clip statistics and the Ledoit-Wolf covariance have no randomness (a
``gmm`` or ``kmeans`` does: give it ``--seeds``). Per group, one table: each option's score per machine
type (the official statistic of the tree's rules over that machine type's AUC and pAUC values: the mean
under 2020 rules, the harmonic mean under 2022+), their mean, and the difference of each cell from the
reference in the same run. Beside it, how far chance alone moves that mean: the 90% interval of the change
of the mean AUC over machine types (and trees) when the test clips are resampled (normal and anomalous
clips apart, the same resamplings for both options, seed ``seeds[0]``'s runs). Nothing here chooses: the
table is for a reader.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from asdkit import api
from asdkit.metrics import evaluate
from asdkit.run_result import load_run
from asdkit.rundir import SEEDS_JSON, seed_dir
from asdkit.seeds import parse_seeds
from benchmarks._table import print_table
from benchmarks.bench_quality import _complete, parse_config

#: bootstrap resamplings of the test clips behind the interval of each option's change
BOOTSTRAP = 2000
DEFAULT_OPTIONS = (
    "stats=pooled",
    "stats=pooled+delta",
    "stats=pooled+envelope",
    "stats=pooled+tonal",
    "stats=pooled+delta+envelope",
    "stats=pooled+delta+envelope+tonal",
    "quantiles=0.95",
)


def per_machine(run_dir: Path) -> dict[str, float]:
    """Each machine type's official statistic over its own AUC and pAUC values."""
    result = load_run(run_dir)
    table = result.table
    if table is None:
        raise SystemExit(f"error: {run_dir}: no labelled scores to evaluate")
    return {m: evaluate(table.filter(machines=[m])).official_score for m in table.machines()}


def bootstrap_auc(normal: np.ndarray, anomalous: np.ndarray, resamples: int = BOOTSTRAP) -> np.ndarray:
    """The AUC on ``resamples`` resamplings of the normal and of the anomalous scores, drawn from a fixed
    seed: two score sets of the same clips get the same resamplings (a paired comparison)."""
    wins = (anomalous[:, None] > normal[None, :]) + 0.5 * (anomalous[:, None] == normal[None, :])
    rng = np.random.default_rng(0)
    ia = rng.integers(0, len(anomalous), size=(resamples, len(anomalous)))
    inn = rng.integers(0, len(normal), size=(resamples, len(normal)))
    return wins[ia[:, :, None], inn[:, None, :]].mean(axis=(1, 2))


def bootstrap_aucs(run_dir: Path) -> dict[str, np.ndarray]:
    """:func:`bootstrap_auc` of each machine type's test clips in a run."""
    out = {}
    for machine, scored in load_run(run_dir).scored.items():
        labels = np.array([c.label for c in scored.clips])
        out[machine] = bootstrap_auc(scored.scores[labels == 0], scored.scores[labels == 1])
    return out


def run_tree(
    tree: Path, out: Path, model: str, params: dict, seeds: list[int], reuse: bool
) -> dict[str, float]:
    """Mean over ``seeds`` of each machine type's score on one tree."""
    same_tree = (out / SEEDS_JSON).is_file() and json.loads((out / SEEDS_JSON).read_text()).get(
        "data"
    ) == str(tree)
    if not (reuse and same_tree and _complete(out, model, params, seeds)):
        api.run(
            tree, out, model=model, params=params, cache_dir=out.parent / "cache", plots=False, seeds=seeds
        )
    runs = [per_machine(seed_dir(out, s)) for s in seeds]
    return {m: float(np.mean([r[m] for r in runs])) for m in runs[0]}


def speed(model: str, options: list[str], n_clips: int) -> None:
    """Fit and score seconds of each option on ``n_clips`` random 10-s clips (128 x 313 log-mel, a 4096-point
    spectrum): the cost of the statistics at a real size, the clip spectrum's extraction aside."""
    from asdkit.data.manifest import Clip
    from asdkit.detectors.banks.clip_stats import TONAL_FFT
    from asdkit.detectors.base import ClipFeatures, InputArrays
    from asdkit.detectors.params import validate_params
    from asdkit.detectors.registry import get_detector_class
    from asdkit.features.config import FeatureConfig
    from asdkit.features.spectrum import SpectrumConfig

    rng = np.random.default_rng(0)
    config = FeatureConfig()
    spectrum = SpectrumConfig(config.sample_rate, n_fft=TONAL_FFT, channel=config.channel)
    arrays = [rng.normal(-40, 6, (config.n_mels, 313)).astype(np.float32) for _ in range(n_clips)]
    spectra = [rng.normal(-60, 6, (1, spectrum.n_bins)).astype(np.float32) for _ in range(n_clips)]
    clips = [
        Clip(path=f"/m/{i}.wav", machine="m", section="00", domain="source" if i % 10 else "target", label=0)
        for i in range(n_clips)
    ]
    X = ClipFeatures(arrays, clips, config, {"spectrum": InputArrays(spectrum, spectra)})
    rows = []
    for option in options:
        _, name, params = parse_config(f"{model}:{option}")
        detector = get_detector_class(name)(**validate_params(name, params))
        start = time.perf_counter()
        detector.fit(X)
        fitted = time.perf_counter()
        detector.anomaly_score(X)
        rows.append(
            {
                "option": option,
                "dim": detector.embed(X.subset([0])).shape[1],
                "fit s": fitted - start,
                "score s": time.perf_counter() - fitted,
            }
        )
    print_table(rows, f"{model}: {n_clips} clips (one section, 10% target), seconds on this machine")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=[], help="NAME=TREE[,TREE...] (a group averaged)")
    parser.add_argument("--model", default="mahalanobis", help="a statistics detector: mahalanobis, knn, gmm")
    parser.add_argument(
        "--options", nargs="+", default=list(DEFAULT_OPTIONS), help="the first is the reference"
    )
    parser.add_argument("--seeds", default="0", help="only for detectors with randomness (gmm, kmeans)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_clip_stats"))
    parser.add_argument("--reuse", action="store_true", help="keep trees already run with an option")
    parser.add_argument("--speed", type=int, metavar="N", help="instead: time each option on N random clips")
    args = parser.parse_args()
    if args.speed:
        speed(args.model, args.options, args.speed)
        return
    seeds = parse_seeds(args.seeds)
    groups: dict[str, list[Path]] = {}
    for item in args.data:
        name, sep, trees = item.partition("=")
        groups[name] = [Path(t) for t in trees.split(",") if t]
        missing = [t for t in groups[name] if not t.is_dir()]
        if not sep or not groups[name] or missing:
            raise SystemExit(f"error: --data {item!r}: expected NAME=TREE[,TREE...] of existing folders")
    configs = [parse_config(f"{args.model}:{o}") for o in args.options]
    for group, trees in groups.items():
        scores: dict[str, dict[str, float]] = {}  # option -> machine -> mean over trees
        boots: dict[str, np.ndarray] = {}  # option -> mean AUC over trees and machine types, per resampling
        for option, (folder, model, params) in zip(args.options, configs, strict=True):
            per_tree = []
            for i, tree in enumerate(trees):
                out = args.out / group / f"tree{i}" / folder
                per_tree.append(run_tree(tree, out, model, params, seeds, args.reuse))
                print(f"{group} {tree}: {folder} done", file=sys.stderr)
            machines = sorted(per_tree[0])
            trees_boots = [
                bootstrap_aucs(seed_dir(args.out / group / f"tree{i}" / folder, seeds[0]))
                for i in range(len(trees))
            ]
            boots[option] = np.mean([b[m] for b in trees_boots for m in machines], axis=0)
            scores[option] = {m: float(np.mean([t[m] for t in per_tree])) for m in machines}
            scores[option]["mean"] = float(np.mean([scores[option][m] for m in machines]))
        reference = args.options[0]
        rows = []
        for option, values in scores.items():
            row: dict[str, object] = {"option": option}
            for m, v in values.items():
                delta = v - scores[reference][m]
                row[m] = f"{v:.3f}" if option == reference else f"{v:.3f} ({delta:+.3f})"
            if option != reference:
                low, high = np.quantile(boots[option] - boots[reference], [0.05, 0.95])
                row["mean AUC change, 90% interval"] = f"[{low:+.3f}, {high:+.3f}]"
            rows.append(row)
        title = (
            f"{group}: {args.model}, score per machine type, mean over {len(trees)} tree(s) and seeds "
            f"{args.seeds} (difference from {reference} in brackets)"
        )
        print_table(rows, title)


if __name__ == "__main__":
    main()
