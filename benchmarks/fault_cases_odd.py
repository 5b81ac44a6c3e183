"""Odd-input audit cases (issue 27): resampled clips, decoded-size limits, weight checksums, usage errors,
submission values, bank models in the service, tiny banks. Each reproduces the issue's case and judges the
answer.

``CASES`` is a list of (name, case); ``case(scratch)`` gets a fresh empty folder and returns (exit code,
ok, short note). ``benchmarks/fault_audit.py`` imports it and prints the table with the other cases;
``python benchmarks/fault_cases_odd.py`` prints this module's table alone. Trained runs (the default
detector's and an AE's, on a tiny synthetic tree) are built once per audit and shared by the cases.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' helpers
from fault_cases_input import clean, cli, one_error_line, print_cases, run, tree

from tests.helpers.faults import long_8bit_wav

Outcome = tuple[int, bool, str]
os.environ.setdefault("ASDKIT_TRACKING", "off")


@functools.cache
def shared() -> Path:
    root = Path(tempfile.mkdtemp(prefix="asdkit-fault-odd-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root


@functools.cache
def trained_run(model: str) -> Path:
    """A complete run of ``model`` ("default": the default detector) on a tiny tree, built once."""
    root = shared()
    data = root / "data" if (root / "data").is_dir() else tree(root)
    out = root / f"run-{model}"
    extra = ("--param", "epochs=2") if model == "ae" else ()
    proc = (
        run(data, out, model, *extra)
        if model != "default"
        else cli("run", "--data", data, "--out", out, "--debug", "--no-plots", "--cache-dir", root / "cache")
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the {model} run failed: {proc.stderr.strip().splitlines()[-1:]}")
    return out


def normal_test_clip() -> Path:
    trained_run("default")
    return sorted((shared() / "data" / "fan" / "test").glob("*normal*.wav"))[0]


def scores_of(proc: subprocess.CompletedProcess[str]) -> dict[str, tuple[float, int, float]]:
    """file name -> (score, decision, threshold) from ``asdkit score``'s CSV."""
    out = {}
    for line in proc.stdout.splitlines()[1:]:
        path, _machine, score, decision, threshold = line.split(",")
        out[Path(path).name] = (float(score), int(decision), float(threshold))
    return out


# -- 1: a normal clip at 44.1 / 48 kHz --------------------------------------------------------------------
def resampled_normal_clip(scratch: Path) -> Outcome:
    """The issue's r44.wav: a 16 kHz normal clip at 44.1 kHz (and 48 kHz), resampled band-limited (what a
    recorder at that rate hears below 8 kHz), scored by the default detector's model."""
    from asdkit.data.audio import resample

    original = normal_test_clip()
    wave_16k, rate = sf.read(original, dtype="float32")
    clips = [scratch / "orig.wav"]
    shutil.copyfile(original, clips[0])
    for target in (44100, 48000):
        clips.append(scratch / f"r{target // 1000}.wav")
        sf.write(clips[-1], resample(wave_16k, rate, target), target, subtype="FLOAT")
    clips.append(scratch / "r44_again.wav")
    shutil.copyfile(clips[1], clips[-1])
    proc = cli("score", trained_run("default"), *clips)
    scores = scores_of(proc)
    if proc.returncode != 0 or len(scores) != 4:
        return proc.returncode, False, proc.stderr.strip()[-200:]
    base, decision, threshold = scores["orig.wav"]
    drift = max(abs(scores[c.name][0] - base) for c in clips[1:])
    warnings = [line for line in proc.stderr.splitlines() if "resampling" in line]
    ok = (
        all(scores[c.name][1] == decision == 0 for c in clips)
        and drift < 0.05 * max(1.0, abs(threshold))
        and len(warnings) == 2  # once per rate, not per clip
    )
    note = (
        f"16k {base:.3f}, 44.1k {scores['r44.wav'][0]:.3f}, 48k {scores['r48.wav'][0]:.3f} "
        f"(threshold {threshold:.3f}); {len(warnings)} resampling warning(s) for 3 clips at 2 rates"
    )
    return proc.returncode, ok, note


