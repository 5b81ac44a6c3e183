"""Detectors at real DCASE sizes: wall time, peak memory and cache size, and their growth from 1/4 to full.

Run: ``.venv/bin/python benchmarks/bench_scale.py [--sizes quarter full] [--trees dcase2023 dcase2020]
[--detectors ensemble knn ae] [--threads auto 1] [--epochs 1] [--root /tmp/asdkit_bench_scale]``

Trees (synthetic, the toolkit's own generator, written once under ``--root`` and reused):

- ``dcase2023``: 7 machine types x (990 source + 10 target) training clips and 200 test clips of 10 s
  (1 section each, as the DCASE2023-2025 development sets). The generator has 5 machine kinds; types 6
  and 7 are a fan and a pump of another seed under their own names.
- ``dcase2020``: 1 machine type with 4 ids x 800 training clips (3,200) and 4 x 100 test clips of 10 s.
- ``quarter``: the same with a quarter of the clips per type (test sets too).

Each cell is one ``asdkit run`` in a fresh process (``--no-plots --no-track``), timed end to end, its peak
resident memory from ``wait4``. The first run on a tree computes the log-mel cache (the "features" row);
every detector's row runs after it, with the features cached: the targets for the default detector on
2 cores are <= 300 s on the full dcase2023 tree, peak RSS <= 4 GB, and time growing no faster than the
clip count (growth = time ratio / clip ratio, <= 1 is linear or better). ``--threads`` adds one row per
thread setting (``auto``: asdkit's choice by the size of the work; a number: ``asdkit run --threads N``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import print_table

DEEP_EPOCHS = 1


@dataclass(frozen=True)
class TreeSpec:
    name: str
    layout: str
    machines: tuple[str, ...]
    sections: int
    train_source: int
    train_target: int
    test_per_domain: int  # normal + anomaly, per section and domain (source only in dcase2020)
    extra: tuple[tuple[str, str], ...] = ()  # (new machine name, generator kind) of a second seed

    def scaled(self, quarter: bool) -> TreeSpec:
        if not quarter:
            return self
        return TreeSpec(
            f"{self.name}_quarter",
            self.layout,
            self.machines,
            self.sections,
            self.train_source // 4,
            max(1, self.train_target // 4) if self.layout == "dcase2020" else self.train_target,
            max(2, self.test_per_domain // 4),
            self.extra,
        )

    def n_train(self, machines: list[str] | None = None) -> int:
        per_type = self.sections * (
            self.train_source + (self.train_target if self.layout != "dcase2020" else 0)
        )
        return per_type * (len(machines) if machines else len(self.machines) + len(self.extra))


TREES = {
    "dcase2023": TreeSpec(
        "dcase2023",
        "dcase2022",
        ("pump", "gearbox", "fan", "slider", "valve"),
        1,
        990,
        10,
        100,
        (("ToyCar", "fan"), ("ToyTrain", "pump")),
    ),
    "dcase2020": TreeSpec("dcase2020", "dcase2020", ("fan",), 4, 800, 1, 100),
}


def machine_ready(spec: TreeSpec, folder: Path, machine: str) -> bool:
    """Whether ``machine``'s folder holds all its clips (the generator writes one machine type after another,
    so an interrupted tree can still serve the machine types it finished)."""
    train = spec.sections * (spec.train_source + (spec.train_target if spec.layout != "dcase2020" else 0))
    test = spec.sections * spec.test_per_domain * (1 if spec.layout == "dcase2020" else 2)
    found = [len(list((folder / machine / split).glob("*.wav"))) for split in ("train", "test")]
    return found == [train, test]


def build_tree(spec: TreeSpec, root: Path, machines: list[str] | None = None) -> Path:
    """The tree of ``spec`` under ``root`` (written once; a finished tree has a ``.complete`` marker). With
    ``machines``, a tree whose folders of those machine types are complete is used as it is."""
    from asdkit.data.synthetic import SyntheticSpec, generate

    folder = root / spec.name
    if (folder / ".complete").exists():
        return folder
    if machines and all(machine_ready(spec, folder, m) for m in machines):
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    normal = spec.test_per_domain // 2

    def synth(machines: tuple[str, ...], seed: int) -> SyntheticSpec:
        return SyntheticSpec(
            machines=machines,
            sections=spec.sections,
            n_train_source=spec.train_source,
            n_train_target=min(spec.train_target, spec.train_source),
            n_test_normal=normal,
            n_test_anomaly=spec.test_per_domain - normal,
            duration=10.0,
            seed=seed,
        )

    generate(folder, layout=spec.layout, spec=synth(spec.machines, 0), progress=True)
    if spec.extra:
        other = root / f"{spec.name}_other"
        shutil.rmtree(other, ignore_errors=True)
        generate(other, layout=spec.layout, spec=synth(tuple(k for _, k in spec.extra), 1), progress=True)
        for name, kind in spec.extra:
            (other / kind).rename(folder / name)
        shutil.rmtree(other)
    (folder / ".complete").write_text("")
    return folder


def run_once(
    tree: Path, out: Path, cache: Path, model: str | None, threads: str, epochs: int, machines: list[str]
) -> dict:
    """One ``asdkit run`` in a child process: wall and CPU seconds (user + system: what a shared machine's
    other load does not inflate), peak RSS (MB), exit code, its timings."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "asdkit", "run", "--data", str(tree), "--out", str(out)]
    cmd += ["--cache-dir", str(cache), "--no-plots", "--no-track", "--quiet"]
    for machine in machines:
        cmd += ["--machine", machine]
    if model is not None:
        cmd += ["--model", model]
        from asdkit.detectors.registry import get_detector_class

        if "epochs" in get_detector_class(model)().get_params():
            cmd += ["--param", f"epochs={epochs}"]
    if threads != "auto":
        cmd += ["--threads", threads]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    stderr = proc.stderr.read() if proc.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    timings = {}
    config = out / "config.json"
    if config.is_file():
        timings = json.loads(config.read_text()).get("timings", {})
    if code != 0:
        print(f"  {model or 'default'}: exit {code}: {stderr.strip().splitlines()[-1:]}", file=sys.stderr)
    cpu = usage.ru_utime + usage.ru_stime
    return {"wall_s": wall, "cpu_s": cpu, "rss_mb": usage.ru_maxrss / 1024, "exit": code, "timings": timings}


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20 if path.exists() else 0.0


