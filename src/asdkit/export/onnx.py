"""The whole scoring path (log-mel front end, network, per-clip mean) as one ONNX model on a waveform.

The graph takes ``waveform`` [batch, samples] (float32, mono, at the model's sample rate, equal lengths
in a batch) and gives ``score`` [batch]: the detector's ``anomaly_score`` of each clip. The front end is
a DFT as a matrix product, not an FFT op: ``precision="float64"`` (default) windows and transforms in
float64 as :class:`asdkit.features.logmel.LogMel` does (onnxruntime's MatMul supports doubles), so the
scores match PyTorch's to float32 rounding; ``"float32"`` is smaller and faster, and drifts on quiet
high-frequency bins (see the README for the measured differences). Decoding, channel choice and
resampling stay outside the graph. The model's threshold, sample rate and feature settings are in the
ONNX metadata.
"""

from __future__ import annotations

import io
import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from asdkit import __version__
from asdkit.detectors.base import Detector
from asdkit.errors import AsdkitError, ModelError
from asdkit.features.config import FeatureConfig
from asdkit.features.logmel import mel_filterbank, periodic_hann
from asdkit.utils.io import atomic_write_bytes

#: Detectors whose clip score the graph reproduces: stacked-frame items scored by their ``_item_errors``
#: (conv_ae's patches, with their repetition of short clips, are not built in the graph).
EXPORTABLE = ("ae", "vae", "idnn")
OPSET = 17


class ScoringGraph(nn.Module):
    """Waveforms [B, T] -> clip scores [B], written with ops that trace to ONNX with dynamic B and T."""

    dft_re: torch.Tensor
    dft_im: torch.Tensor
    mel: torch.Tensor

    def __init__(self, detector: Detector, precision: str = "float64") -> None:
        super().__init__()
        if precision not in ("float32", "float64"):
            raise AsdkitError(f"precision must be 'float32' or 'float64', got {precision!r}")
        config = detector.feature_config_
        self.config = config
        self.detector = detector
        self.network = detector.network_.cpu().eval()
        dtype = torch.float64 if precision == "float64" else torch.float32
        n = torch.arange(config.n_fft, dtype=torch.float64)
        k = torch.arange(config.n_fft // 2 + 1, dtype=torch.float64)
        angle = 2 * math.pi * torch.outer(n, k) / config.n_fft
        window = periodic_hann(config, torch.float64)[:, None]
        # The window folded into the DFT matrices: one product per part instead of a product and a multiply.
        self.register_buffer("dft_re", (window * torch.cos(angle)).to(dtype))
        self.register_buffer("dft_im", (-window * torch.sin(angle)).to(dtype))
        self.register_buffer("mel", mel_filterbank(config, torch.float32).T.contiguous())

    def logmel(self, wave: torch.Tensor) -> torch.Tensor:
        """Log-mel in dB, [B, frames, n_mels] (frames first: the stacking below gathers along them)."""
        c = self.config
        if c.center:
            wave = nn.functional.pad(wave, (c.n_fft // 2, c.n_fft // 2))
        # Framing by gather (unfold does not export with a dynamic length): [B, F, n_fft].
        n_frames = (wave.shape[1] - c.n_fft) // c.hop_length + 1
        starts = torch.arange(n_frames, device=wave.device) * c.hop_length
        index = starts[:, None] + torch.arange(c.n_fft, device=wave.device)[None, :]
        frames = wave[:, index].to(self.dft_re.dtype)
        re = torch.matmul(frames, self.dft_re).float()
        im = torch.matmul(frames, self.dft_im).float()
        power = re * re + im * im
        if c.power != 2.0:
            power = power.pow(c.power / 2.0)
        db = 10.0 * torch.log10(torch.clamp(torch.matmul(power, self.mel), min=c.amin))  # [B, F, n_mels]
        if c.top_db is not None:
            db = torch.maximum(db, db.amax(dim=(1, 2), keepdim=True) - c.top_db)
        return db

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        db = self.logmel(wave)  # [B, F, n_mels]
        # Stacked frames as in stack_frames (vector t = frames t .. t+n-1, frame-major), by gather.
        n = self.detector.n_frames  # type: ignore[attr-defined]
        index = torch.arange(db.shape[1] - n + 1, device=db.device)[:, None] + torch.arange(n)[None, :]
        items = db[:, index].flatten(2)  # [B, vectors, n * n_mels]
        errors = self.detector._item_errors(self.network, items.flatten(0, 1))
        return errors.reshape(wave.shape[0], -1).mean(dim=1)


def export_onnx(
    detector: Detector,
    out: Path | str,
    *,
    precision: str = "float64",
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write ``detector``'s scoring path as one ONNX file (atomically); returns its path."""
    import onnx

    if detector.name not in EXPORTABLE:
        raise ModelError(
            f"{detector.name}: ONNX export supports {', '.join(EXPORTABLE)} only (models scored on "
            "stacked frames)"
        )
    if detector.name == "ae" and getattr(detector, "score", "mse") != "mse":
        raise ModelError("ae: ONNX export supports score=mse only (the graph has no error covariances)")
    detector._check_fitted()
    if type(detector.feature_config_) is not FeatureConfig:
        kind = type(detector.feature_config_).__name__
        raise ModelError(f"ONNX export supports the log-mel front end only, not {kind}")
    graph = ScoringGraph(detector, precision).eval()
    config = detector.feature_config_
    example = torch.zeros(1, config.sample_rate, dtype=torch.float32)
    buffer = io.BytesIO()
    # The tracing exporter warns about its own internals (constant folding of strided slices, tracer
    # notes); nothing a user can act on, and the parity tests check the graph's numbers.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            (example,),
            buffer,
            input_names=["waveform"],
            output_names=["score"],
            dynamic_axes={"waveform": {0: "batch", 1: "samples"}, "score": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    model = onnx.load_from_string(buffer.getvalue())
    props = {
        "asdkit_version": __version__,
        "detector": detector.name,
        "threshold": repr(detector.threshold_),
        "sample_rate": str(config.sample_rate),
        "features": json.dumps(config.to_dict()),
        "precision": precision,
        **{k: str(v) for k, v in (metadata or {}).items()},
    }
    onnx.helper.set_model_props(model, props)
    out = Path(out)
    atomic_write_bytes(out, model.SerializeToString())
    return out


def onnx_scores(path: Path | str, waves: list[np.ndarray]) -> np.ndarray:
    """Scores of waveforms by an exported model under onnxruntime (one clip per run: lengths may differ)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.array(
        [float(session.run(["score"], {"waveform": np.asarray(w, np.float32)[None, :]})[0][0]) for w in waves]
    )