# -- 2: decoded-size limits --------------------------------------------------------------------------------
def long_clip_score(scratch: Path) -> Outcome:
    from asdkit.data.audio import load_audio
    from asdkit.errors import AudioTooLongError

    long = long_8bit_wav(scratch / "long.wav")
    start = time.perf_counter()
    with contextlib.suppress(AudioTooLongError):
        load_audio(long)
    seconds = time.perf_counter() - start  # the reader's own time, without the CLI's start-up
    proc = cli("score", trained_run("default"), long, normal_test_clip())
    skipped = [line for line in proc.stderr.splitlines() if line.startswith("skipped:")]
    ok = (
        proc.returncode == 0
        and clean(proc)
        and len(skipped) == 1
        and "long.wav: 5000.0 s of audio" in skipped[0]
        and len(scores_of(proc)) == 1
    )
    note = f"refused in {seconds * 1e3:.1f} ms (was 16.6 s, 6 GB); {skipped[0] if skipped else ''}"
    return proc.returncode, ok, note


def long_clip_service(scratch: Path) -> Outcome:
    from fastapi.testclient import TestClient

    from asdkit.service.app import create_app
    from asdkit.service.models import load_served_models

    long = long_8bit_wav(scratch / "long.wav").read_bytes()
    with TestClient(create_app(load_served_models(trained_run("default")))) as client:
        start = time.perf_counter()
        response = client.post("/score", files={"file": ("long.wav", long, "audio/wav")})
        seconds = time.perf_counter() - start
    error = response.json().get("error", "")
    ok = response.status_code == 413 and error.startswith("long.wav: 5000.0 s of audio")
    return response.status_code, ok, f"HTTP {response.status_code} in {seconds:.2f} s: {error[:70]}"


def long_clip_watch(scratch: Path) -> Outcome:
    incoming = scratch / "incoming"
    long_8bit_wav(incoming / "long.wav")
    shutil.copyfile(normal_test_clip(), incoming / "good.wav")
    past = time.time() - 60
    for f in incoming.iterdir():
        os.utime(f, (past, past))
    log = scratch / "log.jsonl"
    proc = cli("watch", incoming, "--model", trained_run("default"), "--log", log, "--once", "--settle", "0")
    records = {r["file"]: r for r in map(json.loads, log.read_text().splitlines())} if log.is_file() else {}
    errors = [r for r in records.values() if "error" in r]
    ok = clean(proc) and len(records) == 2 and len(errors) == 1 and "5000.0 s of audio" in errors[0]["error"]
    return proc.returncode, ok, errors[0]["error"][:100] if errors else f"{len(records)} log lines"


def long_clip_training(scratch: Path) -> Outcome:
    data = tree(scratch)
    long_8bit_wav(data / "fan" / "train" / "section_00_source_train_normal_0000_long.wav")
    out = scratch / "run"
    proc = run(data, out, "knn")
    counted = [
        line
        for line in proc.stderr.splitlines()
        if "skipped 1 unreadable training clip" in line and "long.wav: 5000.0 s of audio" in line
    ]
    ok = proc.returncode == 0 and clean(proc) and len(counted) == 1 and (out / "result.csv").is_file()
    return proc.returncode, ok, (counted or [proc.stderr.strip()[-100:]])[0][-110:]


# -- 3: damaged weights ------------------------------------------------------------------------------------
def _damaged_copy(scratch: Path, name: str = "weights.pt") -> tuple[Path, Path]:
    """A copy of the AE run with ``n`` bytes flipped in the middle of the file (inside tensor data)."""
    copy = scratch / "run-ae"
    shutil.copytree(trained_run("ae"), copy)
    target = copy / "models" / "fan" / name
    data = bytearray(target.read_bytes())
    middle = len(data) // 2
    for i in range(middle, middle + 16):
        data[i] ^= 0x5A
    target.write_bytes(bytes(data))
    return copy, target


def damaged_weights_score(scratch: Path) -> Outcome:
    run_dir, target = _damaged_copy(scratch)
    proc = cli("score", run_dir, normal_test_clip())
    ok = one_error_line(proc, str(target), "checksum mismatch") and not proc.stdout.strip()
    return proc.returncode, ok, (proc.stderr.strip().splitlines() or [""])[-1][:110]


