"""Bad-input audit cases (issue 14, items 9-13): each runs the real CLI on one bad input and judges it.

``CASES`` is a list of (name, case); ``case(scratch)`` gets a fresh empty folder and returns (exit code,
ok, short note). ``benchmarks/fault_audit.py`` imports it and prints the table with the other cases;
``python benchmarks/fault_cases_input.py`` prints this module's table alone.

A case passes when the bad input ends as what a user can trust: a named, counted skip beside the good
clips' results, or one ``error:`` line naming the file (and the field) with a non-zero exit; never a
traceback, never a score read as normal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

Outcome = tuple[int, bool, str]
RATE = 16000


def cli(*args: str | Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """The installed command as a user runs it (``python -m asdkit``)."""
    return subprocess.run(
        [sys.executable, "-m", "asdkit", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "ASDKIT_TRACKING": "off"},
    )


def clean(proc: subprocess.CompletedProcess[str]) -> bool:
    return "Traceback" not in proc.stderr and "Traceback" not in proc.stdout


def one_error_line(proc: subprocess.CompletedProcess[str], *needles: str) -> bool:
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    return proc.returncode != 0 and clean(proc) and len(errors) == 1 and all(n in errors[0] for n in needles)


# -- inputs -----------------------------------------------------------------------------------------------
def tree(scratch: Path) -> Path:
    """A tiny synthetic dcase2022 tree with one machine type."""
    from asdkit.data.synthetic import SyntheticSpec, generate

    return generate(scratch / "data", layout="dcase2022", spec=SyntheticSpec.tiny(machines=("fan",)))


def run(data: Path, out: Path, model: str = "knn", *extra: str) -> subprocess.CompletedProcess[str]:
    return cli(
        "run", "--data", data, "--out", out, "--model", model, "--debug", "--no-plots",
        "--cache-dir", out.parent / "cache", *extra,
    )  # fmt: skip


def trained(scratch: Path, model: str = "knn") -> Path:
    """A run directory (k-NN unless ``model``) on a tiny tree; raises when the good run itself fails."""
    out = scratch / f"run-{model}"
    proc = run(tree(scratch), out, model)
    if proc.returncode != 0:
        raise RuntimeError(f"the good run failed: {proc.stderr.strip().splitlines()[-1:]}")
    return out


def wav(path: Path, seconds: float = 1.0, peak: float = 0.3, subtype: str = "PCM_16") -> Path:
    t = np.arange(max(int(seconds * RATE), 1)) / RATE
    wave = peak * np.sin(2 * np.pi * 220 * t) + 0.01 * peak * np.random.default_rng(0).standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave.astype(np.float32), RATE, subtype=subtype)
    return path


def truncate(path: Path, keep: float = 0.6) -> Path:
    with path.open("r+b") as f:
        f.truncate(int(path.stat().st_size * keep))
    return path


def scored_names(proc: subprocess.CompletedProcess[str]) -> set[str]:
    return {Path(line.split(",")[0]).name for line in proc.stdout.splitlines()[1:] if "," in line}


def skipped_lines(proc: subprocess.CompletedProcess[str], name: str) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("skipped:") and name in line]


# -- 9: non-finite scores -----------------------------------------------------------------------------------
def score_non_finite(scratch: Path) -> Outcome:
    model = trained(scratch)
    good, huge = wav(scratch / "good.wav"), wav(scratch / "huge.wav", peak=1e18, subtype="FLOAT")
    proc = cli("score", model, good, huge, "--cache-dir", scratch / "cache")
    ok = clean(proc) and proc.returncode == 0 and scored_names(proc) == {"good.wav"}
    ok = ok and any("not finite" in line for line in skipped_lines(proc, "huge.wav"))
    return proc.returncode, ok, "huge.wav skipped (not finite), good.wav scored"


def score_only_non_finite(scratch: Path) -> Outcome:
    model = trained(scratch)
    huge = wav(scratch / "huge.wav", peak=1e18, subtype="FLOAT")
    proc = cli("score", model, huge, "--cache-dir", scratch / "cache")
    return proc.returncode, one_error_line(proc, "could be scored"), "nothing scorable: one error, exit != 0"


def watch_non_finite(scratch: Path) -> Outcome:
    model = trained(scratch)
    incoming = scratch / "incoming"
    huge = wav(incoming / "huge.wav", peak=1e18, subtype="FLOAT")
    past = time.time() - 60
    os.utime(huge, (past, past))
    log = scratch / "log.jsonl"
    proc = cli("watch", incoming, "--model", model, "--log", log, "--once", "--settle", "0")
    try:
        records = [json.loads(line) for line in log.read_text().splitlines()]
    except (OSError, ValueError):
        records = []
    ok = clean(proc) and len(records) == 1 and "not finite" in records[0].get("error", "")
    return proc.returncode, ok and "score" not in records[0], "an error line in strict JSON, no score"


# -- 10: clips shorter than the window ----------------------------------------------------------------------
def _short(scratch: Path, seconds: float) -> Outcome:
    model = trained(scratch, "ae")
    good, short = wav(scratch / "good.wav"), wav(scratch / "short.wav", seconds=seconds)
    proc = cli("score", model, good, short, "--cache-dir", scratch / "cache")
    ok = clean(proc) and proc.returncode == 0 and scored_names(proc) == {"good.wav"}
    return proc.returncode, ok and bool(skipped_lines(proc, "short.wav")), "short clip named and skipped"


def score_short_tenth_second(scratch: Path) -> Outcome:
    return _short(scratch, 0.1)


def score_short_one_sample(scratch: Path) -> Outcome:
    return _short(scratch, 1 / RATE)


# -- 11: truncated wavs -------------------------------------------------------------------------------------
def run_truncated_test_clip(scratch: Path) -> Outcome:
    data = tree(scratch)
    victim = truncate(sorted((data / "fan" / "test").glob("*.wav"))[0])
    out = scratch / "run"
    proc = run(data, out)
    config = json.loads((out / "config.json").read_text()) if (out / "config.json").is_file() else {}
    listed = [Path(p).name for p, _ in config.get("truncated", [])]
    ok = clean(proc) and proc.returncode == 0 and listed == [victim.name] and "truncated" in proc.stderr
    return proc.returncode, ok, "warned and listed under truncated in config.json"


def watch_truncated(scratch: Path) -> Outcome:
    model = trained(scratch)
    incoming = scratch / "incoming"
    half = truncate(wav(incoming / "half.wav"))
    past = time.time() - 60
    os.utime(half, (past, past))
    log = scratch / "log.jsonl"
    proc = cli("watch", incoming, "--model", model, "--log", log, "--once", "--settle", "0")
    logged = log.read_text().strip() if log.is_file() else ""
    ok = clean(proc) and proc.returncode == 0 and logged == ""
    return proc.returncode, ok, "not scored while it may still be being written"


# -- 12: vanishing clips ------------------------------------------------------------------------------------
def _run_with(scratch: Path, damage: Callable[[Path], str], stage: str) -> Outcome:
    data = tree(scratch)
    name = damage(data)
    out = scratch / "run"
    proc = run(data, out)
    config = json.loads((out / "config.json").read_text()) if (out / "config.json").is_file() else {}
    named = name in {Path(p).name for p, _ in config.get("skipped", [])}
    counted = config.get("skipped_counts", {}).get(stage, 0) >= 1
    ok = clean(proc) and proc.returncode == 0 and named and counted and "skipped" in proc.stderr
    return proc.returncode, ok, f"named in config.json, counted under {stage}"


def _dangling(data: Path) -> str:
    link = data / "fan" / "test" / "section_00_source_test_normal_0999_x.wav"
    link.symlink_to(data / "gone.wav")
    return link.name


def _loop(data: Path) -> str:
    folder = data / "fan" / "train"
    (folder / "loop_a.wav").symlink_to(folder / "loop_b.wav")
    (folder / "loop_b.wav").symlink_to(folder / "loop_a.wav")
    return "loop_a.wav"


def _bad_training_clip(data: Path) -> str:
    clip = sorted((data / "fan" / "train").glob("*.wav"))[0]
    clip.write_bytes(b"RIFF not a wav")
    return clip.name


def run_dangling_symlink(scratch: Path) -> Outcome:
    return _run_with(scratch, _dangling, "scan")


def run_symlink_loop(scratch: Path) -> Outcome:
    return _run_with(scratch, _loop, "scan")


def run_unreadable_training_clip(scratch: Path) -> Outcome:
    return _run_with(scratch, _bad_training_clip, "training")


def run_flac_test_clip(scratch: Path) -> Outcome:
    data = tree(scratch)
    clip = sorted((data / "fan" / "test").glob("*.wav"))[0]
    samples, rate = sf.read(clip)
    sf.write(clip.with_suffix(".flac"), samples, rate)
    clip.unlink()
    out = scratch / "run"
    proc = run(data, out)
    scores = "".join(p.read_text() for p in (out / "scores").glob("anomaly_score_*.csv"))
    ok = clean(proc) and proc.returncode == 0 and clip.with_suffix(".flac").name in scores
    return proc.returncode, ok, "the .flac clip is scored"


def score_symlink_loop(scratch: Path) -> Outcome:
    model = trained(scratch)
    folder = scratch / "clips"
    wav(folder / "good.wav")
    (folder / "a.wav").symlink_to(folder / "b.wav")
    (folder / "b.wav").symlink_to(folder / "a.wav")
    proc = cli("score", model, folder, "--cache-dir", scratch / "cache")
    ok = clean(proc) and proc.returncode == 0 and scored_names(proc) == {"good.wav"}
    return proc.returncode, ok and bool(skipped_lines(proc, "a.wav")), "loop named and skipped"


# -- 13: model.json valid JSON but wrong --------------------------------------------------------------------
def _model_json(scratch: Path, change: Callable[[dict], object], field: str) -> Outcome:
    model = trained(scratch) / "models" / "fan"
    path = model / "model.json"
    path.write_text(json.dumps(change(json.loads(path.read_text()))))
    proc = cli("score", model, wav(scratch / "clip.wav"), "--cache-dir", scratch / "cache")
    return proc.returncode, one_error_line(proc, str(path), field), f"one error naming model.json and {field}"


def model_json_null(scratch: Path) -> Outcome:
    return _model_json(scratch, lambda c: None, "JSON object")


def model_json_threshold_text(scratch: Path) -> Outcome:
    return _model_json(scratch, lambda c: c | {"threshold": "abc"}, "threshold")


def model_json_missing_key(scratch: Path) -> Outcome:
    return _model_json(scratch, lambda c: {k: v for k, v in c.items() if k != "features"}, "features")


def model_json_n_mels_changed(scratch: Path) -> Outcome:
    return _model_json(scratch, lambda c: c | {"features": c["features"] | {"n_mels": 64}}, "n_mels")


CASES: list[tuple[str, Callable[[Path], Outcome]]] = [
    ("score: float wav peak 1e18 (NaN score) beside a good clip", score_non_finite),
    ("score: only a NaN-score clip", score_only_non_finite),
    ("watch: NaN-score clip", watch_non_finite),
    ("score: 0.1 s clip (shorter than the ae window)", score_short_tenth_second),
    ("score: 1-sample clip", score_short_one_sample),
    ("run: truncated test wav", run_truncated_test_clip),
    ("watch: truncated wav", watch_truncated),
    ("run: dangling symlink in the tree", run_dangling_symlink),
    ("run: symlink loop in the tree", run_symlink_loop),
    ("run: unreadable training clip", run_unreadable_training_clip),
    ("run: .flac test clip in the tree", run_flac_test_clip),
    ("score: symlink loop among the files", score_symlink_loop),
    ("model.json: null", model_json_null),
    ('model.json: threshold "abc"', model_json_threshold_text),
    ("model.json: missing key", model_json_missing_key),
    ("model.json: n_mels changed", model_json_n_mels_changed),
]


def print_cases(cases: list[tuple[str, Callable[[Path], Outcome]]], passed: str = "ok") -> None:
    """Run each case in its own scratch folder and print the table; ``passed`` labels a passing verdict."""
    import tempfile

    from _table import format_table

    rows: list[dict[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="asdkit-faults-") as root:
        for i, (name, case) in enumerate(cases):
            scratch = Path(root) / f"case{i:02d}"
            scratch.mkdir()
            try:
                code, ok, note = case(scratch)
            except Exception as exc:  # a case that cannot even be set up is a failure, shown as such
                code, ok, note = -1, False, f"{type(exc).__name__}: {exc}"
            rows.append({"case": name, "exit": str(code), "verdict": passed if ok else "FAIL", "note": note})
            print(f"{rows[-1]['verdict']:4s} {name}", file=sys.stderr, flush=True)
    print(format_table(rows))


def main() -> None:
    print_cases(CASES)


if __name__ == "__main__":
    main()
