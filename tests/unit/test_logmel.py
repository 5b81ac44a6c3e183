"""LogMel and friends against librosa (the test oracle): the filterbank, window, dB values and layout."""

from __future__ import annotations

import copy
import pickle
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from asdkit.data.audio import load_audio
from asdkit.features import FeatureConfig, LogMel, compute_logmel, mel_filterbank, stack_frames
from asdkit.features.logmel import logmel_batches, periodic_hann

librosa = pytest.importorskip("librosa")

DB_TOL = 1e-3  # the parity target, in dB


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    """One intra-op thread: the numbers are the same, and on a shared 2-core machine OpenMP barriers
    make these many small ops 10-20x slower whenever another process holds a core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def librosa_logmel(y: np.ndarray, c: FeatureConfig) -> np.ndarray:
    """The oracle: what the official baselines compute, with the config's settings spelled out."""
    mel = librosa.feature.melspectrogram(
        y=y,
        sr=c.sample_rate,
        n_fft=c.n_fft,
        hop_length=c.hop_length,
        win_length=c.win_length,
        n_mels=c.n_mels,
        fmin=c.fmin,
        fmax=c.fmax,
        power=c.power,
        center=c.center,
    )
    return librosa.power_to_db(mel, ref=1.0, amin=c.amin, top_db=c.top_db)


def ours(y: np.ndarray, c: FeatureConfig) -> np.ndarray:
    with torch.inference_mode():
        return LogMel(c)(torch.from_numpy(y)).numpy()


