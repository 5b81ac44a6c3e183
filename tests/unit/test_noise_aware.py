"""The two-microphone front ends: what the gain does to noise and machine bins, the pair's halves, configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asdkit.data.audio import load_audio
from asdkit.errors import AudioError
from asdkit.features.cache import FeatureCache
from asdkit.features.config import FeatureConfig
from asdkit.features.frontends import available_front_ends, front_end_for
from asdkit.features.logmel import compute_logmel
from asdkit.features.noise_aware import NoiseAwareConfig, channel_choice, channel_features
from asdkit.runconfig import RunConfig

SR = 16000


def _tone(freq: float, seconds: float = 2.0, level: float = 0.1) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (level * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _band(index: int, config: FeatureConfig, freq: float) -> int:
    """The mel band whose filter weighs ``freq`` most."""
    from asdkit.features.logmel import mel_filterbank

    fb = mel_filterbank(config).numpy()
    return int(np.argmax(fb[:, round(freq * config.n_fft / config.sample_rate)]))


def test_pair_is_the_log_mel_of_each_channel_side_by_side():
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal((SR, 2))).astype(np.float32)
    out = front_end_for(NoiseAwareConfig(method="pair")).compute([wave])[0]
    half = FeatureConfig(n_mels=64)
    near = compute_logmel([np.ascontiguousarray(wave[:, 0])], half)[0]
    far = compute_logmel([np.ascontiguousarray(wave[:, 1])], half)[0]
    assert out.shape == (128, near.shape[1])
    np.testing.assert_allclose(out[:64], near, atol=1e-3)
    np.testing.assert_allclose(out[64:], far, atol=1e-3)


def test_wiener_keeps_the_machine_and_suppresses_what_the_far_microphone_hears_louder():
    machine, noise = _tone(500.0), _tone(3000.0, level=0.05)
    near = machine + noise  # the noise reaches the near microphone weaker...
    far = 0.1 * machine + 2.0 * noise  # ...and the far one louder, where the machine is weak
    wave = np.stack([near, far], axis=1)
    config = NoiseAwareConfig(gain_floor=0.1)
    out = front_end_for(config).compute([wave])[0]
    plain = compute_logmel([near], FeatureConfig())[0]
    mid = slice(5, -5)  # away from the clip's edges
    m, n = _band(0, config, 500.0), _band(0, config, 3000.0)
    assert np.abs(out[m, mid] - plain[m, mid]).max() < 0.1  # gain 1 - 0.5 * 0.01: -0.02 dB
    np.testing.assert_allclose(out[n, mid], plain[n, mid] - 10.0, atol=0.2)  # at the 10 dB floor


def test_wiener_without_a_reference_is_the_plain_log_mel_of_the_near_channel():
    rng = np.random.default_rng(1)
    wave = (0.1 * rng.standard_normal((SR, 2))).astype(np.float32)
    out = front_end_for(NoiseAwareConfig(reference_gain=0.0)).compute([wave])[0]
    np.testing.assert_allclose(out, compute_logmel([np.ascontiguousarray(wave[:, 0])])[0], atol=1e-3)


def test_configs_validate_and_round_trip_through_model_files_and_recipes():
    assert "noise_aware" in available_front_ends()
    for bad in ({"channel": 0}, {"method": "spectral"}, {"smooth_frames": 2}, {"gain_floor": 0.0}):
        with pytest.raises(ValueError, match="noise_aware"):
            NoiseAwareConfig(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="even n_mels"):
        NoiseAwareConfig(method="pair", n_mels=127)
    config = NoiseAwareConfig(method="pair", n_mels=64, reference_gain=0.25)
    assert FeatureConfig.from_dict(config.to_dict()) == config
    assert FeatureConfig.from_dict(FeatureConfig(channel=1).to_dict()) == FeatureConfig(channel=1)
    assert config.key() != FeatureConfig(n_mels=64).key()
    with pytest.raises(ValueError, match="unknown front end 'nope'"):
        FeatureConfig.from_dict({"front_end": "nope"})
    with pytest.raises(ValueError, match="not a log-mel variant"):
        FeatureConfig.from_dict({"front_end": "spectrum"})
    recipe = RunConfig(features={"front_end": "noise_aware", "method": "wiener", "gain_floor": "0.2"})
    assert recipe.feature_config() == NoiseAwareConfig(gain_floor=0.2)


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("0", FeatureConfig()),
        ("1", FeatureConfig(channel=1)),
        ("mix", FeatureConfig(channel="mix")),
        ("pair", NoiseAwareConfig(method="pair")),
        ("noise_aware", NoiseAwareConfig()),
    ],
)
def test_channel_choices(choice, expected):
    assert channel_features(choice) == expected
    assert channel_choice(expected) == choice
    # the other settings come from a recipe's features
    base = NoiseAwareConfig(n_mels=64, gain_floor=0.3)
    assert channel_features(choice, base).n_mels == 64


def test_a_recipes_own_noise_aware_settings_are_kept_and_bad_choices_named():
    tuned = NoiseAwareConfig(gain_floor=0.3)
    assert channel_features("noise_aware", tuned) is tuned
    with pytest.raises(ValueError, match="--channel 'both'"):
        channel_features("both")


def test_both_channels_are_read_and_a_mono_file_is_named(tmp_path: Path):
    stereo, mono = tmp_path / "stereo.wav", tmp_path / "mono.wav"
    sf.write(stereo, np.stack([_tone(500.0), _tone(700.0)], axis=1), SR, subtype="PCM_16")
    sf.write(mono, _tone(500.0), SR, subtype="PCM_16")
    assert load_audio(stereo, channel="both").shape == (2 * SR, 2)
    with pytest.raises(AudioError, match=r"mono\.wav: has 1 channel"):
        load_audio(mono, channel="both")
    result = FeatureCache(NoiseAwareConfig(), cache_dir=tmp_path / "cache").extract(
        [stereo, mono], on_error="skip"
    )
    assert result.kept == [stereo] and result.arrays[0].shape[0] == 128
    assert [(p, "has 1 channel" in why) for p, why in result.skipped] == [(mono, True)]
