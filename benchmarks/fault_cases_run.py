"""Run-directory and exit-code faults for ``fault_audit.py`` (issue 14, items 1-7 and the small items).

Each case drives the CLI in a subprocess as a user's script would (a real SIGINT where it says Ctrl-C; see
``tests/helpers/faults.py``) and returns (exit code, ok?, note). The tiny data tree, its feature cache and
one complete run are built once and shared read-only; a case copies what it changes into its scratch folder.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers.faults import (
    DISK_FULL_AT_WEIGHTS,
    PAUSE_AFTER_FIRST_MODEL,
    PAUSE_IN_FEATURES,
    PAUSE_IN_TRAINING,
    Outcome,
    cli,
    dead_pid,
    error_lines,
    finish,
    free_port,
    interrupt,
    one_line_error,
    run_args,
    start_paused,
    tiny_tree,
)

Result = tuple[int, bool, str]
os.environ.setdefault("ASDKIT_TRACKING", "off")


@functools.cache
def shared() -> tuple[Path, Path, Path]:
    """(data tree, feature cache, a complete knn run), built once per audit."""
    root = Path(tempfile.mkdtemp(prefix="asdkit-fault-audit-shared-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    data, cache, run = tiny_tree(root / "data"), root / "cache", root / "complete"
    outcome = cli(*run_args(data, run, cache))
    if outcome.returncode != 0:
        raise RuntimeError(f"the reference run failed: {outcome.stderr.strip()}")
    return data, cache, run


def _status(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError):
        return {}


def _with_status(dest: Path, status: str) -> Path:
    shutil.copytree(shared()[2], dest)
    config = _status(dest)
    config["status"] = status
    (dest / "config.json").write_text(json.dumps(config))
    return dest


def _note(outcome: Outcome) -> str:
    errors = error_lines(outcome)
    if errors:
        return errors[0]
    warnings = [line for line in outcome.stderr.splitlines() if line.startswith("warning:")]
    lines = warnings or outcome.stderr.strip().splitlines()[-1:] or [""]
    return lines[0]


def _scores(run_dir: Path) -> dict[str, str]:
    folder = run_dir / "scores"
    return {p.name: p.read_text() for p in sorted(folder.iterdir())} if folder.is_dir() else {}


# -- 1. lock ---------------------------------------------------------------------------------------
def concurrent_runs(scratch: Path) -> Result:
    data, cache, _ = shared()
    out = scratch / "run"
    first = start_paused(*run_args(data, out, cache), prelude=PAUSE_AFTER_FIRST_MODEL, marker=scratch / "m")
    second = cli(*run_args(data, out, cache))
    finish(first)
    ok = one_line_error(second, "in use", f"PID {first.pid}")
    return second.returncode, ok, _note(second)


def stale_lock(scratch: Path) -> Result:
    data, cache, _ = shared()
    out = scratch / "run"
    out.mkdir()
    pid = dead_pid()
    (out / ".asdkit.lock").write_text(f"pid {pid} host gone\n")
    outcome = cli(*run_args(data, out, cache))
    ok = (
        outcome.returncode == 0
        and f"PID {pid}" in outcome.stderr
        and _status(out).get("status") == "complete"
    )
    return outcome.returncode, ok, _note(outcome)


# -- 2. reruns -------------------------------------------------------------------------------------
def rerun_refused(scratch: Path) -> Result:
    data, cache, run = shared()
    out = scratch / "run"
    shutil.copytree(run, out)
    outcome = cli(*run_args(data, out, cache, "--machine", "fan"))
    ok = one_line_error(outcome, "already holds a run", "--overwrite") and (out / "models" / "valve").is_dir()
    return outcome.returncode, ok, _note(outcome)


def rerun_overwrite(scratch: Path) -> Result:
    data, cache, run = shared()
    out = scratch / "run"
    shutil.copytree(run, out)
    outcome = cli(*run_args(data, out, cache, "--machine", "fan", "--overwrite"))
    models = sorted(p.name for p in (out / "models").iterdir())
    stale = [name for name in _scores(out) if "_fan_" not in name]
    ok = outcome.returncode == 0 and models == ["fan"] and not stale
    return outcome.returncode, ok, f"models {models}, stale score files {len(stale)}"


def reader_warns(command: str) -> Callable[[Path], Result]:
    def case(scratch: Path) -> Result:
        broken = _with_status(scratch / "run", "interrupted")
        outcome = cli(command, str(broken))
        named = "warning:" in outcome.stderr and "status: interrupted" in outcome.stderr
        ok = named and (outcome.returncode == 0 or one_line_error(outcome))
        return outcome.returncode, ok, "warns: " + ("status: interrupted" if named else "nothing")

    return case


def serve_model_status(scratch: Path) -> Result:
    from fastapi.testclient import TestClient

    from asdkit.service.app import create_app
    from asdkit.service.models import load_served_models

    broken = _with_status(scratch / "run", "interrupted")
    with TestClient(create_app(load_served_models(broken))) as client:
        response = client.get("/model", params={"model": "fan"})
    body = response.json()
    ok = response.status_code == 200 and body.get("run_status") == "interrupted" and "warning" in body
    return response.status_code, ok, f"HTTP status; run_status={body.get('run_status')!r}"


# -- 3./4. status and Ctrl-C -----------------------------------------------------------------------
FAIL_AT_SCORES = """
from asdkit.reports import submission
def write_scores(*args, **kwargs):
    raise RuntimeError("injected failure while writing the scores")