def synthetic(seconds: float = 3.0, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """A machine-like signal with a wide dynamic range: loud hum, a chirp, hiss 74 dB below the hum.

    Bins far below a frame's peak are where a float32 STFT drifts from librosa (see the test below).
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = 0.5 * np.sin(2 * np.pi * 120 * t) + 0.2 * np.sin(2 * np.pi * 240.5 * t)
    y += 0.02 * np.sin(2 * np.pi * (300 + 900 * t) * t)  # a slow chirp
    y += 1e-4 * rng.standard_normal(t.size)
    y[sr // 2 : sr // 2 + 2000] *= 1e-3  # a near-silent stretch
    return y.astype(np.float32)


VARIANTS = [
    FeatureConfig(),
    FeatureConfig(n_fft=2048, hop_length=512, n_mels=64),
    FeatureConfig(n_fft=512, hop_length=256, n_mels=40),
    FeatureConfig(n_fft=512, hop_length=160, win_length=400, n_mels=80),
    FeatureConfig(fmin=50.0, fmax=7000.0, n_mels=96),
    FeatureConfig(power=1.0),
    FeatureConfig(top_db=80.0),
    FeatureConfig(center=False),
]


def _id(c: FeatureConfig) -> str:
    default = FeatureConfig().to_dict()
    changed = {k: v for k, v in c.to_dict().items() if default[k] != v}
    return ",".join(f"{k}={v}" for k, v in changed.items()) or "default"


@pytest.mark.parametrize(
    "config",
    [*VARIANTS, FeatureConfig(sample_rate=22050, n_fft=2048), FeatureConfig(n_mels=256, n_fft=4096)],
    ids=_id,
)
def test_filterbank_equals_librosa(config: FeatureConfig) -> None:
    expected = librosa.filters.mel(
        sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax
    )
    got = mel_filterbank(config)
    assert got.dtype == torch.float32
    assert tuple(got.shape) == (config.n_mels, config.n_fft // 2 + 1)
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-6)
    # Slaney normalisation: every filter's area (in Hz) is the same, 2 / (width) * width / 2 = 1.
    assert float(got.min()) >= 0.0


@pytest.mark.parametrize("n_fft,win_length", [(1024, None), (512, 400), (400, 400), (1024, 1000)])
def test_window_is_periodic_hann_centred_like_librosa(n_fft: int, win_length: int | None) -> None:
    c = FeatureConfig(n_fft=n_fft, win_length=win_length)
    expected = librosa.util.pad_center(
        librosa.filters.get_window("hann", win_length or n_fft, fftbins=True), size=n_fft
    )
    np.testing.assert_allclose(periodic_hann(c).numpy(), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("config", VARIANTS, ids=_id)
def test_synthetic_signal_matches_librosa(config: FeatureConfig) -> None:
    y = synthetic()
    expected = librosa_logmel(y, config)
    got = ours(y, config)
    assert got.dtype == np.float32
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < DB_TOL


def test_reused_buffers_never_leak_into_results() -> None:
    """Per-thread buffers are reused: a later call (longer, shorter, batched) must not change earlier
    results, and a module survives deepcopy, pickling and dtype moves."""
    module = LogMel()
    a, b = synthetic(seconds=2.0, seed=1), synthetic(seconds=1.0, seed=2)
    with torch.inference_mode():
        first = module(torch.from_numpy(a))
        kept = first.clone()
        module(torch.from_numpy(b))
        module(torch.from_numpy(np.stack([a, a])))
        again = module(torch.from_numpy(a))
    assert torch.equal(first, kept) and torch.equal(again, kept)
    assert first.data_ptr() != again.data_ptr()

    copied = copy.deepcopy(module)
    restored = pickle.loads(pickle.dumps(module))
    moved = copy.deepcopy(module).float()  # a parent's .float() must not lower the STFT precision
    with torch.inference_mode():
        for other in (copied, restored, moved):
            assert torch.equal(other(torch.from_numpy(a)), kept)


def test_float64_stft_is_what_reaches_parity_in_quiet_bins() -> None:
    """Why LogMel computes the STFT in float64: float32 FFT rounding is relative to the frame's peak."""
    y = synthetic()
    expected = librosa_logmel(y, FeatureConfig())
    assert expected.max() - expected.min() > 100  # the signal does have very quiet bins
    with torch.inference_mode():
        fast = LogMel(FeatureConfig(), precision="float32")(torch.from_numpy(y)).numpy()
    assert np.abs(ours(y, FeatureConfig()) - expected).max() < DB_TOL / 10
    assert np.abs(fast - expected).max() > DB_TOL  # float32 would miss the target here
    assert np.abs(fast - expected).max() < 0.1  # ... though not by much


@pytest.mark.filterwarnings("ignore:n_fft=.* is too large:UserWarning")
def test_default_config_matches_baseline_call_on_odd_lengths() -> None:
    """The exact baseline call, on lengths that are not multiples of the hop (frame count edge cases)."""
    for n in (1, 511, 512, 513, 1023, 1024, 1025, 16000 * 2 + 17):
        y = synthetic(seconds=3.0, seed=n)[:n]
        expected = librosa.power_to_db(
            librosa.feature.melspectrogram(y=y, sr=16000, n_fft=1024, hop_length=512, n_mels=128, power=2.0),
            ref=1.0,
            amin=1e-10,
            top_db=None,
        )
        got = ours(y, FeatureConfig())
        assert got.shape == expected.shape == (128, 1 + n // 512)
        assert np.abs(got - expected).max() < DB_TOL


def test_top_db_is_relative_to_each_clips_own_max() -> None:
    c = FeatureConfig(top_db=40.0)
    loud, quiet = synthetic(seed=1), synthetic(seed=2) * 1e-3
    with torch.inference_mode():
        batch = LogMel(c)(torch.from_numpy(np.stack([loud, quiet]))).numpy()
    for row, y in zip(batch, (loud, quiet), strict=True):
        assert np.abs(row - librosa_logmel(y, c)).max() < DB_TOL
        assert row.max() - row.min() == pytest.approx(40.0, abs=1e-4)
    assert batch[0].max() - batch[1].max() == pytest.approx(60.0, abs=0.1)  # 1e-3 in amplitude


def test_batched_input_matches_librosa_and_is_batch_consistent() -> None:
    c = FeatureConfig()
    ys = np.stack([synthetic(seed=s) * g for s, g in ((3, 1.0), (4, 0.01), (5, 1e-4), (6, 0.3))])
    module = LogMel(c)
    with torch.inference_mode():
        batch = module(torch.from_numpy(ys))
        alone = [module(torch.from_numpy(y)) for y in ys]
    assert tuple(batch.shape) == (4, c.n_mels, 1 + ys.shape[1] // c.hop_length)
    for i, y in enumerate(ys):
        # Rows are computed independently; 1e-5 dB leaves room only for BLAS blocking differences.
        assert float((batch[i] - alone[i]).abs().max()) <= 1e-5
        assert np.abs(batch[i].numpy() - librosa_logmel(y, c)).max() < DB_TOL


def test_cpu_slicing_of_large_batches_changes_nothing() -> None:
    ys = torch.from_numpy(np.stack([synthetic(seconds=1.0, seed=s) for s in range(7)]))
    with torch.inference_mode():
        whole = LogMel(FeatureConfig(), cpu_chunk_frames=0)(ys)
        sliced = LogMel(FeatureConfig(), cpu_chunk_frames=40)(ys)  # about one clip per slice
    assert float((whole - sliced).abs().max()) <= 1e-5


def test_module_moves_with_to_and_accepts_float64_input() -> None:
    y = synthetic(seconds=1.0)
    module = LogMel().to(torch.device("cpu"))
    with torch.inference_mode():
        got = module(torch.from_numpy(y.astype(np.float64)))
    assert got.dtype == torch.float32
    assert np.abs(got.numpy() - librosa_logmel(y, FeatureConfig())).max() < DB_TOL


def test_bad_input_shapes_and_settings_raise() -> None:
    module = LogMel()
    assert module.precision == "float64"
    with pytest.raises(ValueError, match="waveform"):
        module(torch.zeros(2, 2, 16000))
    with pytest.raises(ValueError, match="shorter than n_fft"):
        LogMel(FeatureConfig(center=False))(torch.zeros(1000))
    with pytest.raises(ValueError, match="precision"):
        LogMel(precision="float16")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="win_length"):
        LogMel(FeatureConfig(win_length=2048))


def test_compute_logmel_keeps_order_across_lengths() -> None:
    waves = [synthetic(seconds=s, seed=i) for i, s in enumerate((1.0, 2.0, 1.0, 1.5, 2.0))]
    threads = torch.get_num_threads()
    feats = compute_logmel(waves, FeatureConfig(), workers=2)
    assert torch.get_num_threads() == threads  # the workers' one-thread setting does not leak
    assert len(feats) == len(waves)
    for y, f in zip(waves, feats, strict=True):
        assert f.dtype == np.float32 and f.shape == (128, 1 + len(y) // 512)
        assert np.abs(f - librosa_logmel(y, FeatureConfig())).max() < DB_TOL
    # The batched (GPU) path, run here on CPU: the same numbers.
    batched = logmel_batches(LogMel(FeatureConfig()), waves, batch_size=2)
    for a, b in zip(feats, batched, strict=True):
        assert np.abs(a - b).max() <= 1e-5
    single = compute_logmel(waves[:1], FeatureConfig())  # one clip: computed in this thread
    np.testing.assert_array_equal(single[0], feats[0])
    assert compute_logmel([], FeatureConfig()) == []
    with pytest.raises(ValueError, match="1-D"):
        compute_logmel([np.zeros((2, 100), dtype=np.float32)])


# -- real clips ---------------------------------------------------------------------------------------


def _real_clips(shared_data: Path) -> list[Path]:
    clips = sorted((shared_data / "dcase2020_dev_sample").rglob("*.wav"))
    clips += sorted((shared_data / "dcase2023_dev_sample").rglob("*.wav"))
    if not clips:
        pytest.skip("no DCASE sample clips under shared data")
    return clips


@pytest.mark.shared
def test_real_clips_match_librosa_one_by_one_and_batched(shared_data: Path) -> None:
    """Every real clip (153; 10-12 s, ToyCar 11 s), alone and in equal-length batches."""
    c = FeatureConfig()
    module = LogMel(c)
    by_length: dict[int, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
    worst = 0.0
    for path in _real_clips(shared_data):
        y = load_audio(path, c.sample_rate, c.channel)
        expected = librosa_logmel(y, c)
        with torch.inference_mode():
            got = module(torch.from_numpy(y)).numpy()
        assert got.shape == expected.shape
        worst = max(worst, float(np.abs(got - expected).max()))
        by_length[len(y)].append((y, expected))
    assert worst < DB_TOL, f"max |dB diff| {worst:.2e}"
    assert 11 * 16000 in by_length and 10 * 16000 in by_length  # clips of different lengths were seen
    for items in by_length.values():
        ys = np.stack([y for y, _ in items[:8]])
        with torch.inference_mode():
            batch = module(torch.from_numpy(ys)).numpy()
        for row, (_, expected) in zip(batch, items[:8], strict=True):
            assert np.abs(row - expected).max() < DB_TOL


@pytest.mark.shared
@pytest.mark.parametrize("config", VARIANTS[1:], ids=_id)
def test_real_clip_variants_match_librosa(shared_data: Path, config: FeatureConfig) -> None:
    clips = _real_clips(shared_data)
    # A quiet ToyConveyor clip with bins 74 dB below its peak, and an 11-s ToyCar clip.
    picks = [p for p in clips if "ToyConveyor" in str(p)][:1] + [p for p in clips if "ToyCar" in str(p)][:1]
    for path in picks:
        y = load_audio(path, config.sample_rate, config.channel)
        assert np.abs(ours(y, config) - librosa_logmel(y, config)).max() < DB_TOL


# -- stack_frames ------------------------------------------------------------------------------------


def test_stack_frames_layout_by_hand() -> None:
    # 3 mels x 4 frames; value = 10 * frame + mel, so each number says where it came from.
    logmel = np.array([[10 * t + m for t in range(4)] for m in range(3)], dtype=np.float32)
    got = stack_frames(logmel, n_frames=2)
    expected = np.array(
        [
            [0, 1, 2, 10, 11, 12],
            [10, 11, 12, 20, 21, 22],
            [20, 21, 22, 30, 31, 32],
        ],
        dtype=np.float32,
    )
    assert isinstance(got, np.ndarray)
    np.testing.assert_array_equal(got, expected)


def test_stack_frames_matches_the_baseline_loop_for_numpy_torch_and_batches() -> None:
    rng = np.random.default_rng(0)
    logmel = rng.standard_normal((128, 313)).astype(np.float32)
    n_frames, n_mels = 5, 128
    n_vectors = 313 - n_frames + 1
    # The documented layout, written as a loop: block t of every vector holds frame (vector index + t).
    expected = np.zeros((n_vectors, n_mels * n_frames), dtype=np.float32)
    for t in range(n_frames):
        expected[:, n_mels * t : n_mels * (t + 1)] = logmel[:, t : t + n_vectors].T
    np.testing.assert_array_equal(stack_frames(logmel, n_frames), expected)
    as_tensor = stack_frames(torch.from_numpy(logmel), n_frames)
    assert isinstance(as_tensor, torch.Tensor)
    np.testing.assert_array_equal(as_tensor.numpy(), expected)
    batch = np.stack([logmel, logmel[::-1]])
    stacked = stack_frames(batch, n_frames)
    assert stacked.shape == (2, n_vectors, n_mels * n_frames)
    np.testing.assert_array_equal(stacked[0], expected)
    np.testing.assert_array_equal(stacked[1], stack_frames(logmel[::-1], n_frames))
    torch_batch = stack_frames(torch.from_numpy(batch.copy()), n_frames)
    np.testing.assert_array_equal(torch_batch.numpy(), stacked)


def test_stack_frames_edges() -> None:
    logmel = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(stack_frames(logmel, 1), logmel.T)
    assert stack_frames(logmel, 4).shape == (1, 12)
    with pytest.raises(ValueError, match="too short"):
        stack_frames(logmel, 5)
    with pytest.raises(ValueError, match="n_frames"):
        stack_frames(logmel, 0)
    with pytest.raises(ValueError, match="n_mels"):
        stack_frames(np.zeros(10), 2)
