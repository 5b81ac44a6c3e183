"""Every registered detector at a real DCASE size: more training clips than any internal cap.

Real development sets hold about 1,000 training clips per machine type; detectors bound their cost with
caps (``patch_bank`` scores at most ``THRESHOLD_CLIPS`` clips held out, the error-vector banks estimate a
covariance from at most ``MAX_ITEMS`` vectors, networks score items in chunks of 2,048-8,192). Short clips
keep this quick; the clip count goes past the clip caps, the item count past the chunk sizes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asdkit.data.manifest import Clip
from asdkit.detectors.banks.patch_bank import THRESHOLD_CLIPS
from asdkit.detectors.base import ClipFeatures, Detector, check_held_out_scores
from asdkit.detectors.inputs import drop_short_clips
from asdkit.detectors.registry import available_detectors, create_detector, get_detector_class
from asdkit.errors import ModelError
from asdkit.features.config import FeatureConfig
from asdkit.threads import frames_of, thread_limit, threads_for

CONFIG = FeatureConfig(n_mels=16)
SECTIONS = 2
SOURCE_PER_SECTION = 160
TARGET_PER_SECTION = 5
#: frames per clip (short clips keep it quick: the clip count is what passes the caps)
FRAMES = 32
N_TRAIN = SECTIONS * (SOURCE_PER_SECTION + TARGET_PER_SECTION)
#: one quick pass where a detector trains a network, small where it has the knob
QUICK = {"epochs": 1, "batch_size": 256, "accelerator": "cpu", "seed": 0, "standardise": True}
SMALL = {"hidden": 32, "n_blocks": 2, "width": 0.25, "base_channels": 8, "n_stages": 2, "blocks_per_stage": 1}


def _clips(
    n_per_section: int, domain: str, rng: np.random.Generator, tag: str, machine: str = "m"
) -> ClipFeatures:
    profile = np.linspace(-20, -60, CONFIG.n_mels)[:, None]
    arrays, clips = [], []
    for s in range(SECTIONS):
        for i in range(n_per_section):
            x = profile + rng.normal(0, 1.0, size=(CONFIG.n_mels, FRAMES))
            x[8 + 2 * s] += 8.0 if machine == "m" else 0.0
            if machine != "m":
                x[2:5] += 10.0
            arrays.append(x.astype(np.float32))
            clips.append(
                Clip(
                    path=f"/d/{machine}/{tag}_{s}_{domain}_{i}.wav",
                    machine=machine,
                    section=f"0{s}",
                    domain=domain,
                )
            )
    return ClipFeatures(arrays, clips, CONFIG)


def _join(*parts: ClipFeatures) -> ClipFeatures:
    return ClipFeatures([a for p in parts for a in p.arrays], [c for p in parts for c in p.clips], CONFIG)


@pytest.fixture(scope="module")
def real_size() -> tuple[ClipFeatures, ClipFeatures]:
    rng = np.random.default_rng(0)
    train = _join(
        _clips(SOURCE_PER_SECTION, "source", rng, "tr"), _clips(TARGET_PER_SECTION, "target", rng, "tr")
    )
    train.proxy = _clips(20, "source", rng, "px", machine="other")
    unseen = _join(_clips(20, "source", rng, "te"), _clips(5, "target", rng, "te"))
    return train, unseen


def test_the_fixture_passes_every_cap():
    assert N_TRAIN > THRESHOLD_CLIPS
    assert N_TRAIN * (FRAMES - 5 + 1) > 8192  # the networks' scoring chunks


def _quick(name: str, **extra: object) -> Detector:
    known = get_detector_class(name)().get_params()
    params = {k: v for k, v in (QUICK | SMALL | extra).items() if k in known}
    return create_detector(name, **params)  # type: ignore[return-value]


#: Every detector that reads log-mel arrays (``finetune`` reads waveforms through a pretrained encoder's
#: checkpoint file: tests/unit/test_finetune.py fits it), and the AE scored by selective Mahalanobis.
CASES = [
    *(n for n in available_detectors() if "waveform" not in create_detector(n).tags().inputs),
    "ae:selective_mahalanobis",
]


@pytest.fixture(autouse=True)
def _threads_as_asdkit_chooses(real_size):
    """The threads ``asdkit run`` would give this much work (api.train wraps each fit the same way)."""
    with thread_limit(threads_for(frames_of(real_size[0].arrays))):
        yield


@pytest.mark.parametrize("case", CASES)
def test_every_detector_fits_scores_and_thresholds_at_real_size(case, real_size):
    train, unseen = real_size
    name, _, score = case.partition(":")
    detector = _quick(name, **({"score": score} if score else {}))
    detector.fit(train)
    held = detector.held_out_scores_
    assert held.shape == (N_TRAIN,), "one held-out score per training clip"
    assert np.isfinite(held).sum() >= 2
    assert np.isfinite(detector.threshold_)
    scores = detector.anomaly_score(unseen)
    assert scores.shape == (len(unseen),) and np.all(np.isfinite(scores))
    flagged = detector.predict(unseen).mean()
    # a held-out threshold sits near the 90th percentile of normal scores; it must not flag them wholesale
    assert flagged < 0.6, f"{case} flags {flagged:.0%} of unseen normal clips at real size"
    _check_declared_window(detector, unseen)


def _check_declared_window(detector: Detector, unseen: ClipFeatures) -> None:
    """The window a detector declares (``tags().min_frames``) is what it needs: a clip of that many frames
    scores, and a shorter one is dropped by name before it reaches the detector."""
    need = detector.tags().min_frames
    clip = unseen.clips[0]
    fits = ClipFeatures([np.asarray(unseen.arrays[0])[:, :need]], [clip], CONFIG)
    assert np.isfinite(detector.anomaly_score(fits)).all()
    if need > 1:
        short = ClipFeatures(
            [np.asarray(unseen.arrays[0])[:, : need - 1], unseen.arrays[1]], unseen.clips[:2], CONFIG
        )
        kept, skipped = drop_short_clips(detector, short)
        assert len(kept) == 1 and kept.clips[0] == unseen.clips[1]
        assert [p for p, _ in skipped] == [Path(clip.path)]
        assert (
            f"{need - 1} frame(s), shorter than the {need}-frame window of {detector.name}" in skipped[0][1]
        )


def test_held_out_scores_of_the_wrong_length_fail_loudly():
    with pytest.raises(
        ModelError, match=r"patch_bank: held-out training scores have shape \(256,\).*\(310,\)"
    ):
        check_held_out_scores("patch_bank", np.zeros(256), 310)
    with pytest.raises(ModelError, match="no finite held-out"):
        check_held_out_scores("knn", np.full(4, np.nan), 4)
    np.testing.assert_array_equal(check_held_out_scores("knn", np.array([1.0, np.nan]), 2), [1.0, np.nan])


def test_a_detector_breaking_the_contract_cannot_be_fitted(real_size, monkeypatch):
    """The check sits in Detector.fit, so a detector returning fewer held-out scores fails by name."""
    train, _ = real_size
    detector = create_detector("knn")
    monkeypatch.setattr(detector, "_training_scores", lambda X: np.zeros(len(X) - 1))
    with pytest.raises(ModelError, match="knn: held-out training scores"):
        detector.fit(train)