submission.write_scores = write_scores
"""


def error_marks_failed(scratch: Path) -> Result:
    data, cache, _ = shared()
    out = scratch / "run"
    outcome = cli(*run_args(data, out, cache), prelude=FAIL_AT_SCORES)
    config = _status(out)
    ok = (
        outcome.returncode != 0 and config.get("status") == "failed" and "injected" in config.get("error", "")
    )
    return outcome.returncode, ok, f"status {config.get('status')!r}: {config.get('error', '')[:50]}"


def ctrl_c_run(prelude: str, *extra: str, fresh_cache: bool = False) -> Callable[[Path], Result]:
    def case(scratch: Path) -> Result:
        data, cache, _ = shared()
        out = scratch / "run"
        args = run_args(data, out, scratch / "cache" if fresh_cache else cache, *extra)
        outcome = interrupt(*args, prelude=prelude, marker=scratch / "marker")
        status = _status(out).get("status")
        ok = (
            outcome.returncode == 130
            and "interrupted" in outcome.stderr
            and status == "interrupted"
            and not (out / "result.csv").exists()
        )
        return outcome.returncode, ok, f"status {status!r}, result.csv {(out / 'result.csv').exists()}"

    return case


def ctrl_c_score(scratch: Path) -> Result:
    data, _, run = shared()
    output = scratch / "scores.csv"
    args = [
        "score",
        str(run),
        str(data / "fan" / "test"),
        "-o",
        str(output),
        "--cache-dir",
        str(scratch / "c"),
    ]
    outcome = interrupt(*args, prelude=PAUSE_IN_FEATURES, marker=scratch / "marker")
    left = [p.name for p in scratch.iterdir() if "scores.csv" in p.name]
    ok = outcome.returncode == 130 and "interrupted" in outcome.stderr and not left
    return outcome.returncode, ok, f"files left: {left}"


# -- 5. resume -------------------------------------------------------------------------------------
def resume_equals_full_run(scratch: Path) -> Result:
    data, cache, run = shared()
    out = scratch / "run"
    args = run_args(data, out, cache)
    stopped = interrupt(*args, prelude=PAUSE_AFTER_FIRST_MODEL, marker=scratch / "marker")
    trained = sorted(p.name for p in (out / "models").iterdir()) if (out / "models").is_dir() else []
    resumed = cli(*args, "--resume")
    result = (out / "result.csv").read_text() if (out / "result.csv").is_file() else None
    same = _scores(out) == _scores(run) and result == (run / "result.csv").read_text()
    ok = stopped.returncode == 130 and trained == ["fan"] and resumed.returncode == 0 and same
    return (
        resumed.returncode,
        ok,
        f"kept {trained}, Ctrl-C exit {stopped.returncode}, equal to full run: {same}",
    )


def resume_other_config(scratch: Path) -> Result:
    data, cache, _ = shared()
    out = _with_status(scratch / "run", "interrupted")
    outcome = cli(*run_args(data, out, cache, "--resume", "--param", "k=2"))
    ok = one_line_error(outcome, "params.k") and _status(out).get("status") == "interrupted"
    return outcome.returncode, ok, _note(outcome)


# -- 6./7. parameters and seeds --------------------------------------------------------------------
def bad_param(model: str, param: str, needle: str) -> Callable[[Path], Result]:
    def case(scratch: Path) -> Result:
        data, cache, _ = shared()
        out = scratch / "run"
        outcome = cli(*run_args(data, out, cache, "--model", model, "--param", param), timeout=120)
        ok = one_line_error(outcome, param.split("=")[0], needle) and not out.exists()
        return outcome.returncode, ok, _note(outcome)

    return case


def huge_seeds(scratch: Path) -> Result:
    data, cache, _ = shared()
    outcome = cli(*run_args(data, scratch / "run", cache, "--seeds", "0-999999999"), timeout=120)
    return outcome.returncode, one_line_error(outcome, "--seeds", "at most"), _note(outcome)


# -- 14. smaller -----------------------------------------------------------------------------------
def unreachable_tracking(scratch: Path) -> Result:
    data, cache, _ = shared()
    uri = f"http://127.0.0.1:{free_port()}"
    start = time.perf_counter()
    try:
        outcome = cli(
            *run_args(data, scratch / "run", cache, "--tracking-uri", uri), env={"ASDKIT_TRACKING": "on"}
        )
    except subprocess.TimeoutExpired:
        return -1, False, "still retrying after 300 s"
    seconds = time.perf_counter() - start
    ok = outcome.returncode == 0 and "tracking failed" in outcome.stderr and seconds < 60
    return outcome.returncode, ok, f"{seconds:.1f} s in all: {_note(outcome)}"


def serve_bad_port(scratch: Path) -> Result:
    try:
        outcome = cli("serve", str(shared()[2]), "--port", "70000", timeout=60)
    except subprocess.TimeoutExpired:
        return -1, False, "started serving"
    return outcome.returncode, one_line_error(outcome, "70000", "65535"), _note(outcome)


def full_disk_injected(scratch: Path) -> Result:
    data, cache, _ = shared()
    out = scratch / "run"
    outcome = cli(*run_args(data, out, cache), prelude=DISK_FULL_AT_WEIGHTS)
    ok = one_line_error(outcome, "no space left on device writing") and _status(out).get("status") == "failed"
    return outcome.returncode, ok, _note(outcome)


def full_disk_tmpfs(scratch: Path) -> Result:
    """A real full file system: a 256 KiB tmpfs as --out (needs root to mount)."""
    data, cache, _ = shared()
    mount = scratch / "tiny-disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], check=True)
    try:
        (mount / "filler").write_bytes(b"\0" * 200_000)
        outcome = cli(*run_args(data, mount / "run", cache))
    finally:
        subprocess.run(["umount", str(mount)], check=False)
    return outcome.returncode, one_line_error(outcome, "no space left on device writing"), _note(outcome)


def service_error_text(scratch: Path) -> Result:
    from fastapi.testclient import TestClient

    from asdkit.service.app import create_app
    from asdkit.service.models import load_served_models

    with TestClient(create_app(load_served_models(shared()[2]))) as client:
        response = client.post("/score", params={"model": "fan"}, files={"file": ("bad.wav", b"RIFF?" * 9)})
    error = response.json().get("error", "")
    ok = response.status_code == 400 and "bad.wav" in error and "object at 0x" not in error
    return response.status_code, ok, f"HTTP status: {error[:70]}"


def _can_mount() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("mount") is not None


CASES: list[tuple[str, Callable[[Path], Result]]] = [
    ("run: two concurrent runs into one --out", concurrent_runs),
    ("run: stale lock of a dead PID", stale_lock),
    ("run: rerun into a run without --overwrite", rerun_refused),
    ("run: rerun --machine fan --overwrite", rerun_overwrite),
    ("evaluate: an interrupted run", reader_warns("evaluate")),
    ("report: an interrupted run", reader_warns("report")),
    ("compare: an interrupted run", reader_warns("compare")),
    ("serve: GET /model of an interrupted run", serve_model_status),
    ("run: an error after training", error_marks_failed),
    ("run: Ctrl-C in feature extraction", ctrl_c_run(PAUSE_IN_FEATURES, fresh_cache=True)),
    ("run: Ctrl-C in training (ae)", ctrl_c_run(PAUSE_IN_TRAINING, "--model", "ae", "--debug")),
    ("run: Ctrl-C after the first model", ctrl_c_run(PAUSE_AFTER_FIRST_MODEL)),
    ("score: Ctrl-C with --output", ctrl_c_score),
    ("run: Ctrl-C after fan, then --resume", resume_equals_full_run),
    ("run: --resume with another --param", resume_other_config),
    ("run: --param epochs=-1", bad_param("ae", "epochs=-1", ">= 1")),
    ("run: --param epochs=0", bad_param("ae", "epochs=0", ">= 1")),
    ("run: --param epochs=abc", bad_param("ae", "epochs=abc", "integer")),
    ("run: --param epochs=1.5", bad_param("ae", "epochs=1.5", "integer")),
    ("run: --param learning_rate=-0.1", bad_param("ae", "learning_rate=-0.1", "> 0")),
    ("run: --param k=0 (knn)", bad_param("knn", "k=0", ">= 1")),
    ("run: --param nope=1", bad_param("knn", "nope=1", "no such parameter")),
    ("run: --seeds 0-999999999", huge_seeds),
    ("run: unreachable --tracking-uri", unreachable_tracking),
    ("serve: --port 70000", serve_bad_port),
    ("run: disk full writing weights (injected)", full_disk_injected),
    ("service: a broken upload's error text", service_error_text),
]
if _can_mount():
    CASES.append(("run: --out on a full tmpfs", full_disk_tmpfs))
