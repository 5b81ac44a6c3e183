"""Declared inputs: detector tags, the fit/score bundle built from them, a front end added from outside."""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

from asdkit import api
from asdkit.data.manifest import Clip
from asdkit.detectors import registry
from asdkit.detectors.base import ClipFeatures, Detector
from asdkit.detectors.inputs import fit_bundle
from asdkit.detectors.registry import available_detectors, create_detector, get_detector_class
from asdkit.detectors.tags import PROXY_KINDS, SECTION_USES, DetectorTags
from asdkit.errors import DataError, ModelError
from asdkit.features import frontends
from asdkit.features.config import FeatureConfig
from asdkit.features.frontends import FrontEnd, get_front_end
from asdkit.features.spectrum import SpectrumConfig
from tests.helpers.trees import make_tree

CONFIG = FeatureConfig(n_mels=16)
#: Parameters that keep every detector's fit to seconds, where a detector has them.
QUICK = {"epochs": 1, "batch_size": 256, "accelerator": "cpu", "hidden": 16, "n_blocks": 1, "n_models": 1}
TWO_BRANCH = {"inputs": "spectrum+logmel", "spectrum_fft": 256}


def _features(n: int, rng: np.random.Generator, machine: str = "m", frames: int = 40) -> ClipFeatures:
    profile = np.linspace(-20, -60, CONFIG.n_mels)[:, None]
    arrays, clips = [], []
    for i in range(n):
        x = profile + rng.normal(0, 1.0, size=(CONFIG.n_mels, frames))
        x[2 + 3 * (i % 2)] += 8.0
        arrays.append(x.astype(np.float32))
        clips.append(Clip(path=f"/data/{machine}/{i}.wav", machine=machine, section=f"0{i % 2}"))
    return ClipFeatures(arrays, clips, CONFIG)


def _quick(name: str, **overrides: object) -> Detector:
    known = get_detector_class(name)().get_params()
    return create_detector(name, **{k: v for k, v in (QUICK | overrides).items() if k in known})  # type: ignore[return-value]


# -- tags ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", available_detectors())
def test_every_detector_declares_valid_tags_and_the_configs_of_its_inputs(name):
    detector = create_detector(name)
    tags = detector.tags()  # type: ignore[attr-defined]
    assert isinstance(tags, DetectorTags) and tags.inputs[0] == "logmel"
    assert tags.proxies <= set(PROXY_KINDS) and tags.sections in SECTION_USES
    assert set(detector.input_configs(CONFIG)) == set(tags.inputs) - {"logmel"}  # type: ignore[attr-defined]
    for input_name in tags.inputs:
        get_front_end(input_name)  # every declared input is a registered front end


@pytest.mark.parametrize(
    ("name", "params"),
    # the detectors that read the audio itself (finetune) check this on waveforms in test_finetune.py
    [(n, {}) for n in available_detectors() if "waveform" not in create_detector(n).tags().inputs]
    + [("ae", {"score": "selective_mahalanobis"})],
)
def test_a_detectors_use_of_sections_is_what_its_tags_say(name, params):
    """``condition``: a clip of an unknown section cannot be scored; ``banks``/``none``: it can."""
    detector = _quick(name, **params).fit(_features(24, np.random.default_rng(0)))
    unknown = _features(2, np.random.default_rng(1))
    unknown = replace(unknown, clips=[replace(c, section="") for c in unknown.clips])
    if detector.tags().sections == "condition":
        with pytest.raises((DataError, ModelError), match="section"):
            detector.anomaly_score(unknown)
    else:
        assert np.all(np.isfinite(detector.anomaly_score(unknown)))


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("arcface", TWO_BRANCH),
        ("adacos", TWO_BRANCH),
        ("ensemble", {"members": ["knn", {"model": "arcface", "params": {"epochs": 1, **TWO_BRANCH}}]}),
    ],
)
def test_fitting_without_a_declared_input_is_a_clear_error(name, params):
    detector = _quick(name, **params)
    assert "spectrum" in detector.tags().inputs
    with pytest.raises(ModelError, match=r"reads input 'spectrum' beside the log-mel.*lack it"):
        detector.fit(_features(12, np.random.default_rng(0)))


def test_tags_refuse_what_no_bundle_can_give():
    with pytest.raises(ValueError, match="must include 'logmel'"):
        DetectorTags(inputs=("spectrum",))
    with pytest.raises(ValueError, match="proxies must be among"):
        DetectorTags(proxies=frozenset({"other_planets"}))
    with pytest.raises(ValueError, match="sections must be one of"):
        DetectorTags(sections="sometimes")
    merged = DetectorTags(sections="banks").merged(DetectorTags(("logmel", "x"), frozenset({"machines"})))
    assert merged == DetectorTags(("logmel", "x"), frozenset({"machines"}), "banks")


def test_a_proxy_bundle_must_match_its_clips():
    X = _features(4, np.random.default_rng(0))
    other = _features(2, np.random.default_rng(1), machine="o")
    assert X.subset([0, 1]).proxy is None
    kept = replace(X, proxy=other).subset([0])
    assert kept.proxy is other and len(kept) == 1  # cross-fitting folds keep the proxies
    with pytest.raises(ValueError, match="proxy clips must have the features"):
        replace(X, proxy=replace(other, config=FeatureConfig(n_mels=8)))


# -- the bundle from real clips ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return make_tree(tmp_path_factory.mktemp("tree"), "dcase2022", machines=("fan", "pump"), n_train=3)


def _train_clips(tree: Path, machine: str) -> list[Clip]:
    return [c for c in api.scan_data(tree).filter(split="train", machine=machine)]


