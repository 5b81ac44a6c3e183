"""Feature extraction: the log-mel front end, frame stacking, clip spectra and the on-disk feature cache."""

from asdkit.features.cache import FeatureCache, FeatureResult, default_cache_dir
from asdkit.features.config import FeatureConfig
from asdkit.features.logmel import LogMel, compute_logmel, mel_filterbank, stack_frames
from asdkit.features.spectrum import Spectrum, SpectrumConfig, compute_spectrum

__all__ = [
    "FeatureCache",
    "FeatureConfig",
    "FeatureResult",
    "LogMel",
    "Spectrum",
    "SpectrumConfig",
    "compute_logmel",
    "compute_spectrum",
    "default_cache_dir",
    "mel_filterbank",
    "stack_frames",
]
