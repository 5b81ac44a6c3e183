"""Proxy outliers, section conditioning and per-section normalisation of the density detectors."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from asdkit.data.manifest import Clip
from asdkit.detectors.base import CONFIG_NAME, ClipFeatures, Detector
from asdkit.detectors.density.family import SectionDensityDetector
from asdkit.detectors.frames import ItemStream
from asdkit.detectors.proxy import ProxyBatches, partner_indices
from asdkit.detectors.registry import create_detector
from asdkit.detectors.schedule import RampDown
from asdkit.errors import DataError
from asdkit.features.config import FeatureConfig
from asdkit.features.logmel import stack_frames

CONFIG = FeatureConfig(n_mels=8)
SECTIONS = ("00", "01", "02")
SHIFT = 0.75  # how far (in noise standard deviations) a section's own bands sit above the others'

#: Small and quick versions of each detector (2 CPU cores).
SMALL: dict[str, dict[str, object]] = {
    "made": {"hidden": 64, "n_hidden": 1},
    "maf": {"hidden": 32, "n_hidden": 1, "n_blocks": 2},
    "density_ae": {"hidden": 32, "bottleneck": 8, "n_hidden": 1},
}
QUICK = {
    "epochs": 12,
    "batch_size": 64,
    "learning_rate": 3e-3,
    "accelerator": "cpu",
    "seed": 0,
    "validation_fraction": 0.0,
}


def _clips(
    machine: str, sections: tuple[str, ...], per_section: int, seed: int, frames: int = 24
) -> ClipFeatures:
    """Sections differ only in which two bands are raised by SHIFT (noise std 1): close, but separable."""
    rng = np.random.default_rng(seed)
    profile = np.linspace(-20.0, -40.0, CONFIG.n_mels)[:, None]
    arrays, clips = [], []
    for s in sections:
        k = int(s) if machine == "m" else 3
        for i in range(per_section):
            x = profile + rng.normal(0.0, 1.0, size=(CONFIG.n_mels, frames))
            x[2 * k : 2 * k + 2] += SHIFT
            arrays.append(x.astype(np.float32))
            clips.append(Clip(path=f"/d/{machine}/{s}_{i}.wav", machine=machine, section=s))
    return ClipFeatures(arrays, clips, CONFIG)


def _as_section(X: ClipFeatures, section: str) -> ClipFeatures:
    return ClipFeatures(X.arrays, [replace(c, section=section) for c in X.clips], X.config)


def _detector(name: str, **params: object) -> SectionDensityDetector:
    return create_detector(name, **{**SMALL[name], **QUICK, **params})  # type: ignore[return-value]


def _gap(detector: SectionDensityDetector, outliers: ClipFeatures, own: ClipFeatures) -> float:
    """Mean NLL of ``outliers`` under section 00's condition minus that of section 00's own clips."""
    return float(detector.clip_nll(_as_section(outliers, "00")).mean() - detector.clip_nll(own).mean())


@pytest.fixture(scope="module")
def train() -> ClipFeatures:
    return _clips("m", SECTIONS, 10, seed=0)


@pytest.fixture(scope="module")
def held_out() -> dict[str, ClipFeatures]:
    test = _clips("m", SECTIONS, 6, seed=1)
    by_section = {s: [i for i, c in enumerate(test.clips) if c.section == s] for s in SECTIONS}
    return {s: test.subset(idx) for s, idx in by_section.items()}


# -- the effect of proxy outliers ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["made", "maf", "density_ae"])
def test_other_section_proxies_widen_the_nll_gap_to_other_sections(name, train, held_out):
    others = ClipFeatures(
        list(held_out["01"].arrays) + list(held_out["02"].arrays),
        list(held_out["01"].clips) + list(held_out["02"].clips),
        CONFIG,
    )
    plain = _detector(name).fit(train)
    proxied = _detector(name, proxy_outliers="other_sections").fit(train)
    assert plain.proxy_outliers_used_ == "none"
    assert proxied.proxy_outliers_used_ == "other_sections"
    gap_plain, gap_proxied = _gap(plain, others, held_out["00"]), _gap(proxied, others, held_out["00"])
    assert gap_proxied > gap_plain + 0.1, (gap_plain, gap_proxied)
    assert gap_proxied > 0.3


def test_other_machine_proxies_widen_the_nll_gap_to_that_machine(train, held_out):
    machine_x = _clips("x", ("00",), 12, seed=2)
    x_test = _clips("x", ("00",), 6, seed=3)
    plain = _detector("made").fit(train)
    proxied = _detector("made", proxy_outliers="other_machines").fit(replace(train, proxy=machine_x))
    assert proxied.proxy_outliers_used_ == "other_machines"
    gap_plain, gap_proxied = _gap(plain, x_test, held_out["00"]), _gap(proxied, x_test, held_out["00"])
    assert gap_proxied > gap_plain + 0.1, (gap_plain, gap_proxied)


# -- fallbacks and errors ------------------------------------------------------------------------------------
def test_machine_modes_without_proxy_clips_warn_and_fall_back_to_other_sections(train, caplog):
    with caplog.at_level(logging.WARNING):
        detector = _detector("density_ae", proxy_outliers="other_sections_and_machines", epochs=1).fit(train)
    assert detector.proxy_outliers_used_ == "other_sections"
    assert "no clips of other machine types" in caplog.text


def test_one_section_means_no_other_section_proxies(caplog):
    one = _clips("m", ("00",), 6, seed=0)
    with caplog.at_level(logging.WARNING):
        detector = _detector("density_ae", proxy_outliers="other_sections", epochs=1).fit(one)
    assert detector.proxy_outliers_used_ == "none"
    assert "only one section" in caplog.text


def test_bad_proxy_mode_and_mismatched_proxy_features_are_refused(train):
    with pytest.raises(ValueError, match="proxy_outliers must be one of"):
        _detector("made", proxy_outliers="everything", epochs=1).fit(train)
    other = _clips("x", ("00",), 2, seed=0)
    other = ClipFeatures(other.arrays, other.clips, FeatureConfig(n_mels=8, hop_length=256))
    with pytest.raises(ValueError, match="proxy clips must have the features"):
        replace(train, proxy=other)


def test_proxy_clips_are_neither_a_parameter_nor_saved_and_the_tags_ask_for_them(train, tmp_path):
    detector = _detector("density_ae", proxy_outliers="other_machines", epochs=1)
    detector.fit(replace(train, proxy=_clips("x", ("00",), 3, seed=0)))
    loaded = Detector.load(detector.save(tmp_path / "model"))
    state = set(vars(loaded)) - set(loaded.get_params()) - {"proxy_outliers_used_"}
    assert not [key for key in state if "proxy" in key]
    assert detector.tags().proxies == {"machines"} and _detector("made").tags().proxies == set()
    both = _detector("made", proxy_outliers="other_sections_and_machines").tags()
    assert both.proxies == {"machines", "sections"} and both.sections == "condition"


# -- sections: normalisation, unknown sections, persistence ------------------------------------------------
@pytest.fixture(scope="module")
def fitted(train) -> SectionDensityDetector:
    return _detector("made", proxy_outliers="other_sections").fit(train)


def test_scores_are_z_scores_of_each_sections_training_clips(fitted, train):
    scores = fitted.anomaly_score(train)
    raw = fitted.clip_nll(train)
    for s in SECTIONS:
        mine = np.array([c.section == s for c in train.clips])
        assert scores[mine].mean() == pytest.approx(0.0, abs=1e-9)
        assert scores[mine].std() == pytest.approx(1.0, abs=1e-9)
        mean, std = fitted.section_stats_[s]
        np.testing.assert_allclose(scores[mine], (raw[mine] - mean) / std, rtol=1e-12)
        assert mean == pytest.approx(raw[mine].mean()) and std == pytest.approx(raw[mine].std())


def test_statistics_and_threshold_come_from_held_out_clips_when_each_section_has_some(train):
    from asdkit.detectors.reconstruction.family import split_clips
    from asdkit.scoring.threshold import gamma_threshold

    detector = _detector("made", validation_fraction=0.5).fit(train)
    assert detector.section_stats_basis_ == "held_out"
    _, val_idx = split_clips(len(train), 0.5, seed=0)
    held = train.subset(val_idx)
    scores = detector.anomaly_score(held)
    for s in SECTIONS:
        mine = np.array([c.section == s for c in held.clips])
        assert mine.sum() >= 3
        assert scores[mine].mean() == pytest.approx(0.0, abs=1e-9)
        assert scores[mine].std() == pytest.approx(1.0, abs=1e-9)
    assert detector.threshold_ == pytest.approx(gamma_threshold(scores))


def test_too_few_held_out_clips_fall_back_to_all_clips(fitted):
    assert fitted.section_stats_basis_ == "training"  # validation_fraction=0: nothing held out


def test_a_clip_is_scored_under_its_own_sections_condition(fitted, held_out):
    own = fitted.clip_nll(held_out["01"])
    foreign = fitted.clip_nll(_as_section(held_out["01"], "00"))
    assert own.mean() < foreign.mean()


def test_unknown_section_is_a_clear_error(fitted, train):
    odd = _as_section(train.subset([0, 1]), "07")
    with pytest.raises(DataError, match=r"section\(s\) 07 not in the training data.*00, 01, 02"):
        fitted.anomaly_score(odd)


def test_section_statistics_survive_save_and_load(fitted, train, held_out, tmp_path):
    path = fitted.save(tmp_path / "model")
    state = json.loads((path / CONFIG_NAME).read_text())["state"]
    assert state["sections"] == list(SECTIONS)
    assert set(state["section_mean"]) == set(SECTIONS) and set(state["section_std"]) == set(SECTIONS)
    loaded = Detector.load(path)
    assert isinstance(loaded, SectionDensityDetector)
    assert loaded.section_stats_ == fitted.section_stats_
    assert loaded.proxy_outliers_used_ == "other_sections"
    assert loaded.section_stats_basis_ == fitted.section_stats_basis_
    for X in (train, *held_out.values()):
        np.testing.assert_array_equal(loaded.anomaly_score(X), fitted.anomaly_score(X))


# -- the learning-rate schedule ------------------------------------------------------------------------------
def test_rampdown_is_constant_then_linear_to_zero():
    values = [RampDown(start=3, length=4)(e) for e in range(9)]
    assert values == pytest.approx([1, 1, 1, 1, 0.75, 0.5, 0.25, 0, 0])
    assert RampDown(start=5, length=0)(50) == 1.0  # no ramp-down


def test_fit_network_applies_the_schedule_per_epoch():
    from asdkit.detectors.deep import TrainerConfig
    from asdkit.detectors.training import fit_network

    data = torch.randn(64, 3)
    history = fit_network(
        torch.nn.Linear(3, 3),
        lambda net, batch: ((net(batch) - batch) ** 2).mean(),
        [data[i : i + 16] for i in range(0, 64, 16)],  # type: ignore[arg-type]
        None,
        TrainerConfig(epochs=6, learning_rate=0.1, seed=0, accelerator="cpu"),
        lr_lambda=RampDown(start=2, length=4),
    )
    assert [h["lr"] for h in history] == pytest.approx([0.1, 0.1, 0.1, 0.075, 0.05, 0.025])


def test_the_detector_trains_with_the_rampdown(train):
    detector = _detector("density_ae", epochs=4, rampdown_start=1, rampdown_length=4).fit(train)
    assert [h["lr"] for h in detector.history_] == pytest.approx([3e-3, 3e-3, 2.25e-3, 1.5e-3])


# -- the streams -----------------------------------------------------------------------------------------
def test_item_labels_travel_with_their_items_through_the_shuffle():
    arrays = [np.full((2, 6), i, dtype=np.float32) for i in range(5)]
    stream = ItemStream(
        arrays,
        lambda a: stack_frames(a, 2),
        lambda t: t - 1,
        4,
        seed=3,
        clips_per_chunk=2,
        labels=[10, 11, 12, 13, 14],
    )
    seen = 0
    for x, labels in stream:
        assert torch.equal(labels, x[:, 0].long() + 10)
        seen += len(x)
    assert seen == 5 * 5
    with pytest.raises(ValueError, match="labels for"):
        ItemStream(arrays, lambda a: a, lambda t: t, 4, labels=[1])


def test_partners_come_from_other_sections_of_the_batch():
    rng = np.random.default_rng(0)
    sections = rng.integers(0, 3, size=200)
    partner = partner_indices(sections, rng)
    assert np.all(partner >= 0) and np.all(sections[partner] != sections)
    assert np.all(partner_indices(np.zeros(5, dtype=int), rng) == -1)
    mixed = partner_indices(np.array([0, 0, 1]), rng)
    assert mixed.tolist()[:2] == [2, 2] and mixed[2] in (0, 1)


def test_proxy_batches_pair_normal_items_with_other_machines_cycled():
    normal_arrays = [np.full((2, 11), i % 3, dtype=np.float32) for i in range(6)]
    machine_arrays = [np.full((2, 4), -1.0, dtype=np.float32)]  # 3 items: fewer than a batch, so it cycles
    normal = ItemStream(normal_arrays, lambda a: stack_frames(a, 2), lambda t: t - 1, 8, labels=[0, 1, 2] * 2)
    machines = ItemStream(machine_arrays, lambda a: stack_frames(a, 2), lambda t: t - 1, 8, labels=[-1])
    batches = list(ProxyBatches(normal, machines, other_sections=True, seed=0))
    assert len(batches) == len(normal) == 8
    for x, sections, partner, x_machines in batches:
        assert torch.equal(sections, x[:, 0].long())
        assert torch.all(sections[partner[partner >= 0]] != sections[partner >= 0])
        assert len(x_machines) == min(3, len(x)) and torch.all(x_machines == -1)
    plain = next(iter(ProxyBatches(normal)))
    assert torch.all(plain[2] == -1) and plain[3].shape == (0, 4)


# -- the API gives other machine types' clips --------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_tree(tmp_path_factory) -> Path:
    from asdkit.data.synthetic import SyntheticSpec, generate

    return generate(
        tmp_path_factory.mktemp("tree") / "data", spec=SyntheticSpec.tiny(machines=("pump", "fan"))
    )


def test_api_train_gives_other_machine_types_as_proxies(tiny_tree, tmp_path, monkeypatch):
    from asdkit import api

    bundles: list[ClipFeatures] = []
    fit = SectionDensityDetector._fit

    def record(self: SectionDensityDetector, X: ClipFeatures) -> None:
        bundles.append(X)
        fit(self, X)

    monkeypatch.setattr(SectionDensityDetector, "_fit", record)

    params = {"epochs": 1, "batch_size": 256, "accelerator": "cpu", "hidden": 16, "n_hidden": 1}
    both = api.train(
        tiny_tree,
        model="density_ae",
        params={**params, "proxy_outliers": "other_sections_and_machines"},
        machines=["fan"],  # a machine filter must not hide the other types from the proxies
        cache_dir=tmp_path / "cache",
    )
    fan = both["fan"]
    assert isinstance(fan, SectionDensityDetector)
    proxy = bundles[0].proxy
    assert proxy is not None and len(proxy) > 0
    assert {c.machine for c in proxy.clips} == {"pump"}
    assert all(c.split == "train" and c.label in (0, None) for c in proxy.clips)
    assert fan.proxy_outliers_used_ == "other_sections_and_machines"
    bundles.clear()
    api.train(tiny_tree, model="density_ae", params=params, machines=["fan"], cache_dir=tmp_path / "cache")
    assert bundles and all(X.proxy is None for X in bundles)


def test_api_score_takes_each_loose_files_section_from_its_name(tiny_tree, tmp_path):
    from asdkit import api

    params = {"epochs": 1, "batch_size": 256, "accelerator": "cpu", "hidden": 16, "n_hidden": 1}
    models = api.train(tiny_tree, model="made", params=params, machines=["fan"], cache_dir=tmp_path / "c")
    files = sorted((tiny_tree / "fan" / "test").glob("section_*.wav"))
    sections = {f.name.split("_")[1] for f in files}
    assert len(sections) > 1
    scored, skipped = api.score(models, files, machine="fan", cache_dir=tmp_path / "c")
    assert not skipped and len(scored) == len(files)
    one = [f for f in files if f.name.startswith("section_01_")]
    by_name, _ = api.score(models, one, machine="fan", cache_dir=tmp_path / "c")
    forced, _ = api.score(models, one, machine="fan", section="01", cache_dir=tmp_path / "c")
    assert [s.score for s in forced] == [s.score for s in by_name]
    with pytest.raises(DataError, match="section"):
        api.score(models, one, machine="fan", section="09", cache_dir=tmp_path / "c")
