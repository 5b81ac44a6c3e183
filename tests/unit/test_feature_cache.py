"""The on-disk feature cache: what it stores, when it recomputes, and how it handles bad clips."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asdkit.data.audio import load_audio
from asdkit.errors import AudioError
from asdkit.features import FeatureCache, FeatureConfig, FeatureResult, LogMel, default_cache_dir
from asdkit.features import cache as cache_mod

SR = 16000


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    """See test_logmel: OpenMP barriers make small ops crawl when another process shares the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_clip(path: Path, seconds: float = 1.0, seed: int = 0, freq: float = 440.0) -> Path:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    wave = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave.astype(np.float32), SR, subtype="PCM_16")
    return path


@pytest.fixture
def clips(tmp_path: Path) -> list[Path]:
    """Five short clips, two lengths (so batches of equal-length clips are exercised)."""
    audio = tmp_path / "audio"
    lengths = (1.0, 1.0, 1.5, 1.0, 1.5)
    return [write_clip(audio / f"clip_{i}.wav", s, seed=i, freq=200 + 100 * i) for i, s in enumerate(lengths)]


@pytest.fixture
def cache(tmp_path: Path) -> FeatureCache:
    return FeatureCache(FeatureConfig(), cache_dir=tmp_path / "cache", batch_size=2, workers=2)


