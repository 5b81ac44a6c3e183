"""AST (Gong et al., "AST: Audio Spectrogram Transformer", Interspeech 2021) through Hugging Face
``transformers`` (its ``ASTModel``), behind the :class:`AudioEncoder` interface.

The network is transformers' own; asdkit adds the input it was trained with and the frame layout the
front ends expect. Input: a Kaldi filterbank (128 bands, Hanning window, 25/10 ms; waveforms not scaled
to 16-bit range), zero-padded or cut to the model's ``max_length`` frames (1024: 10.24 s, as transformers'
``ASTFeatureExtractor`` does), normalised by the AudioSet statistics (mean -4.27, std 4.57, divided by 2
std). Output: every layer's patch embeddings without the CLS and distillation tokens, reordered
time-major (``frame_groups`` frequency patches per time step; the model orders them frequency-major); the
last layer after the final layer norm.

Weights are the user's: ``checkpoint`` is a directory written by ``save_pretrained`` (config.json and the
weights), read with ``local_files_only``: nothing is downloaded. A user who wants the published AudioSet
model fetches it once with transformers' own download, e.g. ``ASTModel.from_pretrained(
"MIT/ast-finetuned-audioset-10-10-0.4593").save_pretrained("ast")``, and passes ``checkpoint=ast``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from asdkit.models.encoders.base import AudioEncoder, CheckpointError, file_problem, register_encoder
from asdkit.models.encoders.kaldi_fbank import KaldiFbank

PUBLISHED_AT = (
    "https://huggingface.co/MIT/ast-finetuned-audioset-10-10-0.4593 (fetch it once with transformers: "
    "ASTModel.from_pretrained(NAME).save_pretrained(DIR), then give checkpoint=DIR)"
)
#: What an AST checkpoint is and where the published one is, for error messages.
WHERE = f"expected a directory written by save_pretrained (config.json and weights); {PUBLISHED_AT}"
#: The filterbank statistics of transformers' ASTFeatureExtractor (AudioSet)
FBANK_MEAN, FBANK_STD = -4.2677393, 4.5689974


def _transformers() -> Any:
    try:
        import transformers
    except ModuleNotFoundError:
        raise CheckpointError("the ast encoder needs transformers: pip install 'asdkit[finetune]'") from None
    transformers.utils.logging.disable_progress_bar()  # no loading bars in asdkit's one-line-per-event output
    return transformers


@register_encoder
class AstEncoder(AudioEncoder):
    """AST of transformers: 16-kHz waveforms -> every layer's patch embeddings ``[B, t * f, hidden]``."""

    name: ClassVar[str] = "ast"
    published_at: ClassVar[str] = PUBLISHED_AT
    sample_rate = 16000
    #: the attention projections as transformers 5 names them, and as transformers 4 did
    lora_targets: ClassVar[tuple[str, ...]] = (
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "query",
        "key",
        "value",
    )

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        cfg = model.config
        self.embed_dim = cfg.hidden_size
        self.num_layers = cfg.num_hidden_layers
        self.max_length = cfg.max_length
        self.patch = cfg.patch_size
        self.f_dim = (cfg.num_mel_bins - cfg.patch_size) // cfg.frequency_stride + 1
        self.t_dim = (cfg.max_length - cfg.patch_size) // cfg.time_stride + 1
        self.time_stride = cfg.time_stride
        self.frame_groups = self.f_dim
        self.fbank = KaldiFbank(self.sample_rate, n_mels=cfg.num_mel_bins)
        n = torch.arange(self.fbank.win, dtype=torch.float64)
        hanning = 0.5 - 0.5 * torch.cos(2 * math.pi * n / (self.fbank.win - 1))
        self.fbank.window = hanning.to(torch.float32)

    @property
    def min_samples(self) -> int:
        return self.fbank.win

    def forward(self, waveform: torch.Tensor, padding_mask: torch.Tensor | None = None) -> list[torch.Tensor]:
        if waveform.ndim != 2 or waveform.shape[1] < self.min_samples:
            raise ValueError(
                f"ast: expected waveforms [B, T] of at least {self.min_samples} samples, "
                f"got {tuple(waveform.shape)}"
            )
        fbank = self.fbank(waveform)
        if padding_mask is not None:  # as the clip alone: its filterbank ends, zeros follow
            fbank = fbank.masked_fill(self._padding_frames(padding_mask)[..., None], 0.0)
        fbank = fbank[:, : self.max_length]
        fbank = nn.functional.pad(fbank, (0, 0, 0, self.max_length - fbank.shape[1]))
        fbank = (fbank - FBANK_MEAN) / (2 * FBANK_STD)
        out = self.model(input_values=fbank, output_hidden_states=True)
        layers = [*out.hidden_states[1:-1], out.last_hidden_state]
        # drop the CLS and distillation tokens; frequency-major patches -> time-major
        return [h[:, 2:].unflatten(1, (self.f_dim, self.t_dim)).transpose(1, 2).flatten(1, 2) for h in layers]

    def frame_padding_mask(self, padding_mask: torch.Tensor, n_frames: int) -> torch.Tensor:
        """A time patch is padding when all its filterbank frames are (frames past the clip included)."""
        frames = self._padding_frames(padding_mask)[:, : self.max_length]
        frames = nn.functional.pad(frames, (0, self.max_length - frames.shape[1]), value=True)
        patches = frames.unfold(1, self.patch, self.time_stride).all(-1)
        return patches.repeat_interleave(self.frame_groups, dim=1)[:, :n_frames]

    def _padding_frames(self, padding_mask: torch.Tensor) -> torch.Tensor:
        """A filterbank frame that holds any padding sample would not exist for the clip alone."""
        return padding_mask.unfold(1, self.fbank.win, self.fbank.hop).any(-1)

    # -- weights: a save_pretrained directory -------------------------------------------------------------
    @classmethod
    def checkpoint_problem(cls, path: Path | str) -> str:
        return file_problem(path, WHERE, inside="config.json", kind="AST model directory")

    @classmethod
    def from_checkpoint(cls, path: Path | str) -> AstEncoder:
        transformers = _transformers()
        folder = Path(str(path)).expanduser()
        problem = cls.checkpoint_problem(path)
        if problem:
            raise CheckpointError(problem)
        try:
            model = transformers.ASTModel.from_pretrained(str(folder), local_files_only=True)
        except Exception as exc:  # transformers raises many kinds for a wrong or partial directory
            reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            raise CheckpointError(f"{folder}: not a readable AST model ({reason}); {WHERE}") from None
        return cls(model).eval()

    def architecture(self) -> dict[str, Any]:
        return self.model.config.to_dict()

    @classmethod
    def from_architecture(cls, architecture: dict[str, Any]) -> AstEncoder:
        transformers = _transformers()
        return cls(transformers.ASTModel(transformers.ASTConfig.from_dict(architecture)))

    def transformer_layers(self) -> list[nn.Module]:
        stack = getattr(self.model, "layers", None)  # transformers 5; 4 kept them in encoder.layer
        return list(stack if stack is not None else self.model.encoder.layer)

    @staticmethod
    def tiny_config() -> dict[str, Any]:
        """Two narrow layers over 2.56 s (256 frames) of non-overlapping patches: every code path, seconds
        on a CPU (the published model's patches overlap: strides 10)."""
        return {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
                "max_length": 256, "frequency_stride": 16, "time_stride": 16}  # fmt: skip

    @classmethod
    def tiny(cls, seed: int = 0) -> AstEncoder:
        torch.manual_seed(seed)
        return cls.from_architecture(cls.tiny_config()).eval()

    @classmethod
    def save_random_checkpoint(cls, path: Path | str, seed: int = 0, size: str = "tiny") -> Path:
        if size != "tiny":
            raise ValueError(f"ast: random checkpoints come in size 'tiny', not {size!r}")
        model = cls.tiny(seed)  # (transformers' progress bars are off from here)
        path = Path(path)
        model.model.save_pretrained(str(path))
        return path
