"""``asdkit demo``: the synthetic machine sounds, generated once and cached, then the default detector."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asdkit.detectors.registry import DEFAULT_DETECTOR
from asdkit.errors import DataError
from asdkit.utils.io import atomic_write_text

if TYPE_CHECKING:
    from asdkit.run_result import RunResult

#: The demo trains for minutes, not the official 100 epochs (tens of minutes on 2 cores);
#: the synthetic data's difficulty was calibrated at this epoch count.
DEMO_PARAMS: dict[str, Any] = {"epochs": 20}
MARKER_FILE = ".asdkit-synthetic.json"


def demo(
    out: Path | str = "asdkit-demo",
    *,
    seed: int = 0,
    debug: bool = False,
    cache_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> RunResult:
    """Generate the synthetic machine sounds (unless already there), then ``run`` the default detector."""
    from asdkit.api import run

    out = Path(out)
    data = demo_data(out, seed, debug, progress)
    if progress is not None:
        progress(f"detector {DEFAULT_DETECTOR} (the default; any other: asdkit run --model NAME)")
    return run(
        data,
        out / "run",
        model=DEFAULT_DETECTOR,
        seed=seed,
        debug=debug,
        cache_dir=cache_dir,
        progress=progress,
        overwrite=True,  # a demo run is a fresh one each time
    )


def demo_data(out: Path, seed: int, debug: bool, progress: Callable[[str], None] | None) -> Path:
    """The demo's synthetic set, rebuilt from scratch when the spec or the generator changed.

    A fresh set is rendered beside the old one and swapped in, so an interrupted generation never leaves a
    mix of old and new clips; only a folder carrying asdkit's marker is ever replaced.
    """
    from asdkit.data.synthetic import GENERATOR_VERSION, SyntheticSpec, generate

    data = out / ("data-debug" if debug else "data")
    spec = SyntheticSpec.tiny(seed=seed) if debug else SyntheticSpec(seed=seed)
    wanted = json.dumps({"spec": repr(spec), "generator": GENERATOR_VERSION}, sort_keys=True)
    marker = data / MARKER_FILE
    if marker.is_file() and marker.read_text() == wanted:
        return data
    if data.exists() and any(data.iterdir()) and not marker.is_file():
        raise DataError(f"{data}: exists and was not written by asdkit demo; choose another output folder")
    if progress is not None:
        progress(f"generating synthetic machine sounds in {data}")
    fresh = data.with_name(data.name + ".partial")
    shutil.rmtree(fresh, ignore_errors=True)
    generate(fresh, layout="dcase2022", spec=spec, progress=progress is not None)
    atomic_write_text(fresh / MARKER_FILE, wanted)
    if data.exists():
        shutil.rmtree(data)
    fresh.rename(data)
    return data
