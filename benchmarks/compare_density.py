"""The density estimators against the dense AE on the synthetic default data, with and without proxies.

Run: ``.venv/bin/python benchmarks/compare_density.py [--epochs 10] [--work bench-density]``

Each configuration is one ``asdkit.api.run`` (all machine types, one model per type) on the data set that
``asdkit demo`` builds (generated once into ``WORK/data``). The table gives the official 2022+ metrics
(harmonic means over sections), training seconds per epoch (summed over machine types; features are
cached before the first run), and the share of
normal test clips that the saved threshold flags (a threshold fitted to overfit training scores flags far
more than the intended ~10%).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import print_table

from asdkit import api
from asdkit.data.manifest import Manifest
from asdkit.data.synthetic import SyntheticSpec, generate

CONFIGS: list[tuple[str, dict[str, Any]]] = [
    ("ae", {}),
    ("density_ae", {"proxy_outliers": "none"}),
    ("density_ae", {"proxy_outliers": "other_sections"}),
    ("density_ae", {"proxy_outliers": "other_sections_and_machines"}),
    ("made", {"proxy_outliers": "none"}),
    ("made", {"proxy_outliers": "other_sections"}),
    ("made", {"proxy_outliers": "other_sections_and_machines"}),
    ("maf", {"proxy_outliers": "none"}),
    ("maf", {"proxy_outliers": "other_sections"}),
    ("maf", {"proxy_outliers": "other_sections_and_machines"}),
]


def false_alarm_rate(run_dir: Path) -> float:
    """Share of normal test clips whose decision is 1 (from the submission's decision files)."""
    labels = {(c.machine, c.name): c.label for c in Manifest.from_csv(run_dir / "manifest.csv")}
    flagged = normal = 0
    for path in sorted((run_dir / api.SCORES_DIR).glob("decision_result_*.csv")):
        machine = path.stem.removeprefix("decision_result_").split("_section_")[0]
        with open(path, newline="") as f:
            for name, decision in csv.reader(f):
                if labels.get((machine, name)) == 0:
                    normal += 1
                    flagged += int(decision)
    return flagged / normal if normal else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--work", type=Path, default=Path("bench-density"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", default="", help="comma-separated detector names to run (default all)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = args.work / "data"
    if not (data / "synthetic_truth.csv").is_file():
        generate(data, layout="dcase2022", spec=SyntheticSpec(seed=0))
    # features once up front, so that no configuration's training time includes extraction
    api.load_features(list(api.scan_data(data)), cache_dir=args.work / "cache")
    only = {n for n in args.only.split(",") if n}
    rows = []
    for model, extra in CONFIGS:
        if only and model not in only:
            continue
        label = f"{model} {extra.get('proxy_outliers', '')}".strip()
        out = args.work / "runs" / label.replace(" ", "-")
        params = {"epochs": args.epochs, "accelerator": "cpu", **extra}
        result = api.run(data, out, model=model, params=params, cache_dir=args.work / "cache", overwrite=True)
        evaluation = result.evaluation
        hmean = evaluation.overall_hmean
        rows.append(
            {
                "detector": label,
                "AUC source": hmean["AUC (source)"],
                "AUC target": hmean["AUC (target)"],
                "pAUC": hmean["pAUC"],
                "official": evaluation.official_score,
                "s/epoch": result.timings["train"] / args.epochs,
                "false alarms": false_alarm_rate(out),
            }
        )
        print_table(rows[-1:], f"after {label}")
    print_table(rows, f"synthetic default data, {args.epochs} epochs, {args.threads} torch threads")


if __name__ == "__main__":
    main()
