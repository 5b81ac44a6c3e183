"""The reconstruction view: a valid three-panel PNG from the API, the CLI, and one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from asdkit import api
from asdkit.data.manifest import Clip
from asdkit.detectors.base import ClipFeatures, Detector
from asdkit.detectors.reconstruction.conv_ae import ConvAeDetector
from asdkit.detectors.reconstruction.idnn import IdnnDetector
from asdkit.errors import AsdkitError
from asdkit.features.config import FeatureConfig
from asdkit.reports.reconstruction_plot import PANELS, plot_reconstruction, reconstruction_figure

CONFIG = FeatureConfig(n_mels=16)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny networks gain nothing from threads, and lose a lot to OpenMP waits on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _clips(n: int, frames: int = 40, seed: int = 0) -> ClipFeatures:
    rng = np.random.default_rng(seed)
    profile = np.linspace(-20, -60, CONFIG.n_mels)[:, None]
    arrays = [
        (profile + rng.normal(0, 1.0, size=(CONFIG.n_mels, frames))).astype(np.float32) for _ in range(n)
    ]
    return ClipFeatures(
        arrays, [Clip(path=f"/d/{i}.wav", machine="m", section="00") for i in range(n)], CONFIG
    )


@pytest.fixture(scope="module")
def conv_ae() -> ConvAeDetector:
    params = {"epochs": 2, "batch_size": 32, "accelerator": "cpu", "patch_frames": 16, "hop_frames": 8}
    return ConvAeDetector(**params).fit(_clips(10))


def test_png_is_a_valid_image_of_sensible_size(conv_ae, tmp_path):
    import matplotlib.image

    clip = _clips(1, frames=60, seed=1).arrays[0]
    clip[4:7, 30:] += 15.0
    path = plot_reconstruction(conv_ae, clip, tmp_path / "deep" / "view.png", title="synthetic")
    assert path == tmp_path / "deep" / "view.png" and path.is_file()
    image = matplotlib.image.imread(path)
    height, width = image.shape[:2]
    assert 500 <= height <= 2000 and 700 <= width <= 2500
    assert image.std() > 0.05  # something was drawn
    assert [p.name for p in path.parent.iterdir()] == ["view.png"]  # no temporary file left behind


def test_figure_has_the_three_panels_on_one_time_axis(conv_ae):
    clip = _clips(1, frames=50, seed=2).arrays[0]
    fig = reconstruction_figure(conv_ae, clip)
    panels = {ax.get_label(): ax for ax in fig.axes if ax.get_label() in PANELS}
    assert sorted(panels) == sorted(PANELS)
    limits = {tuple(np.round(ax.get_xlim(), 6)) for ax in panels.values()}
    assert len(limits) == 1  # aligned time axes
    step = CONFIG.hop_length / CONFIG.sample_rate
    assert limits.pop()[1] == pytest.approx(49.5 * step, abs=1e-6)
    lines = panels["error"].get_lines()
    assert len(lines) == 3  # per-frame error, clip score, threshold
    assert lines[2].get_ydata()[0] == pytest.approx(conv_ae.threshold_)


def test_idnn_view_leaves_the_edge_frames_blank_and_still_draws(tmp_path):
    detector = IdnnDetector(epochs=1, batch_size=128, accelerator="cpu", hidden=16).fit(_clips(4))
    assert plot_reconstruction(detector, _clips(1, seed=3).arrays[0], tmp_path / "i.png").is_file()


class _NotReconstruction(Detector):
    name = "density-stub"

    def _fit(self, X: ClipFeatures) -> None:
        pass

    def _score(self, X: ClipFeatures) -> np.ndarray:
        return np.zeros(len(X))


def test_a_model_that_does_not_reconstruct_is_a_one_line_error(tmp_path):
    detector = _NotReconstruction().fit(_clips(2))
    wav = tmp_path / "clip.wav"
    wav.write_bytes(b"")
    with pytest.raises(AsdkitError, match=r"needs a reconstruction model .*not 'density-stub'"):
        api.plot_reconstruction({"m": detector}, wav, tmp_path / "x.png")
    with pytest.raises(AsdkitError, match="reconstruction model"):
        plot_reconstruction(detector, _clips(1).arrays[0], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


# -- end to end through the CLI -----------------------------------------------------------------------------
def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asdkit", *args], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, Path, Path]:
    from asdkit.data.synthetic import SyntheticSpec, generate

    root = tmp_path_factory.mktemp("plot")
    spec = SyntheticSpec.tiny(machines=("fan",), sections=1, n_train_source=3, duration=1.0)
    data = generate(root / "data", spec=spec)
    cache = root / "cache"
    params = {"epochs": 1, "batch_size": 64, "accelerator": "cpu", "hidden": 16}
    api.train(data, root / "run", model="vae", params=params, cache_dir=cache)
    clip = sorted((data / "fan" / "test").glob("*anomaly*.wav"))[0]
    return root / "run", clip, cache


def test_cli_draws_into_the_run_directory(tiny_run):
    run, clip, cache = tiny_run
    proc = _cli("plot", "reconstruction", str(run), str(clip), "--cache-dir", str(cache))
    assert proc.returncode == 0, proc.stderr
    png = run / "plots" / f"reconstruction_{clip.stem}.png"
    assert png.is_file() and str(png) in proc.stdout


def test_cli_on_a_bad_model_prints_one_error_line(tiny_run, tmp_path):
    _, clip, cache = tiny_run
    proc = _cli("plot", "reconstruction", str(tmp_path), str(clip), "--cache-dir", str(cache))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "neither a model folder" in errors[0], proc.stderr
    assert not (tmp_path / "plots").exists()
