"""Does the label-free evidence pick the right detector? Each candidate's evidence beside its real score.

Run::

    .venv/bin/python benchmarks/bench_selection.py --data TREE [TREE ...] --seeds 0-4 --out OUT

For every data tree, machine type and seed, each of the default's candidates
(:data:`asdkit.detectors.ensemble.DEFAULT_CANDIDATES`, or ``--candidates`` in ``bench_quality``'s
``NAME:KEY=VALUE`` form) is fitted on the machine type's normal training clips and scores its test clips;
its score is the official statistic of that machine type alone (2020 rules: the mean of its ids' AUC and
pAUC; 2022+: the harmonic mean of AUC source, AUC target and pAUC). Beside it: its label-free evidence
(:func:`asdkit.scoring.evidence.gather_evidence`, seeded like the default), which the default uses to choose.
The row DEFAULT is ``ensemble`` with ``select=evidence`` (the default until it was measured here; now
opt-in): its score on a machine type is that of the candidate its evidence chose (it keeps that one member
alone and z-normalises its score, which leaves every AUC as it is). ``--previous`` adds asdkit's default
(``ensemble`` with ``select=none``), labelled "previous default".

Printed per tree and machine type: each candidate's evidence and real score (mean +- sample std over seeds),
the default's, which candidate it chose how often, the gap to the best candidate, and the Spearman rank
correlation between evidence and real score over the candidates (per seed, then averaged). ``OUT/
selection.csv`` holds the per-seed rows. Test labels are only read to report, never to choose.
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_quality import parse_config

from asdkit import api
from asdkit.data.manifest import TEST, TRAIN
from asdkit.detectors.ensemble import DEFAULT_CANDIDATES, EnsembleDetector, _label, _spec_dict
from asdkit.detectors.inputs import fit_bundle, load_bundle
from asdkit.detectors.registry import create_detector, get_detector_class
from asdkit.evaluation_paths import RunEvaluation
from asdkit.features.config import FeatureConfig
from asdkit.metrics import ScoreTable
from asdkit.metrics import evaluate as evaluate_table
from asdkit.scoring.evidence import gather_evidence
from asdkit.seeds import parse_seeds
from asdkit.utils.io import atomic_write_text


def machine_score(clips: list[Any], scores: np.ndarray, scheme: Any) -> float:
    """The official statistic of one machine type's test clips alone."""
    return float(evaluate_table(ScoreTable.from_clips(clips, scores, None, scheme=scheme)).official_score)


