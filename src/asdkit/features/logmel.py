"""Log-mel features on torch.stft that match librosa's defaults, and DCASE-baseline frame stacking.

Training and scoring must see the same numbers as the official baselines (librosa), so the filterbank
and dB conversion reproduce ``librosa.filters.mel`` and ``librosa.power_to_db`` exactly; torch only
makes it batched and fast.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
import torch

from asdkit.errors import AudioError
from asdkit.features.config import FeatureConfig
from asdkit.features.frontends import LOGMEL, FrontEnd, register_front_end

Precision = Literal["float32", "float64"]
_CPU_MEL_GROUP = 16  # mel bands per block of the CPU mel projection
ArrayT = TypeVar("ArrayT", torch.Tensor, np.ndarray)

# Slaney's mel scale (librosa htk=False): linear below 1 kHz, logarithmic above.
_F_SP = 200.0 / 3.0
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = math.log(6.4) / 27.0


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney mel scale (the scale of librosa.hz_to_mel with htk=False)."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / _F_SP
    log_region = hz >= _MIN_LOG_HZ
    return np.where(
        log_region, _MIN_LOG_MEL + np.log(np.maximum(hz, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP, mel
    )


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    hz = mel * _F_SP
    log_region = mel >= _MIN_LOG_MEL
    return np.where(log_region, _MIN_LOG_HZ * np.exp(_LOGSTEP * (mel - _MIN_LOG_MEL)), hz)


def mel_filterbank(
    config: FeatureConfig = FeatureConfig(), dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Triangular Slaney mel filters with Slaney area normalisation, ``[n_mels, n_fft // 2 + 1]``.

    Equal to ``librosa.filters.mel(sr=..., n_fft=..., n_mels=..., fmin=..., fmax=...)`` (htk=False,
    norm="slaney"): built in float64 and cast, as librosa does.
    """
    sr, n_fft, n_mels = config.sample_rate, config.n_fft, config.n_mels
    fmax = sr / 2.0 if config.fmax is None else float(config.fmax)
    fft_freqs = np.linspace(0.0, sr / 2.0, n_fft // 2 + 1)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(config.fmin), hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    return torch.from_numpy(weights).to(dtype)


def periodic_hann(config: FeatureConfig, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The analysis window of length n_fft: periodic Hann of win_length, zero-padded to the centre."""
    win_length = config.n_fft if config.win_length is None else config.win_length
    if not 0 < win_length <= config.n_fft:
        raise ValueError(f"win_length={win_length} must be in 1..n_fft={config.n_fft}")
    window = torch.hann_window(win_length, periodic=True, dtype=torch.float64)
    left = (config.n_fft - win_length) // 2
    window = torch.nn.functional.pad(window, (left, config.n_fft - win_length - left))
    return window.to(dtype)


class LogMel(torch.nn.Module):
    """Waveforms ``[B, T]`` (or ``[T]``) to log-mel power in dB, ``[B, n_mels, frames]`` (or unbatched).

    Matches ``librosa.power_to_db(librosa.feature.melspectrogram(...), ref=1.0, amin, top_db)`` with
    librosa 0.11's defaults: centred frames with zero ("constant") padding, periodic Hann, |X|**power.

    ``precision`` is that of the windowing, FFT and power. The default "float64" is needed for parity:
    a float32 FFT's rounding error is relative to each frame's loudest bin, so bins 70 dB below it (high
    frequencies of quiet machine recordings) drift by more than 1e-3 dB, while librosa windows in float64
    and numpy's FFT computes in float64. The mel projection and dB run in float32 as in librosa; the
    output is float32.

    Each clip is computed on its own rows, so a clip's features do not depend on its batch mates (batch
    only equal-length clips). On CPU, intermediates live in per-thread buffers that are reused from call
    to call, and a large batch is processed in slices of about ``cpu_chunk_frames`` frames, which bounds
    those buffers (about 30 MB per thread at the default). Features are not differentiable (no_grad).
    """

    window: torch.Tensor
    filterbank: torch.Tensor

    def __init__(
        self,
        config: FeatureConfig = FeatureConfig(),
        precision: Precision = "float64",
        cpu_chunk_frames: int = 2048,
    ) -> None:
        super().__init__()
        if config.n_fft <= 0 or config.hop_length <= 0 or config.n_mels <= 0:
            raise ValueError("n_fft, hop_length and n_mels must be positive")
        if config.power <= 0:
            raise ValueError(f"power must be positive, got {config.power}")
        if config.amin <= 0:
            raise ValueError(f"amin must be positive, got {config.amin}")
        if config.top_db is not None and config.top_db < 0:
            raise ValueError(f"top_db must be non-negative, got {config.top_db}")
        if precision not in ("float32", "float64"):
            raise ValueError(f"precision must be 'float32' or 'float64', got {precision!r}")
        self.config = config
        self.precision: Precision = precision
        self.cpu_chunk_frames = cpu_chunk_frames
        self._stft_dtype = torch.float64 if precision == "float64" else torch.float32
        self.register_buffer("window", periodic_hann(config, self._stft_dtype), persistent=False)
        self.register_buffer("filterbank", mel_filterbank(config, torch.float32), persistent=False)
        self._block_cache: dict[tuple[str, bool], list[tuple[int, int, torch.Tensor]]] = {}
        self._workspace = threading.local()

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> LogMel:
        # Moves keep the device, but a parent's .float() / .half() must not lower the analysis precision:
        # rebuild the constants in their own dtypes on the new device.
        super()._apply(fn, recurse)
        self.window = periodic_hann(self.config, self._stft_dtype).to(self.window.device)
        self.filterbank = mel_filterbank(self.config).to(self.filterbank.device)
        self._block_cache = {}
        return self

    def __getstate__(self) -> dict[str, object]:
        # Per-thread buffers and derived blocks are caches: not copied, pickled or saved.
        state = self.__dict__.copy()
        state.pop("_workspace", None)
        state.pop("_block_cache", None)
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        super().__setstate__(state)
        self._block_cache = {}
        self._workspace = threading.local()

    def n_frames(self, n_samples: int) -> int:
        """Frames that a clip of ``n_samples`` samples gives (librosa's count)."""
        c = self.config
        if c.center:
            return 1 + n_samples // c.hop_length
        if n_samples < c.n_fft:
            raise ValueError(f"a clip of {n_samples} samples is shorter than n_fft={c.n_fft}")
        return 1 + (n_samples - c.n_fft) // c.hop_length

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.ndim not in (1, 2):
            raise ValueError(f"expected a waveform [T] or a batch [B, T], got shape {tuple(wave.shape)}")
        unbatched = wave.ndim == 1
        if unbatched:
            wave = wave.unsqueeze(0)
        batch, length = wave.shape
        n_frames = self.n_frames(length)
        out = torch.empty((batch, self.config.n_mels, n_frames), dtype=torch.float32, device=wave.device)
        step = batch
        if wave.device.type == "cpu" and self.cpu_chunk_frames > 0:
            step = max(1, self.cpu_chunk_frames // n_frames)
        with torch.no_grad():
            for start in range(0, batch, step):
                self._logmel_into(wave[start : start + step], out[start : start + step])
        return out[0] if unbatched else out

    def _logmel_into(self, wave: torch.Tensor, out: torch.Tensor) -> None:
        """Log-mel of ``wave [B, T]`` written into ``out [B, n_mels, frames]``."""
        c = self.config
        device = wave.device
        window = self.window.to(device)
        batch, length = wave.shape
        n_frames, n_freq = out.shape[-1], c.n_fft // 2 + 1
        # On CPU, large intermediates live in per-thread buffers that are reused: fresh multi-MB tensors
        # can be page-faulted in on every call, which cost more than the float64 FFT itself.
        ws = self._workspace if device.type == "cpu" else None

        if c.center:
            # librosa >= 0.10 pads with zeros ("constant") by default; torch.stft's centring reflects.
            half = c.n_fft // 2
            # In the compute dtype, so that the windowing below needs no separate cast of the frames.
            padded = _buffer(ws, "wave", (batch, length + 2 * half), window.dtype, device)
            padded[:, :half] = 0
            padded[:, half + length :] = 0
            padded[:, half : half + length] = wave
            wave = padded
        # Framing + rfft rather than torch.stft: the same numbers with fewer passes over memory, and the
        # spectrum comes out as contiguous [B, frames, freq]. (Without centring, the multiplication also
        # promotes the frames to the window's compute dtype.)
        frames = _buffer(ws, "frames", (batch, n_frames, c.n_fft), window.dtype, device)
        torch.mul(wave.unfold(-1, c.n_fft, c.hop_length), window, out=frames)
        # No out= here: torch computes into its own buffer and copies it into out.
        spec = torch.fft.rfft(frames)
        parts = _buffer(ws, "parts", (batch, n_frames, n_freq, 2), torch.float32, device)
        parts.copy_(torch.view_as_real(spec))
        if c.power == 2.0:
            # |X|**2 = re**2 + im**2: square the interleaved parts and let the projection do the sum,
            # with each filter weight repeated for the re and im columns (one fewer pass).
            power = parts.square_().view(batch * n_frames, 2 * n_freq)
            blocks = self._blocks(device, interleaved=True)
        else:
            power = parts[..., 0].square().addcmul_(parts[..., 1], parts[..., 1]).pow_(c.power / 2.0)
            power = power.view(batch * n_frames, n_freq)
            blocks = self._blocks(device, interleaved=False)

        # Mel power in blocks of mel bands, [block, B * frames, bands], then dB in place.
        width = blocks[0][2].shape[1]
        mel = _buffer(ws, "mel", (len(blocks), batch * n_frames, width), torch.float32, device)
        for k, (lo, hi, weights) in enumerate(blocks):
            torch.matmul(power[:, lo:hi], weights, out=mel[k])
        db = mel.clamp_(min=c.amin).log10_().mul_(10.0).view(len(blocks), batch, n_frames, width)
        if c.top_db is not None:
            # librosa.power_to_db: relative to the maximum of each clip (never of the batch).
            db.clamp_(min=db.amax(dim=(0, 2, 3), keepdim=True) - c.top_db)
        by_mel = db.permute(1, 0, 3, 2)  # [B, block, bands, frames]
        if len(blocks) * width == c.n_mels:
            out.view(batch, len(blocks), width, n_frames).copy_(by_mel)
        else:  # the last block was padded with empty bands
            out.copy_(by_mel.reshape(batch, len(blocks) * width, n_frames)[:, : c.n_mels])

    def _blocks(self, device: torch.device, interleaved: bool) -> list[tuple[int, int, torch.Tensor]]:
        """The filterbank as (first column, end column, weights [columns, bands]) blocks.

        On CPU, 16 mel bands per block, each block only over the FFT bins its filters touch: the
        filterbank is almost all zeros, so this is about 4x less work than one dense product. Other
        devices get one dense block (one kernel beats saved FLOPs there). A short last block is padded
        with empty bands so that all blocks have the same width.
        """
        key = (str(device), interleaved)
        cached = self._block_cache.get(key)
        if cached is not None:
            return cached
        fb = self.filterbank.detach().to(device=device, dtype=torch.float32)
        if interleaved:
            fb = fb.repeat_interleave(2, dim=1)
        width = min(_CPU_MEL_GROUP, fb.shape[0]) if device.type == "cpu" else fb.shape[0]
        blocks = []
        for start in range(0, fb.shape[0], width):
            sub = fb[start : start + width]
            used = torch.nonzero(sub.any(dim=0)).flatten()
            lo, hi = (int(used.min()), int(used.max()) + 1) if used.numel() else (0, 1)
            weights = torch.zeros((hi - lo, width), dtype=fb.dtype, device=device)
            weights[:, : sub.shape[0]] = sub[:, lo:hi].T
            blocks.append((lo, hi, weights))
        self._block_cache[key] = blocks
        return blocks


def _buffer(
    workspace: threading.local | None,
    name: str,
    shape: tuple[int, ...],
    dtype: torch.dtype,
    device: torch.device,
) -> torch.Tensor:
    """A tensor of ``shape`` from this thread's reusable storage (a fresh one without a workspace)."""
    if workspace is None:
        return torch.empty(shape, dtype=dtype, device=device)
    numel = math.prod(shape)
    store: torch.Tensor | None = getattr(workspace, name, None)
    if store is None or store.dtype != dtype or store.device != device or store.numel() < numel:
        store = torch.empty(numel, dtype=dtype, device=device)
        setattr(workspace, name, store)
    return store[:numel].view(shape)


@functools.lru_cache(maxsize=8)
def shared_logmel(config: FeatureConfig, device: str = "cpu", precision: Precision = "float64") -> LogMel:
    """One LogMel per (config, device, precision), reused: it holds no state that calls change."""
    return LogMel(config, precision).to(device)


def available_cpus() -> int:
    """CPUs this process may run on (the affinity mask, which containers and taskset restrict)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@contextlib.contextmanager
def single_threaded_workers(workers: int) -> Iterator[ThreadPoolExecutor]:
    """A thread pool whose threads run torch ops with one intra-op thread each.

    Clip-level parallelism on CPU: no OpenMP barriers, which stall badly (10x and worse) when other
    processes hold some of the cores, and each clip's intermediates stay in cache. torch ops release
    the GIL, so the threads do run in parallel. torch's thread setting is restored afterwards (setting it
    in a worker also changes the default of threads started later).
    """
    threads = torch.get_num_threads()
    pool = ThreadPoolExecutor(workers, "asdkit-features", initializer=torch.set_num_threads, initargs=(1,))
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(threads)


def module_device(module: torch.nn.Module) -> torch.device:
    """Where a front end's module runs: the device of its first buffer or parameter (CPU if it has none)."""
    for tensor in module.buffers():
        return tensor.device
    for tensor in module.parameters():
        return tensor.device
    return torch.device("cpu")


def logmel_numpy(module: torch.nn.Module, wave: np.ndarray) -> np.ndarray:
    """One clip through a front end (LogMel, Spectrum, ...) on its device, back as a float32 array."""
    with torch.inference_mode():
        return module(torch.from_numpy(wave).to(module_device(module))).cpu().numpy()


def compute_logmel(
    waves: Sequence[np.ndarray],
    config: FeatureConfig = FeatureConfig(),
    device: str = "cpu",
    batch_size: int = 32,
    precision: Precision = "float64",
    workers: int | None = None,
) -> list[np.ndarray]:
    """Log-mel arrays ``[n_mels, frames]`` (float32) for in-memory waveforms, in input order.

    On CPU, several clips are computed one per worker thread (see :func:`single_threaded_workers`) and a
    single clip in the calling thread; elsewhere, clips of equal length share batches of ``batch_size``
    (no padding across clips). Either way a clip's result does not depend on the other clips.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    arrays = [np.asarray(w, dtype=np.float32) for w in waves]
    for i, w in enumerate(arrays):
        if w.ndim != 1:
            raise ValueError(f"waveform {i} must be 1-D, got shape {w.shape}")
    if not arrays:
        return []
    module = shared_logmel(config, device, precision)
    if torch.device(device).type == "cpu":
        n_workers = min(len(arrays), workers or available_cpus())
        if n_workers == 1:  # e.g. one clip to score: this thread, whose buffers persist across calls
            return [logmel_numpy(module, w) for w in arrays]
        with single_threaded_workers(n_workers) as pool:
            return list(pool.map(functools.partial(logmel_numpy, module), arrays))
    return logmel_batches(module, arrays, batch_size)


def logmel_batches(module: torch.nn.Module, waves: Sequence[np.ndarray], batch_size: int) -> list[np.ndarray]:
    """Equal-length clips in batches of ``batch_size`` through a front end (the GPU way), in input order."""
    device = module_device(module)
    out: list[np.ndarray | None] = [None] * len(waves)
    by_length: dict[int, list[int]] = defaultdict(list)
    for i, w in enumerate(waves):
        by_length[len(w)].append(i)
    with torch.inference_mode():
        for indices in by_length.values():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                batch = torch.from_numpy(np.stack([waves[i] for i in chunk])).to(device)
                for i, f in zip(chunk, module(batch).cpu().numpy(), strict=True):
                    out[i] = f
    return out  # type: ignore[return-value]


def stack_frames(logmel: ArrayT, n_frames: int = 5) -> ArrayT:
    """Concatenate ``n_frames`` consecutive frames into one vector per position (the DCASE2020/2021 AE input).

    ``[n_mels, T]`` -> ``[T - n_frames + 1, n_mels * n_frames]`` (a leading batch dimension is kept):
    vector t holds frames t, t+1, ..., t+n_frames-1, block j (values ``j*n_mels:(j+1)*n_mels``) being
    frame t+j, as in the official baselines. Works on torch tensors and numpy arrays alike.
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be at least 1, got {n_frames}")
    if logmel.ndim not in (2, 3):
        raise ValueError(f"expected [n_mels, T] or [B, n_mels, T], got shape {tuple(logmel.shape)}")
    n_mels, length = logmel.shape[-2], logmel.shape[-1]
    if length < n_frames:
        raise ValueError(f"a clip of {length} frames is too short to stack {n_frames} frames")
    n_vectors = length - n_frames + 1
    lead = tuple(logmel.shape[:-2])
    if isinstance(logmel, torch.Tensor):
        windows = logmel.unfold(-1, n_frames, 1)  # [..., n_mels, n_vectors, n_frames]
        return windows.movedim(-3, -1).reshape(*lead, n_vectors, n_frames * n_mels)
    windows = np.lib.stride_tricks.sliding_window_view(logmel, n_frames, axis=-1)
    return np.ascontiguousarray(np.moveaxis(windows, -3, -1)).reshape(*lead, n_vectors, n_frames * n_mels)


@register_front_end
class LogMelFrontEnd(FrontEnd):
    """The log-mel spectrogram ``[n_mels, frames]`` of :class:`FeatureConfig` (every detector reads it)."""

    name = LOGMEL
    config_type = FeatureConfig

    def module(self, device: str = "cpu") -> torch.nn.Module:
        return shared_logmel(self.config, device)

    def cache_key(self) -> str:
        return str(self.config.key())  # unprefixed, as caches written before the registry are named

    def check_wave(self, wave: np.ndarray, audio: Path) -> None:
        c = self.config
        if not c.center and wave.shape[0] < c.n_fft:
            raise AudioError(f"{audio}: {wave.shape[0]} samples, shorter than one frame (n_fft={c.n_fft})")

    def compute(self, waves: Sequence[np.ndarray]) -> list[np.ndarray]:
        return compute_logmel(list(waves), self.config, workers=1)
