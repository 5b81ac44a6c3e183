"""Does a section classifier learn? Section accuracy on unseen normal clips and AUC per anomaly kind, per
seed, on the two small log-mel sets of the unit tests (the numbers behind README's ``mobilenet_section``
paragraph).

- ``toy``: ``tests/unit/test_detectors.py``'s registry-wide set (30 training clips, 2 sections told apart
  by one +8 dB band; its anomalies add a +15 dB band elsewhere and keep their section's band). Its data are
  fixed; the detector's seed varies. Settings: that test's ``_small`` (30 epochs, batch 128).
- ``comb``: ``comb_sections`` of ``tests/unit/test_section_classifiers.py`` (2 sections x 60 training clips,
  harmonic combs every 3 or 5 bands; anomalies make a clip unlike its section: ``swapped`` (the other
  section's comb), ``moved`` (halfway), ``missing``). Data and detector are drawn anew per seed. Settings: the
  detector's defaults but 32-frame snippets (the clips' length), as in ``test_mobilenet_section_learns``.

``resnet_section`` with ``proxy_outliers=False`` is the control: the same task and score family without the
proxy outliers that teach ``resnet_section`` to reject unknown bands.

    python benchmarks/bench_section_learning.py --seeds 0-7
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from asdkit.detectors.base import ClipFeatures, Detector  # noqa: E402
from asdkit.seeds import parse_seeds  # noqa: E402
from benchmarks._table import format_table  # noqa: E402
from tests.unit.test_detectors import _features, _small, _with_proxy  # noqa: E402
from tests.unit.test_section_classifiers import comb_sections, mobilenet_on_combs  # noqa: E402

COMB_KINDS = ("swapped", "moved", "missing")


def section_accuracy(detector: Any, X: ClipFeatures) -> float:
    """Share of clips whose mean snippet prediction is their own section."""
    network = detector.network_.eval()
    right = []
    with torch.inference_mode():
        for array, clip in zip(X.arrays, X.clips, strict=True):
            items = torch.from_numpy(detector._items(np.asarray(array, dtype=np.float32)))
            mean = torch.softmax(network(items).double(), dim=1).mean(dim=0)
            right.append(int(mean.argmax()) == detector.sections_.index(clip.section))
    return float(np.mean(right))


def _auc(detector: Detector, normal: ClipFeatures, anomalous: ClipFeatures) -> float:
    scores = np.r_[detector.anomaly_score(normal), detector.anomaly_score(anomalous)]
    return float(roc_auc_score([0] * len(normal) + [1] * len(anomalous), scores))


def toy(variant: str, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(0)  # the fixture's draw, as in test_detectors.py
    train = _with_proxy(_features(30, False, rng))
    normal, anomalous = _features(10, False, rng), _features(10, True, rng)
    name, params = VARIANTS[variant]
    detector = _small(name, seed=seed, **params).fit(train)
    return {"accuracy": section_accuracy(detector, normal), "extra band": _auc(detector, normal, anomalous)}


def comb(variant: str, seed: int) -> dict[str, float]:
    name, params = VARIANTS[variant]
    if name == "mobilenet_section":
        detector = mobilenet_on_combs(seed, **params)
    else:
        detector = _small(name, seed=seed, epochs=20, batch_size=32, snippet_frames=32, **params)
        detector.fit(comb_sections(60, seed))
    normal = comb_sections(20, 10_000 + seed)
    row = {"accuracy": section_accuracy(detector, normal)}
    row.update({kind: _auc(detector, normal, comb_sections(20, seed, kind)) for kind in COMB_KINDS})
    return row


#: variant -> (detector, parameters beyond the data set's settings)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "mobilenet_section": ("mobilenet_section", {}),
    "resnet_section, no proxies": ("resnet_section", {"proxy_outliers": False}),
    "resnet_section": ("resnet_section", {}),
}
DATA_SETS = {"toy": toy, "comb": comb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-3")
    parser.add_argument("--data", nargs="+", default=list(DATA_SETS), choices=list(DATA_SETS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for data in args.data:
        for variant in args.variants:
            if data == "comb" and variant == "resnet_section":
                continue  # the comb set has no other machine type to draw proxies from
            start = time.perf_counter()
            per_seed = [DATA_SETS[data](variant, s) for s in parse_seeds(args.seeds)]
            seconds = (time.perf_counter() - start) / len(per_seed)
            for column in per_seed[0]:
                values = np.array([r[column] for r in per_seed])
                print(f"{data} {variant} {column}: {' '.join(f'{v:.2f}' for v in values)}", flush=True)
                rows.append(
                    {
                        "data": data,
                        "detector": variant,
                        "measure": "section accuracy" if column == "accuracy" else f"AUC {column}",
                        "mean +- std": f"{values.mean():.2f} +- {values.std(ddof=1):.2f}",
                        "min": float(values.min()),
                        "max": float(values.max()),
                        "s per seed": seconds,
                    }
                )
    print(f"seeds {args.seeds}; section accuracy on unseen normal clips")
    print(format_table(rows))


if __name__ == "__main__":
    main()