class CountingForward:
    """Counts clips through LogMel.forward (the one place features are computed)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.clips = 0
        original = LogMel.forward

        def forward(module: LogMel, wave: torch.Tensor) -> torch.Tensor:
            self.clips += 1 if wave.ndim == 1 else wave.shape[0]
            return original(module, wave)

        monkeypatch.setattr(LogMel, "forward", forward)


def expected_features(path: Path, config: FeatureConfig | None = None) -> np.ndarray:
    config = config or FeatureConfig()
    wave = load_audio(path, config.sample_rate, config.channel)
    with torch.inference_mode():
        return LogMel(config)(torch.from_numpy(wave)).numpy()


def entries(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.npy"))


@pytest.mark.parametrize("strategy", ["clips", "batches"])
def test_extract_stores_features_and_returns_read_only_memmaps(
    tmp_path: Path, clips: list[Path], strategy: str
) -> None:
    cache = FeatureCache(FeatureConfig(), tmp_path / "cache", batch_size=2, workers=2, strategy=strategy)  # type: ignore[arg-type]
    result = cache.extract(clips)
    assert isinstance(result, FeatureResult)
    assert result.kept == clips and result.skipped == []
    assert len(result.arrays) == len(clips)
    for path, array in zip(clips, result.arrays, strict=True):
        assert isinstance(array, np.memmap)
        assert not array.flags.writeable
        assert array.dtype == np.float32
        assert array.shape == (128, 1 + len(load_audio(path)) // 512)
        np.testing.assert_array_equal(np.asarray(array), expected_features(path))
        assert Path(array.filename) == cache.path_for(path)
    assert len(entries(cache.folder)) == len(clips)
    assert cache.folder == tmp_path / "cache" / FeatureConfig().key()


def test_second_extract_does_not_recompute(
    cache: FeatureCache, clips: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = CountingForward(monkeypatch)
    cache.extract(clips)
    assert counter.clips == len(clips)
    stamps = {p: p.stat().st_mtime_ns for p in entries(cache.folder)}

    again = cache.extract(clips)
    assert counter.clips == len(clips)  # nothing computed the second time
    assert {p: p.stat().st_mtime_ns for p in entries(cache.folder)} == stamps
    assert all(isinstance(a, np.memmap) for a in again.arrays)

    # One new clip: only it is computed.
    extra = write_clip(clips[0].parent / "extra.wav", 1.0, seed=9)
    result = cache.extract([*clips, extra])
    assert counter.clips == len(clips) + 1
    assert result.kept[-1] == extra


def test_duplicate_paths_are_computed_once_and_returned_each_time(
    cache: FeatureCache, clips: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = CountingForward(monkeypatch)
    result = cache.extract([clips[0], clips[1], clips[0]])
    assert counter.clips == 2
    assert result.kept == [clips[0], clips[1], clips[0]]
    np.testing.assert_array_equal(result.arrays[0], result.arrays[2])


def test_key_changes_with_config(tmp_path: Path, clips: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    a = FeatureCache(FeatureConfig(), tmp_path / "cache")
    b = FeatureCache(FeatureConfig(n_mels=64), tmp_path / "cache")
    assert a.path_for(clips[0]) != b.path_for(clips[0])
    assert a.folder != b.folder
    counter = CountingForward(monkeypatch)
    a.extract(clips[:2])
    result = b.extract(clips[:2])
    assert counter.clips == 4
    assert result.arrays[0].shape[0] == 64
    # Each folder says which settings it holds.
    assert '"n_mels": 64' in (b.folder / "config.json").read_text()


def test_key_changes_when_the_file_changes(
    cache: FeatureCache, clips: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = clips[0]
    before = cache.path_for(path)
    old = cache.load(path).copy()

    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # touched: same bytes, new mtime
    touched = cache.path_for(path)
    assert touched != before

    write_clip(path, 2.0, seed=42, freq=1000.0)  # rewritten with other content and length
    rewritten = cache.path_for(path)
    assert rewritten not in (before, touched)
    counter = CountingForward(monkeypatch)
    new = cache.load(path)
    assert counter.clips == 1
    assert new.shape[1] != old.shape[1]
    np.testing.assert_array_equal(new, expected_features(path))


def test_same_file_by_relative_and_absolute_path_shares_an_entry(
    cache: FeatureCache, clips: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(clips[0].parent)
    assert cache.path_for(Path(clips[0].name)) == cache.path_for(clips[0])


def test_corrupt_missing_and_silent_clips_are_skipped_with_warnings(
    cache: FeatureCache, clips: list[Path], caplog: pytest.LogCaptureFixture
) -> None:
    folder = clips[0].parent
    garbage = folder / "garbage.wav"
    garbage.write_bytes(b"RIFF not really a wave file" * 10)
    empty = folder / "empty.wav"
    empty.write_bytes(b"")
    silent = folder / "silent.wav"
    sf.write(silent, np.zeros(SR, dtype=np.float32), SR, subtype="PCM_16")
    missing = folder / "missing.wav"
    paths = [clips[0], garbage, clips[1], empty, missing, silent, clips[2]]

    with caplog.at_level(logging.WARNING, logger="asdkit.features.cache"):
        result = cache.extract(paths, on_error="skip")
    assert result.kept == [clips[0], clips[1], clips[2]]
    assert len(result.arrays) == 3
    np.testing.assert_array_equal(result.arrays[1], expected_features(clips[1]))
    assert [p for p, _ in result.skipped] == [garbage, empty, missing, silent]
    for path, reason in result.skipped:
        assert str(path) in reason and "\n" not in reason
    assert "not readable as audio" in result.skipped[0][1]
    assert "silent" in result.skipped[3][1]
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    for path in (garbage, empty, missing, silent):
        assert str(path) in warned
    assert len(entries(cache.folder)) == 3  # nothing stored for the bad clips


@pytest.mark.parametrize("strategy", ["clips", "batches"])
def test_bad_clip_raises_by_default(tmp_path: Path, clips: list[Path], strategy: str) -> None:
    cache = FeatureCache(FeatureConfig(), tmp_path / "cache", batch_size=2, strategy=strategy)  # type: ignore[arg-type]
    garbage = clips[0].parent / "garbage.wav"
    garbage.write_bytes(b"\x00\x01" * 100)
    with pytest.raises(AudioError, match=r"garbage\.wav"):
        cache.extract([clips[0], garbage, clips[1]])
    with pytest.raises(AudioError, match="no such file"):
        cache.extract([clips[0].parent / "missing.wav"])
    with pytest.raises(ValueError, match="on_error"):
        cache.extract(clips, on_error="ignore")  # type: ignore[arg-type]
    assert not list(cache.folder.glob("*.tmp")) and not list(cache.folder.glob(".*"))


def test_writes_are_atomic_and_leave_no_temporary_files(
    cache: FeatureCache, clips: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache.extract(clips)
    names = sorted(p.name for p in cache.folder.iterdir())
    assert names == sorted([*(p.name for p in entries(cache.folder)), "config.json"])
    assert all(n.endswith(".npy") and not n.startswith(".") for n in names if n != "config.json")

    # A write that fails half-way leaves neither an entry nor its temporary file behind.
    extra = write_clip(clips[0].parent / "extra.wav", 1.0, seed=7)
    real_save = np.save

    def failing_save(file: object, arr: np.ndarray, **kwargs: object) -> None:
        real_save(file, arr[:, :1], **kwargs)  # some bytes reach the temporary file ...
        raise OSError("disk full")  # ... then the write fails

    monkeypatch.setattr(np, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        cache.extract([extra])
    monkeypatch.undo()
    assert not cache.path_for(extra).exists()
    assert sorted(p.name for p in cache.folder.iterdir()) == names


def test_damaged_entry_is_recomputed(
    cache: FeatureCache, clips: list[Path], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    cache.extract(clips[:2])
    entry = cache.path_for(clips[0])
    entry.write_bytes(entry.read_bytes()[:200])  # truncated, e.g. by a crash on a filesystem without ordering
    counter = CountingForward(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="asdkit.features.cache"):
        result = cache.extract(clips[:2])
    assert counter.clips == 1
    assert "damaged" in caplog.text
    np.testing.assert_array_equal(result.arrays[0], expected_features(clips[0]))


def test_load_computes_when_missing_and_can_return_plain_arrays(
    cache: FeatureCache, clips: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = CountingForward(monkeypatch)
    first = cache.load(clips[3])
    assert isinstance(first, np.memmap)
    assert counter.clips == 1
    plain = cache.load(clips[3], mmap=False)
    assert counter.clips == 1
    assert type(plain) is np.ndarray
    np.testing.assert_array_equal(plain, expected_features(clips[3]))
    with pytest.raises(AudioError, match="no such file"):
        cache.load(clips[3].parent / "missing.wav")


def test_beyond_the_descriptor_budget_arrays_are_loaded_into_memory(
    cache: FeatureCache, clips: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache_mod, "_memmap_budget", lambda wanted: 2)
    result = cache.extract(clips)
    assert [isinstance(a, np.memmap) for a in result.arrays] == [True, True, False, False, False]
    np.testing.assert_array_equal(result.arrays[4], expected_features(clips[4]))


def test_memmap_budget_raises_the_soft_limit_when_it_can() -> None:
    resource = pytest.importorskip("resource")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    in_use = cache_mod._open_fd_count()
    low = in_use + 300
    if hard != resource.RLIM_INFINITY and hard < low + 2000:
        pytest.skip("hard descriptor limit too low to test raising the soft one")
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
    try:
        assert cache_mod._memmap_budget(1000) >= 1000
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= in_use + 1000
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_memmap_budget_warns_when_the_hard_limit_is_too_low(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    resource = pytest.importorskip("resource")
    monkeypatch.setattr(cache_mod, "_open_fd_count", lambda: 100)
    monkeypatch.setattr(resource, "getrlimit", lambda _kind: (400, 400))
    with caplog.at_level(logging.WARNING, logger="asdkit.features.cache"):
        assert cache_mod._memmap_budget(1000) == 400 - 100 - cache_mod._FD_RESERVE
    assert "loaded into memory" in caplog.text


def test_progress_bar_reports_clips_per_second(
    cache: FeatureCache, clips: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    cache.extract(clips, progress=True)
    err = capsys.readouterr().err
    assert "clip/s" in err and f"{len(clips)}/{len(clips)}" in err
    cache.extract([clips[0], write_clip(clips[0].parent / "x.wav")], progress=False)
    assert capsys.readouterr().err == ""


def test_extract_restores_torch_threads(cache: FeatureCache, clips: list[Path]) -> None:
    before = torch.get_num_threads()
    cache.extract(clips)
    assert torch.get_num_threads() == before


def test_default_cache_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASDKIT_CACHE_DIR", str(tmp_path / "from-env"))
    assert default_cache_dir() == tmp_path / "from-env"
    assert FeatureCache(FeatureConfig()).cache_dir == tmp_path / "from-env"
    monkeypatch.delenv("ASDKIT_CACHE_DIR")
    assert default_cache_dir() == Path.home() / ".cache" / "asdkit" / "features"


def test_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        FeatureCache(FeatureConfig(), tmp_path, batch_size=0)
    with pytest.raises(ValueError, match="workers"):
        FeatureCache(FeatureConfig(), tmp_path, workers=0)
    with pytest.raises(ValueError, match="strategy"):
        FeatureCache(FeatureConfig(), tmp_path, strategy="threads")  # type: ignore[arg-type]
    assert FeatureCache(FeatureConfig(), tmp_path).strategy == "clips"
    assert FeatureCache(FeatureConfig(), tmp_path, device="cuda").strategy == "batches"


@pytest.mark.shared
def test_real_clips_through_the_cache(shared_data: Path, tmp_path: Path) -> None:
    """11-s ToyCar and 10-s clips together; the stored arrays are the features of each file."""
    clips = sorted((shared_data / "dcase2020_dev_sample" / "ToyCar").rglob("*.wav"))[:3]
    clips += sorted((shared_data / "dcase2020_dev_sample" / "fan").rglob("*.wav"))[:3]
    if len(clips) < 6:
        pytest.skip("DCASE2020 sample clips are missing")
    cache = FeatureCache(FeatureConfig(), tmp_path / "cache", batch_size=4)
    result = cache.extract(clips)
    assert [a.shape for a in result.arrays] == [(128, 344)] * 3 + [(128, 313)] * 3
    for path, array in zip(clips, result.arrays, strict=True):
        np.testing.assert_array_equal(array, expected_features(path))
