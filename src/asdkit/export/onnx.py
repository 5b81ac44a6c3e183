"""The whole scoring path (log-mel front end, the detector's scoring) as one ONNX model on a waveform.

The graph takes ``waveform`` [batch, samples] (float32, mono, at the model's sample rate, equal lengths
in a batch) and, for detectors with memory banks per section (knn, mahalanobis, gmm, patch_bank and
ensembles holding one), ``section`` [batch] (int64: the index of the clip's section in the metadata's
``sections`` list, -1 when unknown: every bank is searched, as ``asdkit score`` does for a clip without a
section). It gives ``score`` [batch] (float64): the detector's ``anomaly_score`` of each clip. The front end
is ONNX's own ``STFT`` (opset 17, from ``torch.stft``); ``precision="float64"`` (default) windows and
transforms in float64 as :class:`asdkit.features.logmel.LogMel` does, ``"float32"`` is faster and drifts
on quiet high-frequency bins. The mel projection is the Slaney filterbank as a constant matrix: ONNX's
``MelWeightMatrix`` builds HTK-scale triangles of peak 1 snapped to whole FFT bins, not librosa's
area-normalised Slaney filters (README, "ONNX export"). Decoding, channel choice and resampling stay outside
the graph. The threshold (decide ``score > threshold``), sample rate, feature settings and sections are in
the ONNX metadata.
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from asdkit import __version__
from asdkit.detectors.base import Detector
from asdkit.errors import AsdkitError, ModelError
from asdkit.export.graph import LogMelGraph, bank_sections, build_head
from asdkit.features.config import FeatureConfig
from asdkit.utils.io import atomic_write_bytes

OPSET = 17


class ScoringGraph(nn.Module):
    """Waveforms [B, T] and section indices [B] -> clip scores [B]: the front end, then the head."""

    def __init__(self, detector: Detector, precision: str = "float64") -> None:
        super().__init__()
        self.sections = bank_sections(detector)
        self.head = build_head(detector, self.sections)
        self.front = LogMelGraph(detector.feature_config_, precision)

    def forward(self, wave: torch.Tensor, section: torch.Tensor) -> torch.Tensor:
        return self.head(self.front(wave), section)


def export_onnx(
    detector: Detector,
    out: Path | str,
    *,
    precision: str = "float64",
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write ``detector``'s scoring path as one ONNX file (atomically); returns its path.

    A detector without a graph (see :data:`asdkit.export.graph.NOT_EXPORTABLE`) is a one-line
    :class:`ModelError` saying why, and nothing is written.
    """
    import onnx

    detector._check_fitted()
    if type(detector.feature_config_) is not FeatureConfig:
        kind = type(detector.feature_config_).__name__
        raise ModelError(f"ONNX export supports the log-mel front end only, not {kind}")
    graph = ScoringGraph(detector, precision).eval()
    config = detector.feature_config_
    example = torch.zeros(1, config.sample_rate, dtype=torch.float32)
    names, axes = ["waveform"], {"waveform": {0: "batch", 1: "samples"}, "score": {0: "batch"}}
    module: nn.Module = graph
    inputs: tuple[torch.Tensor, ...] = (example,)
    if graph.sections:
        names.append("section")
        axes["section"] = {0: "batch"}
        inputs = (example, torch.zeros(1, dtype=torch.int64))
    else:
        module = _WaveformOnly(graph)
    model = to_onnx_model(module, inputs, names, axes)
    props = {
        "asdkit_version": __version__,
        "detector": detector.name,
        "threshold": repr(detector.threshold_),
        "decision": "anomalous when score > threshold",
        "sample_rate": str(config.sample_rate),
        "features": json.dumps(config.to_dict()),
        "precision": precision,
        "inputs": ", ".join(names),
        "sections": json.dumps(graph.sections),
        **{k: str(v) for k, v in (metadata or {}).items()},
    }
    onnx.helper.set_model_props(model, props)
    out = Path(out)
    atomic_write_bytes(out, model.SerializeToString())
    return out


def export_front_end(config: FeatureConfig, out: Path | str, precision: str = "float64") -> Path:
    """The log-mel front end alone as ONNX: ``waveform`` [batch, samples] -> ``logmel`` [batch, frames,
    n_mels] in dB (for checking it against :class:`asdkit.features.logmel.LogMel` and timing it)."""
    example = (torch.zeros(1, config.sample_rate),)
    axes = {"waveform": {0: "batch", 1: "samples"}, "logmel": {0: "batch", 1: "frames"}}
    model = to_onnx_model(LogMelGraph(config, precision).eval(), example, ["waveform"], axes, "logmel")
    out = Path(out)
    atomic_write_bytes(out, model.SerializeToString())
    return out


def to_onnx_model(
    module: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    names: list[str],
    axes: dict[str, dict[int, str]],
    output: str = "score",
) -> Any:
    """``module`` traced to an ONNX ModelProto (the TorchScript exporter: it turns torch.stft into STFT)."""
    import onnx

    buffer = io.BytesIO()
    # The tracing exporter warns about its own internals (constant folding of strided slices, tracer
    # notes, its deprecation); nothing a user can act on, and the parity tests check the numbers.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            inputs,
            buffer,
            input_names=names,
            output_names=[output],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
    return onnx.load_from_string(buffer.getvalue())


class _WaveformOnly(nn.Module):
    """A graph without memory banks takes no section."""

    def __init__(self, graph: ScoringGraph) -> None:
        super().__init__()
        self.graph = graph

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.graph(wave, torch.zeros(wave.shape[0], dtype=torch.int64))


def section_indices(path: Path | str, sections: Sequence[str]) -> np.ndarray:
    """The ``section`` input of an exported model for section names ("" or a section it lacks: -1)."""
    import onnx

    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    known = json.loads(props.get("sections", "[]"))
    return np.array([known.index(s) if s in known else -1 for s in sections], dtype=np.int64)


def onnx_session(path: Path | str, threads: int | None = None) -> Any:
    """An onnxruntime CPU session of an exported model (``threads``: its intra-op threads; default all)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_scores(
    path: Path | str,
    waves: list[np.ndarray],
    sections: Sequence[str] | None = None,
    threads: int | None = None,
) -> np.ndarray:
    """Scores of waveforms by an exported model under onnxruntime (one clip per run: lengths may differ).

    ``sections``: each clip's section name, for models with memory banks (default: unknown, every bank).
    """
    session = onnx_session(path, threads)
    takes_section = any(i.name == "section" for i in session.get_inputs())
    index = section_indices(path, sections if sections is not None else [""] * len(waves))
    if len(index) != len(waves):
        raise AsdkitError(f"{len(waves)} waveforms but {len(index)} sections")
    scores = []
    for wave, section in zip(waves, index, strict=True):
        feed = {"waveform": np.asarray(wave, np.float32)[None, :]}
        if takes_section:
            feed["section"] = section.reshape(1)
        scores.append(float(session.run(["score"], feed)[0][0]))
    return np.array(scores)