def spearman(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr

    if len(a) < 3 or len(set(a)) < 2 or len(set(b)) < 2:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def _seeded(spec: dict[str, Any], seed: int) -> dict[str, Any]:
    params = dict(spec.get("params") or {})
    if "seed" in get_detector_class(spec["model"])().get_params():
        params.setdefault("seed", seed)
    return params


def run_tree(
    data: Path,
    specs: list[dict[str, Any]],
    seeds: list[int],
    cache: Path,
    previous: bool,
    max_clips: int,
    machines: list[str] | None = None,
    partial: Path | None = None,
) -> list[dict[str, Any]]:
    """Every row of one tree; each machine type's rows are also appended to ``partial`` when it is done, so
    an interrupted benchmark keeps what it measured."""
    manifest = api.scan_data(data, machines=machines)
    scheme = RunEvaluation.prepare(manifest, None, None, allow_partial=True).rules.scheme
    pool = functools.cache(lambda: api._normal_training_clips_of_tree(manifest, False))
    rows: list[dict[str, Any]] = []
    for machine in manifest.machines():
        train = [c for c in manifest.filter(split=TRAIN, machine=machine) if c.label in (0, None)]
        test = list(manifest.filter(split=TEST, machine=machine))
        X, _ = fit_bundle(EnsembleDetector(), train, FeatureConfig(), pool, cache)
        T, _ = load_bundle(test, FeatureConfig(), {}, cache)
        fixed: dict[int, float] = {}
        for seed in seeds:
            start = time.perf_counter()
            candidates = [
                (_label(s), lambda s=s, seed=seed: create_detector(s["model"], **_seeded(s, seed)))
                for s in specs
            ]
            evidence = gather_evidence(candidates, X, max_clips=max_clips, seed=seed).to_dict()
            evidence_s = time.perf_counter() - start
            real = []
            for j, spec in enumerate(specs):
                if j in fixed:  # no seed: the same fit on every seed
                    real.append(fixed[j])
                    continue
                detector = create_detector(spec["model"], **_seeded(spec, seed))
                detector.feature_config_ = X.config
                detector._fit(X)  # the threshold is not needed for AUCs
                real.append(machine_score(list(T.clips), detector._score(T), scheme))
                if "seed" not in detector.get_params():
                    fixed[j] = real[-1]
            chosen = [c["name"] for c in evidence["candidates"]].index(evidence["chosen"][0])
            for i, spec in enumerate(specs):
                rows.append(
                    {
                        "data": data.name,
                        "machine": machine,
                        "seed": seed,
                        "candidate": _label(spec),
                        "evidence": evidence["candidates"][i]["auc"],
                        "evidence_std": evidence["candidates"][i]["fold_std"],
                        "real": real[i],
                        "chosen": int(i == chosen),
                        "evidence_seconds": round(evidence_s, 1),
                        "n_train": len(X),
                    }
                )
            rows.append(
                {"data": data.name, "machine": machine, "seed": seed, "candidate": "DEFAULT",
                 "evidence": None, "evidence_std": None, "real": real[chosen], "chosen": 0,
                 "evidence_seconds": round(evidence_s, 1), "n_train": len(X)}
            )  # fmt: skip
            if previous:
                ens = EnsembleDetector(select="none", seed=seed).fit(X)
                rows.append(
                    {"data": data.name, "machine": machine, "seed": seed, "candidate": "previous default",
                     "evidence": None, "evidence_std": None, "chosen": 0, "evidence_seconds": None,
                     "real": machine_score(list(T.clips), ens.anomaly_score(T), scheme), "n_train": len(X)}
                )  # fmt: skip
            print(f"{data.name}/{machine} seed {seed}: chose {evidence['chosen'][0]}", file=sys.stderr)
        if partial is not None:
            done = [r for r in rows if r["machine"] == machine]
            new = not partial.exists()
            with partial.open("a", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(done[0]), lineterminator="\n")
                if new:
                    writer.writeheader()
                writer.writerows(done)
    return rows


def _ms(values: list[float]) -> str:
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if not len(v):
        return "-"
    return f"{v.mean():.3f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.3f}"


def report(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    keys = sorted({(r["data"], r["machine"]) for r in rows}, key=lambda k: (k[0], k[1]))
    out.write("| data | machine | candidate | evidence (pseudo AUC) | real score | chosen |\n")
    out.write("|---|---|---|---|---|---|\n")
    summary = []
    for data, machine in keys:
        mine = [r for r in rows if r["data"] == data and r["machine"] == machine]
        names = list(dict.fromkeys(r["candidate"] for r in mine))
        seeds = sorted({r["seed"] for r in mine})
        means = {}
        for name in names:
            these = [r for r in mine if r["candidate"] == name]
            means[name] = float(np.mean([r["real"] for r in these]))
            chosen = sum(r["chosen"] for r in these)
            out.write(
                f"| {data} | {machine} | {name} | {_ms([r['evidence'] for r in these])} | "
                f"{_ms([r['real'] for r in these])} | {chosen}/{len(seeds) if name != 'DEFAULT' else '-'} |\n"
            )
        cands = [n for n in names if n not in ("DEFAULT", "previous default")]
        best = max(cands, key=lambda n: means[n])
        rhos = []
        for s in seeds:
            per = [r for r in mine if r["seed"] == s and r["candidate"] in cands]
            rhos.append(spearman([r["evidence"] for r in per], [r["real"] for r in per]))
        summary.append((data, machine, means["DEFAULT"], best, means[best], float(np.nanmean(rhos))))
    out.write(
        "\n| data | machine | default (mean) | best candidate | its mean | default - best | Spearman rho |\n"
    )
    out.write("|---|---|---|---|---|---|---|\n")
    for data, machine, default, best, best_mean, rho in summary:
        out.write(
            f"| {data} | {machine} | {default:.3f} | {best} | {best_mean:.3f} | {default - best_mean:+.3f} | "
            f"{rho:+.2f} |\n"
        )
    return out.getvalue()


def _typed(row: dict[str, str]) -> dict[str, Any]:
    """A CSV row with its numbers as numbers (empty cells as None)."""
    out: dict[str, Any] = dict(row)
    for key in ("evidence", "evidence_std", "real", "evidence_seconds"):
        out[key] = float(row[key]) if row.get(key) not in (None, "") else None
    for key in ("seed", "chosen", "n_train"):
        out[key] = int(row[key])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, nargs="+", help="data trees (required unless --report)")
    parser.add_argument("--seeds", default="0-4")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_selection"))
    parser.add_argument("--candidates", nargs="*", help="NAME:KEY=VALUE,... (default: the default's)")
    parser.add_argument("--previous", action="store_true", help="add the previous default (select=none)")
    parser.add_argument("--evidence-clips", type=int, default=240)
    parser.add_argument("--machines", nargs="*", help="machine types to run (default: all)")
    parser.add_argument("--report", type=Path, nargs="*", help="only print the table of these selection CSVs")
    args = parser.parse_args()
    if args.report:
        rows_read: list[dict[str, Any]] = []
        for path in args.report:
            for r in csv.DictReader(path.open()):
                rows_read.append(_typed(r))
        print(report(rows_read))
        return
    if not args.data:
        raise SystemExit("error: give --data TREE [TREE ...] (or --report CSV ...)")
    seeds = parse_seeds(args.seeds)
    if args.candidates:
        specs = [{"model": m, "params": p} for _, m, p in map(parse_config, args.candidates)]
    else:
        specs = [_spec_dict(s) for s in DEFAULT_CANDIDATES]
    rows: list[dict[str, Any]] = []
    for data in args.data:
        if not data.is_dir():
            raise SystemExit(f"error: --data {data}: no such directory")
        args.out.mkdir(parents=True, exist_ok=True)
        partial = args.out / "selection.partial.csv"
        rows += run_tree(
            data, specs, seeds, args.out / "cache", args.previous, args.evidence_clips, args.machines, partial
        )
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(args.out / "selection.csv", buf.getvalue())
    text = report(rows)
    atomic_write_text(args.out / "selection.md", text)
    print(text)
    print(f"rows: {args.out / 'selection.csv'}")


if __name__ == "__main__":
    main()
