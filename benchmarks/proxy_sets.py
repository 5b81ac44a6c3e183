"""The synthetic proxy sets of the README's default-selection table ("How the default's members were chosen"),
written where ``bench_quality.py`` reads them: the reduced demo set and the two "held-back-like" sets.

Run::

    python benchmarks/proxy_sets.py --out /tmp/proxy
    python benchmarks/bench_quality.py --data /tmp/proxy/synthetic --out /tmp/q/synthetic --seeds 0-4 \
        --threads 1 --per-machine --models mahalanobis knn patch_bank "patch_bank:aggregate=mean" ensemble \
        "ensemble:weights=[1,1]" "ensemble:weights=[3,1]" "ensemble:normalise=rank,weights=[1,1]" \
        'ensemble:members=["mahalanobis","patch_bank"]'
    # the same bench_quality line for /tmp/proxy/heldback_like_1 and _2 and the real folds, then
    # benchmarks/default_choice.py on the outputs (the README has the full lines)

A set already written with the same spec is kept (``asdkit demo``'s marker file).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from asdkit.data.synthetic import GENERATOR_VERSION, SyntheticSpec, generate

#: folder name -> spec, exactly as the README's "The default detector" states them
SPECS: dict[str, SyntheticSpec] = {
    "synthetic": SyntheticSpec(
        sections=2, n_train_source=20, n_train_target=3, n_test_normal=8, n_test_anomaly=8, duration=4.0
    ),
    **{
        f"heldback_like_{seed}": SyntheticSpec(
            machines=("valve", "fan"),
            sections=1,
            n_train_source=30,
            n_train_target=3,
            duration=4.0,
            seed=seed,
        )
        for seed in (1, 2)
    },
}
MARKER = ".asdkit-proxy-set.json"


def write_sets(out: Path) -> dict[str, Path]:
    written = {}
    for name, spec in SPECS.items():
        folder = out / name
        wanted = json.dumps({"spec": repr(spec), "generator": GENERATOR_VERSION}, sort_keys=True)
        marker = folder / MARKER
        if not (marker.is_file() and marker.read_text() == wanted):
            if folder.exists() and any(folder.iterdir()):
                if not marker.is_file():
                    raise SystemExit(f"{folder}: exists and was not written by this script")
                shutil.rmtree(folder)
            generate(folder, layout="dcase2022", spec=spec)
            marker.write_text(wanted)
        written[name] = folder
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/proxy"))
    args = parser.parse_args()
    for name, folder in write_sets(args.out).items():
        print(f"{name}: {folder}  ({SPECS[name]})")


if __name__ == "__main__":
    main()