def damaged_weights_serve(scratch: Path) -> Outcome:
    run_dir, target = _damaged_copy(scratch)
    with socket.socket() as s:  # a free port: the server must refuse the model before it listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = cli("serve", run_dir, "--port", str(port), timeout=120)
    ok = one_error_line(proc, str(target), "checksum mismatch")
    return proc.returncode, ok, (proc.stderr.strip().splitlines() or [""])[-1][:110]


def damaged_weights_watch(scratch: Path) -> Outcome:
    run_dir, target = _damaged_copy(scratch)
    (scratch / "incoming").mkdir()
    proc = cli("watch", scratch / "incoming", "--model", run_dir, "--once", timeout=120)
    ok = one_error_line(proc, str(target), "checksum mismatch")
    return proc.returncode, ok, (proc.stderr.strip().splitlines() or [""])[-1][:110]


def model_without_checksums(scratch: Path) -> Outcome:
    """A model saved before checksums still loads, and says so once."""
    copy = scratch / "run-old"
    shutil.copytree(trained_run("ae"), copy)
    config_path = copy / "models" / "fan" / "model.json"
    config = json.loads(config_path.read_text())
    del config["checksums"]
    config_path.write_text(json.dumps(config))
    proc = cli("score", copy, normal_test_clip(), normal_test_clip())
    notes = [line for line in proc.stderr.splitlines() if "without checksums" in line]
    ok = proc.returncode == 0 and clean(proc) and len(scores_of(proc)) == 1 and len(notes) == 1
    return proc.returncode, ok, notes[0][-90:] if notes else proc.stderr.strip()[-100:]


# -- 5: usage errors ---------------------------------------------------------------------------------------
def usage_bogus_option(scratch: Path) -> Outcome:
    proc = cli("run", "--bogus")
    ok = (
        proc.returncode == 2
        and "Usage: python -m asdkit run [OPTIONS]" in proc.stderr
        and "No such option: --bogus" in proc.stderr
        and "NoSuchOption" not in proc.stderr
    )
    return proc.returncode, ok, " / ".join(line for line in proc.stderr.splitlines() if line)[:110]


def usage_bare(scratch: Path) -> Outcome:
    proc = cli()
    text = proc.stdout + proc.stderr
    ok = (
        proc.returncode == 2
        and "NoArgsIsHelpError" not in text
        and "Usage: python -m asdkit [OPTIONS] COMMAND" in text
        and "Commands" in text
    )
    return proc.returncode, ok, f"{len(text.splitlines())} lines of help, exit {proc.returncode}"


# -- 7: submission values ----------------------------------------------------------------------------------
def submit_numpy_repr(scratch: Path) -> Outcome:
    from asdkit.reports.eval_lists import eval_groups

    scores = scratch / "run" / "scores"
    scores.mkdir(parents=True)
    rng = np.random.default_rng(0)
    bad_file = None
    for k, group in enumerate(eval_groups(2023)):
        values = rng.random(len(group.names))
        rows = [f"{n},{float(v)!r}" for n, v in zip(group.names, values, strict=True)]
        if k == 2:
            rows[5] = f"{group.names[5]},{np.float64(0.98)!r}"  # the row: a numpy scalar's repr
            bad_file = scores / f"anomaly_score_{group.group}.csv"
        (scores / f"anomaly_score_{group.group}.csv").write_text("\n".join(rows) + "\n")
        decisions = [f"{n},{int(v > 0.9)}" for n, v in zip(group.names, values, strict=True)]
        (scores / f"decision_result_{group.group}.csv").write_text("\n".join(decisions) + "\n")
    proc = cli("submit", scratch / "run", "--year", "2023", "--team", "Doe_UNI", "--out", scratch / "sub")
    ok = (
        one_error_line(proc, f"{bad_file}, line 6", "np.float64(0.98)", "not a finite number")
        and not (scratch / "sub" / "task2").exists()
    )
    return proc.returncode, ok, (proc.stderr.strip().splitlines() or [""])[-1][:110]


