"""Section classifiers on the synthetic demo data in one run: with and without proxy outliers, with and
without CCSA fine-tuning, and the MobileNetV2 baseline.

Run: ``nice -n 10 .venv/bin/python benchmarks/bench_section.py [--data DIR] [--epochs E] [--machine fan]``
(``asdkit demo`` writes the data; the default ``--out`` folder is git-ignored). The official score is the
harmonic mean over sections of AUC (source), AUC (target) and pAUC; seconds per epoch are the mean over
machine types and epochs of the training loop's wall clock (on CPU here unless a GPU is present).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from statistics import mean
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import print_table

COLUMNS = ("variant", "official", "AUC(source)", "AUC(target)", "pAUC", "s/epoch", "wall s")


def _row(name: str, result: Any, wall: float) -> dict[str, Any]:
    """The run's overall metrics; seconds per epoch from the saved training history (classifiers keep it)."""
    from asdkit import api

    evaluation = result.evaluation
    detectors = api.load_models(result.run_dir)
    epochs = [h["seconds"] for d in detectors.values() for h in getattr(d, "history_", [])]
    return {
        "variant": name,
        "official": evaluation.official_score,
        "AUC(source)": evaluation.overall_hmean["AUC (source)"],
        "AUC(target)": evaluation.overall_hmean["AUC (target)"],
        "pAUC": evaluation.overall_hmean["pAUC"],
        "s/epoch": mean(epochs) if epochs else None,
        "wall s": wall,
        "run": str(result.run_dir),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("asdkit-demo/data"))
    parser.add_argument("--out", type=Path, default=Path("runs/bench-section"))
    parser.add_argument("--epochs", type=int, default=4, help="epochs of the classifiers and the AE")
    parser.add_argument("--fine-tune-epochs", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=Path(".asdkit-cache"))
    parser.add_argument("--machine", action="append", help="train and score only these (proxies: all)")
    args = parser.parse_args()

    from asdkit import api

    # CPU-sized networks: a quarter of CP-JKU's width, non-overlapping snippets for the ResNet.
    resnet = {"base_channels": 16, "hop_frames": 64, "epochs": args.epochs}
    fine_tune = {
        "ccsa_weight": 1.0,
        "margin": 0.5,
        "learning_rate": 1e-4,
        "epochs": args.fine_tune_epochs,
        "rampdown_start": 1,
        "rampdown_length": args.fine_tune_epochs,
    }
    variants: list[tuple[str, str, dict[str, Any]]] = [
        ("resnet, no proxies", "resnet_section", {**resnet, "proxy_outliers": False}),
        ("resnet, proxies 0.5", "resnet_section", {**resnet, "proxy_outliers": True, "proxy_lambda": 0.5}),
        ("mobilenet (baseline)", "mobilenet_section", {"epochs": args.epochs, "hop_frames": 32}),
    ]
    rows = []
    runs: dict[str, Path] = {}
    for base in ("resnet, no proxies", "resnet, proxies 0.5"):
        params = {**resnet, **fine_tune, "proxy_outliers": "proxies" in base}
        variants.append((f"{base} + CCSA fine-tune", "resnet_section", params))
    for i, (name, model, params) in enumerate(variants):
        if "fine-tune" in name:
            params["init_from"] = str(runs[name.split(" + ")[0]])
        start = time.perf_counter()
        result = api.run(
            args.data,
            args.out / f"{i}-{model}",
            model=model,
            params={**params, "accelerator": "cpu"},
            machines=args.machine,
            cache_dir=args.cache,
            overwrite=True,  # a rerun of the benchmark retrains
        )
        runs[name] = result.run_dir
        rows.append(_row(name, result, time.perf_counter() - start))
        print_table(rows[-1:], title=name, columns=COLUMNS)
    print_table(rows, title=f"Section classifiers on {args.data} (one run)", columns=COLUMNS)


if __name__ == "__main__":
    main()