def table_row(
    spec: TreeSpec, machines: list[str], detector: str, threads: str, got: dict, cache: Path
) -> dict:
    """One row of the table: a run of :func:`run_once` on a tree, with the size of its feature cache."""
    return {
        "tree": spec.name,
        "train clips": spec.n_train(machines),
        "detector": detector,
        "threads": threads,
        "wall s": got["wall_s"],
        "CPU s": got["cpu_s"],
        "train s": got["timings"].get("train"),
        "score s": got["timings"].get("score"),
        "peak RSS MB": got["rss_mb"],
        "cache MB": folder_mb(cache),
        "exit": got["exit"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, default=Path("/tmp/asdkit_bench_scale"))
    parser.add_argument("--trees", nargs="+", default=["dcase2023"], choices=sorted(TREES))
    parser.add_argument("--sizes", nargs="+", default=["quarter", "full"], choices=["quarter", "full"])
    parser.add_argument(
        "--detectors", nargs="+", default=["default"], help="'default' (the ensemble) or registered names"
    )
    parser.add_argument(
        "--threads", nargs="+", default=["auto"], help="'auto' or thread counts, e.g. auto 1 2"
    )
    parser.add_argument("--epochs", type=int, default=DEEP_EPOCHS, help="epochs of deep detectors")
    parser.add_argument(
        "--machines", nargs="+", default=[], help="only these machine types (each type is trained alone)"
    )
    args = parser.parse_args()

    rows = []
    for tree_name in args.trees:
        wall: dict[tuple[str, str], dict[str, float]] = {}
        for size in args.sizes:
            spec = TREES[tree_name].scaled(size == "quarter")
            start = time.perf_counter()
            tree = build_tree(spec, args.root, args.machines)
            print(f"{spec.name}: tree ready ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
            cache = args.root / f"cache_{spec.name}"
            marker = cache / f".complete_{'_'.join(args.machines) or 'all'}"
            if marker.exists():  # features cached by an earlier invocation
                print(f"{spec.name}: features cached in {cache}", file=sys.stderr)
            else:
                first = run_once(tree, args.root / "run", cache, None, "auto", args.epochs, args.machines)
                if first["exit"] == 0:
                    marker.write_text("")
                rows.append(table_row(spec, args.machines, "features + default", "auto", first, cache))
            for detector in args.detectors:
                model = None if detector == "default" else detector
                for threads in args.threads:
                    got = run_once(tree, args.root / "run", cache, model, threads, args.epochs, args.machines)
                    key = (detector, threads)
                    wall[key] = wall.get(key, {}) | {size: got["wall_s"], f"{size} cpu": got["cpu_s"]}
                    rows.append(table_row(spec, args.machines, detector, threads, got, cache))
                    print_table(rows[-1:], columns=list(rows[-1]))
        full, quarter = TREES[tree_name], TREES[tree_name].scaled(True)
        clip_ratio = full.n_train(args.machines) / quarter.n_train(args.machines)
        for row in rows:
            times = wall.get((row["detector"], row["threads"]), {})
            if row["tree"] == tree_name and "quarter" in times and "full" in times:
                row["growth"] = times["full"] / times["quarter"] / clip_ratio
                row["CPU growth"] = times["full cpu"] / times["quarter cpu"] / clip_ratio
    print_table(rows, title="asdkit run at real sizes (features cached except the first row of each tree)")


if __name__ == "__main__":
    main()
