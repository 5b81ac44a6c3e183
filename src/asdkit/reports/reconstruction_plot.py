"""The reconstruction view: a clip's log-mel, what a reconstruction model rebuilds, and the error over time.

It shows *where* a clip looks anomalous to the model (a band it cannot rebuild, a moment the error
crosses the threshold), which a single clip score does not. Rendering uses matplotlib's Figure API with
the Agg canvas (no pyplot, no display), and the PNG is written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from asdkit.errors import AsdkitError
from asdkit.utils.io import atomic_open

#: Panel labels (set on the axes, so tests and tools can find the three panels among the colour bars).
PANELS = ("input", "reconstruction", "error")


def require_reconstruction(detector: Any) -> None:
    """One-line error for a model the view cannot show (it needs a network that rebuilds its input)."""
    from asdkit.detectors.reconstruction.family import ReconstructionDetector

    if not isinstance(detector, ReconstructionDetector):
        from asdkit.detectors.registry import available_detectors, get_detector_class

        usable = [
            n for n in available_detectors() if issubclass(get_detector_class(n), ReconstructionDetector)
        ]
        name = getattr(detector, "name", "") or type(detector).__name__
        raise AsdkitError(
            f"the reconstruction view needs a reconstruction model ({', '.join(usable)}), not {name!r}"
        )


def reconstruction_figure(detector: Any, logmel: np.ndarray, title: str = "") -> Any:
    """The three-panel matplotlib Figure (input, reconstruction, per-frame error) sharing one time axis."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    require_reconstruction(detector)
    logmel = np.asarray(logmel, dtype=np.float32)
    rebuilt, errors = detector.reconstruct(logmel)
    score = float(np.mean(detector.item_errors([logmel])[0]))
    threshold = float(detector.threshold_)
    config = detector.feature_config_
    n_mels, n_frames = logmel.shape
    step = config.hop_length / config.sample_rate  # seconds per frame; frame i is centred on i * step
    times = np.arange(n_frames) * step
    extent = (-0.5 * step, (n_frames - 0.5) * step, -0.5, n_mels - 0.5)
    # One colour scale for both spectrograms, from the input's range, so they compare at a glance.
    vmin, vmax = np.percentile(logmel, [0.5, 99.5])
    cmap = colormaps["magma"].with_extremes(bad="lightgrey")  # grey: frames the model does not rebuild

    fig = Figure(figsize=(11, 8.5), layout="constrained")
    grid = fig.add_gridspec(3, 2, width_ratios=[60, 1], height_ratios=[1, 1, 0.8])
    ax_in = fig.add_subplot(grid[0, 0], label=PANELS[0])
    ax_out = fig.add_subplot(grid[1, 0], sharex=ax_in, label=PANELS[1])
    ax_err = fig.add_subplot(grid[2, 0], sharex=ax_in, label=PANELS[2])
    for ax, image, name in ((ax_in, logmel, "input log-mel"), (ax_out, rebuilt, "reconstruction")):
        shown = ax.imshow(
            image, origin="lower", aspect="auto", extent=extent, cmap=cmap, vmin=vmin, vmax=vmax
        )
        ax.set_ylabel("mel band")
        ax.set_title(name, loc="left", fontsize=10)
        ax.tick_params(labelbottom=False)
        fig.colorbar(shown, cax=fig.add_subplot(grid[0 if ax is ax_in else 1, 1]), label="dB")

    verdict = "anomalous" if score > threshold else "normal"
    ax_err.plot(times, errors, color="tab:blue", linewidth=1.0, label="error per frame")
    ax_err.axhline(score, color="black", linestyle="--", linewidth=1.0, label=f"clip score {score:.4g}")
    if np.isfinite(threshold):  # +inf: the detector refused to decide (too few held-out scores)
        ax_err.axhline(
            threshold, color="tab:red", linestyle=":", linewidth=1.5, label=f"threshold {threshold:.4g}"
        )
    shown = [np.nanmax(errors), score] + ([threshold] if np.isfinite(threshold) else [])
    ax_err.set_xlim(extent[0], extent[1])
    ax_err.set_ylim(bottom=0.0, top=1.1 * float(np.nanmax(shown)))
    ax_err.set_xlabel("time (s)")
    ax_err.set_ylabel("error (dB²)")
    ax_err.set_title(f"reconstruction error: clip is {verdict}", loc="left", fontsize=10)
    # Above the panel, right of its title: inside, it would hide the error where anomalies often are.
    ax_err.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=3, fontsize=8, frameon=False)
    ax_err.grid(alpha=0.3)
    heading = f"{detector.name}: score {score:.4g}, threshold {threshold:.4g} ({verdict})"
    fig.suptitle(f"{title}\n{heading}" if title else heading, fontsize=11)
    return fig


def plot_reconstruction(detector: Any, logmel: np.ndarray, path: Path, title: str = "") -> Path:
    """Write the reconstruction view of one clip (log-mel ``[n_mels, frames]``) as a PNG at ``path``."""
    fig = reconstruction_figure(detector, logmel, title)
    path = Path(path)
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    return path
