"""asdkit.data.audio.load_audio: channel choice, resampling, and errors that name the bad file."""

from __future__ import annotations

import logging
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers.trees import write_clip

from asdkit.data.audio import forget_reported_rates, load_audio, resample
from asdkit.errors import AudioError

MIMII = "mimii_raw_sample"


def _write(path: Path, data: np.ndarray, rate: int = 16000, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, rate, subtype=subtype)
    return path


# --- channels -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mimii_clips(shared_data: Path) -> list[Path]:
    clips = sorted((shared_data / MIMII).rglob("*.wav"))
    assert len(clips) == 8
    return clips


@pytest.mark.shared
def test_real_mimii_eight_channels_pick_and_mix(mimii_clips: list[Path]) -> None:
    path = mimii_clips[0]
    raw, rate = sf.read(str(path), dtype="float32", always_2d=True)
    assert raw.shape == (160000, 8) and rate == 16000
    first = load_audio(path)
    assert first.shape == (160000,) and first.dtype == np.float32 and first.flags.c_contiguous
    np.testing.assert_array_equal(first, raw[:, 0])
    np.testing.assert_array_equal(load_audio(path, channel=5), raw[:, 5])
    np.testing.assert_array_equal(load_audio(path, channel=-1), raw[:, 7])
    mix = load_audio(path, channel="mix")
    np.testing.assert_allclose(mix, raw.mean(axis=1), atol=1e-7)
    assert not np.array_equal(mix, first)
    assert not np.array_equal(load_audio(path, channel=5), first)  # the mics really differ


@pytest.mark.shared
def test_real_mimii_channel_out_of_range(mimii_clips: list[Path]) -> None:
    with pytest.raises(AudioError, match=r"has 8 channel\(s\), cannot pick channel 8") as info:
        load_audio(mimii_clips[0], channel=8)
    assert str(mimii_clips[0]) in str(info.value)


def test_generated_multichannel(tmp_path: Path) -> None:
    t = np.arange(8000) / 16000
    data = np.stack(
        [0.5 * np.sin(2 * np.pi * 440 * t), np.full_like(t, 0.25), -np.full_like(t, 0.25)], axis=1
    )
    path = _write(tmp_path / "three.wav", data, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path, channel=1), 0.25)
    np.testing.assert_allclose(load_audio(path, channel=2), -0.25)
    np.testing.assert_allclose(load_audio(path, channel="mix"), data.mean(axis=1), atol=1e-7)
    with pytest.raises(AudioError, match="cannot pick channel 3"):
        load_audio(path, channel=3)
    with pytest.raises(AudioError, match="cannot pick channel 'left'"):
        load_audio(path, channel="left")  # type: ignore[arg-type]


def test_mono_pcm_scaling(tmp_path: Path) -> None:
    path = _write(tmp_path / "half.wav", np.full(1600, 16384, dtype=np.int16))
    wave_ = load_audio(path)
    assert wave_.dtype == np.float32
    np.testing.assert_allclose(wave_, 0.5)
    assert wave_.shape == (1600,)
    np.testing.assert_array_equal(load_audio(path, channel="mix"), wave_)


def test_synthetic_helper_clips_load(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "c.wav", anomaly=True, channels=2)
    assert sf.info(str(path)).channels == 2
    assert load_audio(path).shape == (8000,)


# --- resampling ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [8000, 22050, 48000])
def test_resampling_warns_and_keeps_duration(
    tmp_path: Path, rate: int, caplog: pytest.LogCaptureFixture
) -> None:
    t = np.arange(rate // 2) / rate  # 0.5 s
    path = _write(tmp_path / f"r{rate}.wav", 0.5 * np.sin(2 * np.pi * 300 * t), rate=rate)
    forget_reported_rates()
    with caplog.at_level(logging.WARNING, logger="asdkit.data.audio"):
        out = load_audio(path, sample_rate=16000)
    assert abs(out.size - 8000) <= 1
    assert f"sample rate {rate} Hz, resampling to 16000 Hz" in caplog.text
    assert str(path) in caplog.text
    # the 300 Hz tone survives: its spectral peak stays at 300 Hz
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(np.argmax(spectrum) * 16000 / out.size - 300) < 5


def test_resampling_is_reported_once_per_rate(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    t = np.arange(22050) / 44100
    paths = [
        _write(tmp_path / f"c{i}.wav", 0.1 * (i + 1) * np.sin(2 * np.pi * 500 * t), 44100) for i in range(3)
    ]
    other = _write(tmp_path / "c48.wav", 0.1 * np.sin(2 * np.pi * 500 * t), 48000)
    forget_reported_rates()
    with caplog.at_level(logging.WARNING, logger="asdkit.data.audio"):
        for path in [*paths, other]:
            load_audio(path)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert str(paths[0]) in messages[0] and "44100 Hz" in messages[0] and "without a message" in messages[0]
    assert str(other) in messages[1] and "48000 Hz" in messages[1]


def _band_energies_db(wave: np.ndarray) -> np.ndarray:
    """Mean power of each of the default front end's 128 mel bands (to 8 kHz), in dB."""
    import torch

    from asdkit.features.config import FeatureConfig
    from asdkit.features.logmel import LogMel

    mel_db = LogMel(FeatureConfig())(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)))
    return 10 * np.log10((10 ** (mel_db.double() / 10)).mean(dim=1).numpy())