# -- 8: the service with the default detector ---------------------------------------------------------------
def serve_default_detector_quiet(scratch: Path) -> Outcome:
    import logging

    from fastapi.testclient import TestClient

    from asdkit.service.app import create_app
    from asdkit.service.models import load_served_models

    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    handler = Collect(level=logging.WARNING)
    logging.getLogger().addHandler(handler)
    try:
        with TestClient(create_app(load_served_models(trained_run("default")))) as client:
            clip = normal_test_clip().read_bytes()
            codes = [
                client.post("/score", files={"file": ("upload.wav", clip, "audio/wav")}).status_code
                for _ in range(5)
            ]
    finally:
        logging.getLogger().removeHandler(handler)
    ok = codes == [200] * 5 and not records
    return codes[-1], ok, f"5 uploads without a section: {len(records)} warning(s) {records[:1]}"


def bench_service_default_detector(scratch: Path) -> Outcome:
    """The benchmark used to hang on the default detector's model (a full stderr pipe)."""
    script = Path(__file__).resolve().parent / "bench_service.py"
    args = ["--model", str(trained_run("default")), "--clients", "1", "8", "--requests", "16"]
    proc = subprocess.run(
        [sys.executable, str(script), *args, "--time-limit", "20", "--clips", "4"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    rows = [line for line in proc.stdout.splitlines() if line.startswith("HTTP /score")]
    ok = proc.returncode == 0 and len(rows) == 2 and "server log: 0 warning line(s)" in proc.stdout
    return proc.returncode, ok, " | ".join(" ".join(r.split()[:5]) for r in rows) or proc.stderr[-100:]


def tiny_banks(scratch: Path) -> Outcome:
    """valve with 1 training clip, pump with 2, fan without section 01's target clips, default detector:
    valve is a named failure while the others finish (exit 3, "partial"), pump refuses to decide instead of
    flagging every normal clip, and fan's empty target domain is named."""
    from asdkit.data.synthetic import SyntheticSpec, generate

    data = generate(
        scratch / "data", layout="dcase2022", spec=SyntheticSpec.tiny(machines=("fan", "valve", "pump"))
    )
    for machine, keep in (("valve", 1), ("pump", 2)):
        for path in sorted((data / machine / "train").glob("*.wav"))[keep:]:
            path.unlink()
    for path in (data / "fan" / "train").glob("section_01_target_*.wav"):
        path.unlink()
    out = scratch / "run"
    proc = cli("run", "--data", data, "--out", out, "--no-plots", "--cache-dir", scratch / "cache")
    config = json.loads((out / "config.json").read_text()) if (out / "config.json").is_file() else {}
    pump_flags = [
        int(line.split(",")[1])
        for path in (out / "scores").glob("decision_result_pump_*.csv")
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    ok = (
        proc.returncode == 3
        and config.get("status") == "partial"
        and list(config.get("failed_machines", {})) == ["valve"]
        and "pump" in config.get("decisions_refused", {})
        and bool(pump_flags)
        and not all(pump_flags)
        and "fan section 01 target: no training clips" in proc.stderr
        and "Traceback" not in proc.stderr
    )
    return (
        proc.returncode,
        ok,
        f"status {config.get('status')}; pump flags {sum(pump_flags)}/{len(pump_flags)}",
    )


CASES: list[tuple[str, Callable[[Path], Outcome]]] = [
    ("odd: normal clip at 44.1/48 kHz, default detector", resampled_normal_clip),
    ("odd: 5,000-s 8-bit wav, score", long_clip_score),
    ("odd: 5,000-s 8-bit wav, service (413)", long_clip_service),
    ("odd: 5,000-s 8-bit wav, watch", long_clip_watch),
    ("odd: 5,000-s 8-bit wav among training clips", long_clip_training),
    ("odd: flipped bytes in weights.pt, score", damaged_weights_score),
    ("odd: flipped bytes in weights.pt, serve", damaged_weights_serve),
    ("odd: flipped bytes in weights.pt, watch", damaged_weights_watch),
    ("odd: model saved without checksums, score", model_without_checksums),
    ("odd: asdkit run --bogus", usage_bogus_option),
    ("odd: bare asdkit", usage_bare),
    ("odd: submit a np.float64(...) score row", submit_numpy_repr),
    ("odd: serve the default detector, uploads", serve_default_detector_quiet),
    ("odd: bench_service on the default detector", bench_service_default_detector),
    ("odd: banks of 1 and 2 clips, a domain without clips", tiny_banks),
]


def main() -> None:
    print_cases(CASES, passed="PASS")


if __name__ == "__main__":
    main()
