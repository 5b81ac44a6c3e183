"""The run directory and the exit code tell the truth (issue 14, items 1-7 and the small items).

Each test is one fault a plant engineer's script can meet: two runs into one folder, a rerun, an error, a
Ctrl-C (a real SIGINT, sent at a chosen moment: ``tests/helpers/faults.py``), a resume, a bad parameter, a
huge seed list, an unreachable tracking server, an impossible port, a full disk, a bad upload. Those that
depend on what a detector saves (resume, a full disk) run on one representative of every family
(``tests/helpers/families.py``; the family is the test id), the default included.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from asdkit import api
from asdkit.detectors.registry import available_detectors
from asdkit.errors import AsdkitError
from asdkit.rundir import LOCK_NAME, RunDirectory
from tests.helpers.checkpoints import readable_checkpoints, with_checkpoint
from tests.helpers.families import FAMILIES, FAMILY_IDS, cli_params
from tests.helpers.faults import (
    DISK_FULL_AT_WEIGHTS,
    PAUSE_AFTER_FIRST_MODEL,
    PAUSE_IN_FEATURES,
    PAUSE_IN_TRAINING,
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


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return tiny_tree(tmp_path_factory.mktemp("faults") / "data")


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def complete_run(tree, cache, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("complete") / "run"
    outcome = cli(*run_args(tree, out, cache))
    assert outcome.returncode == 0, outcome.stderr
    return out


def status(run_dir: Path) -> dict:
    return json.loads((run_dir / "config.json").read_text())


def copy_with_status(run_dir: Path, dest: Path, new_status: str) -> Path:
    shutil.copytree(run_dir, dest)
    config = status(dest)
    config["status"] = new_status
    (dest / "config.json").write_text(json.dumps(config))
    return dest


def score_files(run_dir: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((run_dir / "scores").iterdir())}


# -- 1. lock ---------------------------------------------------------------------------------------
def test_a_second_run_into_a_locked_directory_fails_naming_the_holder(tree, cache, tmp_path):
    out = tmp_path / "run"
    with RunDirectory(out):
        outcome = cli(*run_args(tree, out, cache))
        assert one_line_error(outcome, "in use", f"PID {os.getpid()}"), outcome.stderr
        assert not (out / "config.json").exists()
    assert not (out / LOCK_NAME).exists()  # released on exit


def test_of_two_concurrent_runs_into_one_directory_the_second_refuses(tree, cache, tmp_path):
    out = tmp_path / "run"
    args = run_args(tree, out, cache)
    first = start_paused(*args, prelude=PAUSE_AFTER_FIRST_MODEL, marker=tmp_path / "marker")
    second = cli(*run_args(tree, out, cache, "--machine", "fan"))
    first_outcome = finish(first)  # Ctrl-C to the first, still holding the directory
    assert one_line_error(second, "in use", f"PID {first.pid}"), second.stderr
    assert first_outcome.returncode == 130, first_outcome.stderr
    assert status(out)["machines"] == ["fan", "valve"]  # the first run's record, untouched by the second


def test_a_stale_lock_of_a_dead_process_is_taken_over_with_a_warning(tree, cache, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    pid = dead_pid()
    (out / LOCK_NAME).write_text(f"pid {pid} host somewhere\n")
    outcome = cli(*run_args(tree, out, cache))
    assert outcome.returncode == 0, outcome.stderr
    assert "taking over the lock" in outcome.stderr and f"PID {pid}" in outcome.stderr
    assert status(out)["status"] == "complete"
    assert not (out / LOCK_NAME).exists()


# -- 2. reruns -------------------------------------------------------------------------------------
def test_a_rerun_without_overwrite_refuses_and_touches_nothing(tree, cache, complete_run):
    before = {p: p.stat().st_mtime_ns for p in complete_run.rglob("*")}
    outcome = cli(*run_args(tree, complete_run, cache))
    assert one_line_error(outcome, str(complete_run), "already holds a run", "--overwrite"), outcome.stderr
    assert {p: p.stat().st_mtime_ns for p in complete_run.rglob("*")} == before


def test_overwrite_removes_every_old_output_first(tree, cache, complete_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(complete_run, out)
    (out / "my_notes.txt").write_text("not asdkit's")
    outcome = cli(*run_args(tree, out, cache, "--machine", "fan", "--overwrite"))
    assert outcome.returncode == 0, outcome.stderr
    assert sorted(p.name for p in (out / "models").iterdir()) == ["fan"]
    assert all("_fan_" in name for name in score_files(out))
    assert status(out)["machines"] == ["fan"] and status(out)["status"] == "complete"
    assert (out / "my_notes.txt").read_text() == "not asdkit's"


def test_readers_warn_about_a_run_that_is_not_complete(complete_run, tmp_path):
    from fastapi.testclient import TestClient

    from asdkit.service.app import create_app
    from asdkit.service.models import load_served_models

    broken = copy_with_status(complete_run, tmp_path / "broken", "interrupted")
    for args in (["evaluate", str(broken)], ["report", str(broken)]):  # they read it, with a warning
        outcome = cli(*args)
        assert outcome.returncode == 0, outcome.stderr
        assert "warning:" in outcome.stderr and "status: interrupted" in outcome.stderr, args
    compared = cli("compare", str(broken))  # a comparison needs a finished evaluation: it refuses
    assert one_line_error(compared, str(broken), "did not complete with an evaluation"), compared.stderr
    assert "warning:" in compared.stderr and "status: interrupted" in compared.stderr
    assert "status:" not in cli("evaluate", str(complete_run)).stderr
    with TestClient(create_app(load_served_models(broken))) as client:
        described = client.get("/model", params={"model": "fan"}).json()
    assert described["run_status"] == "interrupted" and "not complete" in described["warning"]


# -- 3. status -------------------------------------------------------------------------------------
def test_an_error_marks_the_run_failed_with_the_reason(tree, cache, tmp_path, monkeypatch):
    from asdkit.reports import submission

    def boom(*args, **kwargs):
        raise RuntimeError("the scores could not be written\nsecond line")

    monkeypatch.setattr(submission, "write_scores", boom)
    with pytest.raises(RuntimeError):
        api.run(tree, tmp_path / "run", model="knn", cache_dir=cache)
    config = status(tmp_path / "run")
    assert config["status"] == "failed"
    assert config["error"] == "RuntimeError: the scores could not be written"
    assert not (tmp_path / "run" / LOCK_NAME).exists()


def test_an_interrupt_marks_the_run_interrupted(tree, cache, tmp_path, monkeypatch):
    from asdkit.reports import submission

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(submission, "write_scores", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        api.run(tree, tmp_path / "run", model="knn", cache_dir=cache)
    assert status(tmp_path / "run")["status"] == "interrupted"


# -- 4. Ctrl-C -------------------------------------------------------------------------------------
def test_ctrl_c_during_feature_extraction_exits_130(tree, tmp_path):
    out = tmp_path / "run"
    args = run_args(tree, out, tmp_path / "fresh-cache")
    outcome = interrupt(*args, prelude=PAUSE_IN_FEATURES, marker=tmp_path / "marker")
    assert outcome.returncode == 130, outcome.stderr
    assert "interrupted" in outcome.stderr and "Traceback" not in outcome.stderr
    assert status(out)["status"] == "interrupted"
    assert not (out / "result.csv").exists() and not (out / "scores").exists()


def test_ctrl_c_during_score_exits_130_and_writes_no_file(tree, complete_run, tmp_path):
    output = tmp_path / "scores.csv"
    clips = tree / "fan" / "test"
    args = [
        "score",
        str(complete_run),
        str(clips),
        "--output",
        str(output),
        "--cache-dir",
        str(tmp_path / "c"),
    ]
    outcome = interrupt(*args, prelude=PAUSE_IN_FEATURES, marker=tmp_path / "marker")
    assert outcome.returncode == 130, outcome.stderr
    assert "interrupted" in outcome.stderr
    assert list(tmp_path.glob("*scores.csv*")) == []


def test_ctrl_c_during_training_exits_130(tree, cache, tmp_path):
    out = tmp_path / "run"
    args = [*run_args(tree, out, cache, "--debug"), "--model", "ae", "--param", "accelerator=cpu"]
    outcome = interrupt(*args, prelude=PAUSE_IN_TRAINING, marker=tmp_path / "marker")
    assert outcome.returncode == 130, outcome.stderr
    assert "interrupted" in outcome.stderr and "Traceback" not in outcome.stderr
    assert status(out)["status"] == "interrupted"


# -- 5. resume -------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILY_IDS)
def test_resume_after_ctrl_c_keeps_the_trained_machine_and_equals_a_full_run(family, tree, cache, tmp_path):
    model = FAMILIES[family]
    family_args = ["--model", model, "--debug", *cli_params(model)]
    full = tmp_path / "full"
    complete = cli(*run_args(tree, full, cache, *family_args))
    assert complete.returncode == 0, complete.stderr
    out = tmp_path / "run"
    args = run_args(tree, out, cache, *family_args)
    outcome = interrupt(*args, prelude=PAUSE_AFTER_FIRST_MODEL, marker=tmp_path / "marker")
    assert outcome.returncode == 130, outcome.stderr
    assert status(out)["status"] == "interrupted"
    assert sorted(p.name for p in (out / "models").iterdir()) == ["fan"]
    fan_model = (out / "models" / "fan" / "model.json").stat().st_mtime_ns

    refused = cli(*args)
    assert one_line_error(refused, "status: interrupted", "--resume"), refused.stderr

    resumed = cli(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert (out / "models" / "fan" / "model.json").stat().st_mtime_ns == fan_model  # kept, not retrained
    assert (out / "models" / "valve" / "model.json").is_file()
    assert status(out)["status"] == "complete" and status(out)["model"] == model
    assert score_files(out) == score_files(full)
    assert (out / "result.csv").read_text() == (full / "result.csv").read_text()


def test_resume_refuses_a_different_configuration_naming_the_key(tree, cache, complete_run, tmp_path):
    out = copy_with_status(complete_run, tmp_path / "run", "interrupted")
    shutil.rmtree(out / "models" / "valve")
    outcome = cli(*run_args(tree, out, cache, "--resume", "--param", "k=2"))
    assert one_line_error(outcome, "--resume", "params.k", "1", "2"), outcome.stderr
    assert status(out)["status"] == "interrupted"  # the refused resume did not mark the old run


# -- 6. parameters ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("param", "needle"),
    [
        ("epochs=-1", ">= 1"),
        ("epochs=0", ">= 1"),
        ("epochs=abc", "integer"),
        ("epochs=1.5", "integer"),
        ("learning_rate=0", "> 0"),
        ("validation_fraction=1", "[0, 1)"),
        ("standardise=maybe", "true or false"),
        ("epoch=3", "no such parameter"),
    ],
)
def test_a_bad_parameter_fails_before_any_work(tree, cache, tmp_path, param, needle):
    out = tmp_path / "run"
    outcome = cli(*run_args(tree, out, cache, "--model", "ae", "--param", param), timeout=60)
    assert one_line_error(outcome, f"--param {param.split('=')[0]}", needle), outcome.stderr
    assert not out.exists()


def test_the_api_checks_parameters_before_touching_the_run_directory(tree, complete_run, tmp_path):
    with pytest.raises(AsdkitError, match="epochs"):
        api.run(tree, complete_run, model="ae", params={"epochs": 0}, overwrite=True)
    assert status(complete_run)["status"] == "complete"  # --overwrite removed nothing


@pytest.mark.parametrize("name", available_detectors())
def test_every_detector_accepts_its_own_defaults(name, tmp_path):
    """With the checkpoint an encoder's detector cannot do without (``finetune``)."""
    from asdkit.detectors.params import validate_params
    from asdkit.detectors.registry import get_detector_class

    defaults = get_detector_class(name)().get_params()
    given = with_checkpoint(name, defaults, readable_checkpoints(tmp_path))
    assert validate_params(name, given) == given


