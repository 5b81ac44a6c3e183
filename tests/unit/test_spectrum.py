"""The clip spectrum front end against scipy's Welch estimate (the oracle), its cache and its loading."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from scipy import signal

from asdkit import api
from asdkit.data.manifest import Clip
from asdkit.features import FeatureCache, FeatureConfig, Spectrum, SpectrumConfig, compute_spectrum
from asdkit.features.logmel import LogMelFrontEnd
from asdkit.features.spectrum import SpectrumFrontEnd

SR = 16000
DB_TOL = 1e-3


def machine_sound(seconds: float, seed: int = 0, tone: float = 1000.0) -> np.ndarray:
    """A hum, its harmonic and hiss far below them: the quiet bins are where precision shows."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    wave = 0.5 * np.sin(2 * np.pi * tone * t) + 0.05 * np.sin(2 * np.pi * 2.5 * tone * t)
    return (wave + 1e-4 * rng.standard_normal(t.size)).astype(np.float32)


def welch_db(wave: np.ndarray, c: SpectrumConfig) -> np.ndarray:
    if len(wave) < c.n_fft:
        wave = np.pad(wave, (0, c.n_fft - len(wave)))
    _, power = signal.welch(
        wave.astype(np.float64),
        fs=c.sample_rate,
        window="hann",
        nperseg=c.n_fft,
        noverlap=c.n_fft - c.hop,
        detrend=False,
        scaling="spectrum",
    )
    return 10 * np.log10(np.maximum(power[: c.n_bins], c.amin))


@pytest.mark.parametrize(
    "config",
    [
        SpectrumConfig(),
        SpectrumConfig(n_fft=4096, hop_length=1024, fmax=6000.0),
        SpectrumConfig(n_fft=1001),  # odd: no Nyquist bin
    ],
    ids=["default", "hop-fmax", "odd-n_fft"],
)
def test_spectrum_matches_scipy_welch(config: SpectrumConfig) -> None:
    wave = machine_sound(3.3)
    ours = compute_spectrum([wave], config)[0]
    assert ours.shape == (1, config.n_bins) and ours.dtype == np.float32
    np.testing.assert_allclose(ours[0], welch_db(wave, config), atol=DB_TOL, rtol=0)


