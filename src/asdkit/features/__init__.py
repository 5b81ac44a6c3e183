"""Feature extraction: the log-mel front end, frame stacking and the on-disk feature cache."""

from asdkit.features.cache import FeatureCache, FeatureResult, default_cache_dir
from asdkit.features.config import FeatureConfig
from asdkit.features.logmel import LogMel, compute_logmel, mel_filterbank, stack_frames

__all__ = [
    "FeatureCache",
    "FeatureConfig",
    "FeatureResult",
    "LogMel",
    "compute_logmel",
    "default_cache_dir",
    "mel_filterbank",
    "stack_frames",
]