def test_the_fit_bundle_brings_other_machine_types_only_to_detectors_that_ask(tree, tmp_path):
    clips = _train_clips(tree, "fan")
    pool_calls: list[int] = []

    def pool() -> list[Clip]:
        pool_calls.append(1)
        return [c for c in api.scan_data(tree).filter(split="train")]

    asks = _quick("arcface")
    X, skipped = fit_bundle(asks, clips, CONFIG, pool, tmp_path / "cache")
    assert not skipped and len(X) == len(clips)
    assert X.proxy is not None and {c.machine for c in X.proxy.clips} == {"pump"}
    assert len(X.proxy) == len(_train_clips(tree, "pump"))

    X, _ = fit_bundle(create_detector("knn"), clips, CONFIG, pool, tmp_path / "cache")  # type: ignore[arg-type]
    assert X.proxy is None and pool_calls == [1]  # the pool is not even read for a detector without proxies


def test_a_spectrum_comes_in_the_bundle_only_when_declared(tree, tmp_path):
    clips = _train_clips(tree, "fan")[:2]
    plain, _ = fit_bundle(_quick("arcface"), clips, CONFIG, None, tmp_path / "cache")
    assert plain.inputs == {} and plain.arrays_of("spectrum") is None
    two = _quick("arcface", **TWO_BRANCH)
    X, _ = fit_bundle(two, clips, CONFIG, None, tmp_path / "cache")
    wanted = SpectrumConfig(CONFIG.sample_rate, n_fft=256, channel=CONFIG.channel)
    assert X.input_configs() == {"spectrum": wanted}
    assert [a.shape for a in X.arrays_of("spectrum")] == [(1, wanted.n_bins)] * 2  # type: ignore[union-attr]


# -- a front end added from outside: a per-clip RMS-energy envelope ----------------------------------------
@dataclass(frozen=True)
class RmsConfig:
    sample_rate: int = 16000
    frame_length: int = 1024
    channel: int | str = 0


class RmsEnvelope(torch.nn.Module):
    def __init__(self, frame_length: int) -> None:
        super().__init__()
        self.frame_length = frame_length

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        frames = wave.unfold(-1, self.frame_length, self.frame_length)
        return frames.square().mean(-1).sqrt().unsqueeze(-2).float()  # [..., 1, n_frames]


class RmsFrontEnd(FrontEnd):
    name = "rms"
    config_type = RmsConfig

    def module(self, device: str = "cpu") -> torch.nn.Module:
        return RmsEnvelope(self.config.frame_length).to(device)


class LoudnessDetector(Detector):
    """Distance of a clip's mean RMS energy to the training clips' (reads the toy front end)."""

    name: ClassVar[str] = "toy_loudness"

    def __init__(self, frame_length: int = 1024) -> None:
        self.frame_length = frame_length

    def tags(self) -> DetectorTags:
        return replace(super().tags(), inputs=("logmel", "rms"))

    def _input_options(self, name: str) -> dict[str, object]:
        return {"frame_length": self.frame_length}

    def _fit(self, X: ClipFeatures) -> None:
        self.mean_ = float(np.mean([a.mean() for a in X.arrays_of("rms")]))  # type: ignore[union-attr]

    def _score(self, X: ClipFeatures) -> np.ndarray:
        return np.abs(np.array([a.mean() for a in X.arrays_of("rms")]) - self.mean_)  # type: ignore[union-attr]


def test_a_front_end_and_a_detector_registered_from_outside_train_and_score_through_the_api(
    tree, tmp_path, monkeypatch
):
    monkeypatch.setitem(frontends._REGISTRY, "rms", RmsFrontEnd)
    monkeypatch.setitem(registry._REGISTRY, "toy_loudness", LoudnessDetector)
    cache = tmp_path / "cache"
    models = api.train(
        tree, model="toy_loudness", params={"frame_length": 512}, features=CONFIG, cache_dir=cache
    )
    assert set(models) == {"fan", "pump"} and all(np.isfinite(m.threshold_) for m in models.values())
    folders = {p.name.split("-")[0] for p in cache.iterdir()}
    assert "rms" in folders  # cached in its own folder, keyed by its config
    test = sorted((tree / "fan" / "test").glob("*.wav"))
    scored, skipped = api.score(models, test, machine="fan", cache_dir=cache)
    assert not skipped and len(scored) == len(test) and all(np.isfinite(s.score) for s in scored)


# -- no detector module imports the API ----------------------------------------------------------------------
def test_no_detector_module_imports_the_api():
    folder = Path(__file__).parents[2] / "src" / "asdkit" / "detectors"
    paths = sorted(folder.rglob("*.py"))
    assert len(paths) > 20 and any(p.parent != folder for p in paths)  # the family folders are read too
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [f"{node.module}.{a.name}" for a in node.names]
                assert not any(n.startswith("asdkit.api") for n in [node.module or "", *names]), path.name
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("asdkit.api") for a in node.names), path.name


def test_an_ensemble_fits_and_loads_with_the_api_blocked(tmp_path):
    script = f"""
import sys
sys.modules["asdkit.api"] = None  # any import of it fails
import numpy as np
from asdkit.data.manifest import Clip
from asdkit.detectors.base import ClipFeatures, Detector
from asdkit.detectors.ensemble import EnsembleDetector
from asdkit.features.config import FeatureConfig
rng = np.random.default_rng(0)
arrays = [rng.normal(size=(8, 20)).astype(np.float32) for _ in range(12)]
clips = [Clip(path=f"/m/{{i}}.wav", machine="m", section="00") for i in range(12)]
X = ClipFeatures(arrays, clips, FeatureConfig(n_mels=8))
saved = EnsembleDetector(members=["knn", "mahalanobis"]).fit(X).save(r"{tmp_path / "ens"}")
print(Detector.load(saved).anomaly_score(X).shape)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(12,)"