#: Largest change of any mel band's energy after a round trip through another rate. A filter resampler
#: (soxr HQ) loses about 6 and 24 dB in the top two bands; the Fourier resampler stays below 0.01 dB.
ROUND_TRIP_TOLERANCE_DB = 0.05


@pytest.mark.parametrize("rate", [44100, 48000])
def test_round_trip_through_another_rate_keeps_every_mel_band(rate: int) -> None:
    rng = np.random.default_rng(3)
    # white noise fills every band up to the Nyquist frequency, where a resampler's roll-off shows first
    original = (0.1 * rng.standard_normal(160000)).astype(np.float32)
    round_trip = resample(resample(original, 16000, rate), rate, 16000)
    assert round_trip.shape == original.shape
    change = _band_energies_db(round_trip) - _band_energies_db(original)
    assert np.abs(change).max() < ROUND_TRIP_TOLERANCE_DB, np.round(change[-4:], 3)


@pytest.mark.shared
def test_real_clip_round_trip_keeps_every_mel_band(shared_data: Path) -> None:
    path = sorted(shared_data.rglob("*.wav"))[0]
    original = load_audio(path)
    for rate in (44100, 48000):
        round_trip = resample(resample(original, 16000, rate), rate, 16000)
        change = _band_energies_db(round_trip) - _band_energies_db(original)
        assert np.abs(change).max() < ROUND_TRIP_TOLERANCE_DB, (rate, np.round(change[-4:], 3))


def test_no_warning_at_the_model_rate(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write_clip(tmp_path / "ok.wav")
    with caplog.at_level(logging.WARNING, logger="asdkit.data.audio"):
        load_audio(path)
    assert caplog.records == []


# --- unusable files -----------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=r"nope\.wav: no such file"):
        load_audio(tmp_path / "nope.wav")


def test_zero_length_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty.wav: empty file \(0 bytes\)"):
        load_audio(path)


def test_header_without_samples(tmp_path: Path) -> None:
    path = tmp_path / "header_only.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"")
    with pytest.raises(AudioError, match=r"header_only\.wav: contains no samples"):
        load_audio(path)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("text.wav", b"this is a text file, not audio\n" * 10),
        ("corrupt.wav", b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00" + bytes(range(256))),
        ("random.wav", np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()),
    ],
)
def test_not_audio(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AudioError, match="not readable as audio") as info:
        load_audio(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_truncated_real_wav(tmp_path: Path) -> None:
    good = write_clip(tmp_path / "good.wav")
    cut = tmp_path / "cut.wav"
    cut.write_bytes(good.read_bytes()[:30])  # the header is torn in the middle
    with pytest.raises(AudioError) as info:
        load_audio(cut)
    assert str(cut) in str(info.value)


def test_nan_and_inf_samples(tmp_path: Path) -> None:
    data = np.full(1600, 0.1, dtype=np.float32)
    data[100] = np.nan
    path = _write(tmp_path / "nan.wav", data, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: contains NaN or infinite samples"):
        load_audio(path)
    data[100] = np.inf
    path = _write(tmp_path / "inf.wav", data, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"inf\.wav: contains NaN or infinite samples"):
        load_audio(path)


def test_nan_in_unused_channel_is_fine_but_not_in_the_mix(tmp_path: Path) -> None:
    data = np.full((1600, 2), 0.1, dtype=np.float32)
    data[5, 1] = np.nan
    path = _write(tmp_path / "two.wav", data, subtype="FLOAT")
    assert np.all(np.isfinite(load_audio(path, channel=0)))
    with pytest.raises(AudioError, match="NaN"):
        load_audio(path, channel="mix")


def test_silent_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "silence.wav", np.zeros(1600, dtype=np.int16))
    with pytest.raises(AudioError, match=r"silence.wav: silent \(all samples are zero\)"):
        load_audio(path)
    stereo = _write(tmp_path / "half_silent.wav", np.stack([np.zeros(1600), np.full(1600, 0.2)], axis=1))
    with pytest.raises(AudioError, match="silent"):
        load_audio(stereo, channel=0)
    assert np.all(load_audio(stereo, channel=1) > 0.19)