def test_a_tone_peaks_in_its_bin_and_the_length_does_not_change_the_shape() -> None:
    config = SpectrumConfig()
    short, long = compute_spectrum(
        [machine_sound(6.0, tone=1000.0), machine_sound(18.0, tone=1000.0)], config
    )
    assert short.shape == long.shape == (1, config.n_fft // 2 + 1)
    assert int(np.argmax(short[0])) == round(1000.0 * config.n_fft / SR)
    # bins ~1 Hz apart resolve a 4 Hz shift of the tone, which no mel band does
    shifted = compute_spectrum([machine_sound(6.0, tone=1004.0)], config)[0]
    assert int(np.argmax(shifted[0])) - int(np.argmax(short[0])) == round(4.0 * config.n_fft / SR)


def test_a_clip_shorter_than_one_segment_is_zero_padded() -> None:
    config = SpectrumConfig(n_fft=8192)
    wave = machine_sound(0.2)
    np.testing.assert_allclose(compute_spectrum([wave], config)[0][0], welch_db(wave, config), atol=DB_TOL)


def test_a_batch_equals_its_clips_one_by_one() -> None:
    module = Spectrum(SpectrumConfig(n_fft=2048))
    waves = np.stack([machine_sound(1.0, seed=s, tone=300.0 + 200 * s) for s in range(3)])
    with torch.inference_mode():
        batch = module(torch.from_numpy(waves))
        alone = [module(torch.from_numpy(w)) for w in waves]
    assert batch.shape == (3, 1, 1025)
    for b, a in zip(batch, alone, strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-5)


def test_silence_is_floored_at_amin_not_minus_infinity() -> None:
    config = SpectrumConfig(n_fft=1024)
    out = compute_spectrum([np.zeros(4000, dtype=np.float32)], config)[0]
    np.testing.assert_array_equal(out, np.full((1, 513), 10 * np.log10(config.amin), dtype=np.float32))


def test_a_float_conversion_of_a_parent_keeps_the_float64_window() -> None:
    module = torch.nn.Sequential(Spectrum(SpectrumConfig(n_fft=1024))).float()
    assert module[0].window.dtype == torch.float64


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"n_fft": 8}, "n_fft must be >= 16"),
        ({"hop_length": 0}, "hop_length"),
        ({"fmax": 9000.0}, "fmax"),
        ({"amin": 0.0}, "amin"),
    ],
)
def test_bad_settings_are_one_line_errors(settings: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SpectrumConfig(**settings)  # type: ignore[arg-type]


def test_config_round_trips_and_keys_apart_from_log_mel() -> None:
    config = SpectrumConfig(n_fft=4096, fmax=4000.0)
    assert SpectrumConfig.from_dict(config.to_dict()) == config
    assert config.n_bins == 1025
    key = SpectrumFrontEnd(config).cache_key()
    assert key != SpectrumFrontEnd(SpectrumConfig()).cache_key()
    assert key.startswith("spectrum-") and key != LogMelFrontEnd(FeatureConfig()).cache_key()
    # the folder name caches written before the front-end registry used, so they stay valid
    blob = json.dumps({"front_end": "spectrum", **config.to_dict()}, sort_keys=True).encode()
    assert key == "spectrum-" + hashlib.sha1(blob).hexdigest()[:12]
    with pytest.raises(ValueError, match="unknown spectrum settings: n_mels"):
        SpectrumConfig.from_dict({"n_mels": 128})


def _write(path: Path, wave: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave, SR, subtype="FLOAT")
    return path


def test_the_cache_keeps_spectra_in_their_own_folder_and_computes_each_once(tmp_path: Path) -> None:
    paths = [_write(tmp_path / "audio" / f"c{i}.wav", machine_sound(1.5, seed=i)) for i in range(3)]
    config = SpectrumConfig(n_fft=2048)
    cache = FeatureCache(config, cache_dir=tmp_path / "cache", workers=2)
    first = cache.extract(paths)
    assert [a.shape for a in first.arrays] == [(1, 1025)] * 3
    np.testing.assert_allclose(first.arrays[1], compute_spectrum([machine_sound(1.5, seed=1)], config)[0])
    assert cache.folder.name == SpectrumFrontEnd(config).cache_key()
    assert len(list(cache.folder.glob("*.npy"))) == 3
    stamps = {p: p.stat().st_mtime_ns for p in cache.folder.glob("*.npy")}
    cache.extract(paths)
    assert {p: p.stat().st_mtime_ns for p in cache.folder.glob("*.npy")} == stamps


def test_load_features_brings_aligned_spectra_and_skips_a_corrupt_clip(tmp_path: Path) -> None:
    good = [_write(tmp_path / f"id_00_{i}.wav", machine_sound(1.0, seed=i)) for i in range(2)]
    bad = tmp_path / "id_00_bad.wav"
    bad.write_bytes(b"RIFF not really a wav")
    clips = [Clip(path=p, machine="fan", section="00") for p in [good[0], bad, good[1]]]
    spectrum = SpectrumConfig(n_fft=1024)
    X, skipped = api.load_features(clips, FeatureConfig(), tmp_path / "cache", inputs={"spectrum": spectrum})
    assert [Path(c.path) for c in X.clips] == good
    assert [p for p, _ in skipped] == [bad]
    spectra = X.arrays_of("spectrum")
    assert X.input_configs() == {"spectrum": spectrum} and spectra is not None and len(spectra) == 2
    np.testing.assert_allclose(spectra[1], compute_spectrum([machine_sound(1.0, seed=1)], spectrum)[0])
    subset = X.subset([1]).arrays_of("spectrum")
    assert subset is not None and np.array_equal(subset[0], spectra[1])