# -- 7. seeds --------------------------------------------------------------------------------------
def test_a_huge_seed_range_is_refused_without_building_it(tree, cache, tmp_path):
    outcome = cli(*run_args(tree, tmp_path / "run", cache, "--seeds", "0-999999999"), timeout=60)
    assert one_line_error(outcome, "--seeds", "1000000000 seeds", "at most 100"), outcome.stderr


# -- 14. smaller -----------------------------------------------------------------------------------
def test_an_unreachable_tracking_server_fails_fast_with_a_warning(tree, cache, tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"
    args = run_args(tree, tmp_path / "run", cache, "--tracking-uri", uri)
    outcome = cli(*args, env={"ASDKIT_TRACKING": "on"}, timeout=90)  # MLflow's own retries: minutes
    assert outcome.returncode == 0, outcome.stderr
    assert "warning: experiment tracking failed (cannot reach 127.0.0.1" in outcome.stderr
    assert status(tmp_path / "run")["status"] == "complete"


def test_serve_refuses_a_port_beyond_65535(complete_run):
    outcome = cli("serve", str(complete_run), "--port", "70000", timeout=60)
    assert one_line_error(outcome, "--port 70000", "1 to 65535"), outcome.stderr


@pytest.mark.parametrize("family", FAMILY_IDS)
def test_a_full_disk_names_the_file_and_fails_the_run(family, tree, cache, tmp_path):
    model = FAMILIES[family]
    out = tmp_path / "run"
    args = run_args(tree, out, cache, "--model", model, "--debug", "--machine", "fan", *cli_params(model))
    outcome = cli(*args, prelude=DISK_FULL_AT_WEIGHTS)
    assert one_line_error(outcome, "no space left on device writing", str(out / "models")), outcome.stderr
    assert error_lines(outcome)[0].endswith(("weights.pt", "arrays.npz")), outcome.stderr
    assert status(out)["status"] == "failed" and "no space left" in status(out)["error"]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_torch_save_on_a_full_disk_is_a_one_line_error(tmp_path, monkeypatch):
    import torch

    from asdkit.errors import DiskFullError
    from asdkit.utils import io as asdkit_io

    def full_device(fd: int, mode: str, **kwargs: object):
        os.close(fd)
        return open("/dev/full", mode)

    monkeypatch.setattr(asdkit_io.os, "fdopen", full_device)
    target = tmp_path / "weights.pt"
    message = f"no space left on device writing {target}"
    with pytest.raises(DiskFullError, match=message), asdkit_io.atomic_open(target, "wb") as f:
        torch.save({"w": torch.zeros(100_000)}, f)
    assert list(tmp_path.iterdir()) == []


def test_service_errors_name_the_upload_not_a_stream_object(complete_run):
    from fastapi.testclient import TestClient

    from asdkit.service.app import create_app
    from asdkit.service.models import load_served_models

    with TestClient(create_app(load_served_models(complete_run))) as client:
        response = client.post(
            "/score", params={"model": "fan"}, files={"file": ("broken.wav", b"RIFF-not-a-wav" * 4)}
        )
    assert response.status_code == 400
    error = response.json()["error"]
    assert "broken.wav" in error and "_io." not in error and "object at 0x" not in error
