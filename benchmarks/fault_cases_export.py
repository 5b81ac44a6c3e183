"""ONNX export audit cases (issue 27, item 6): the README's ``asdkit export`` on a default-detector run, and a
detector without a graph.

``CASES`` is a list of (name, case); ``case(scratch)`` gets a fresh empty folder and returns (exit code, ok,
short note). ``benchmarks/fault_audit.py`` imports it; ``python benchmarks/fault_cases_export.py`` prints
this module's table alone.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from fault_cases_input import Outcome, cli, one_error_line, run, tree


def export_default_run(scratch: Path) -> Outcome:
    """Exit 0, and the graph's scores of the test clips are those ``asdkit score`` prints (1e-4)."""
    from asdkit.data.audio import load_audio
    from asdkit.data.naming.clipname import section_from_name
    from asdkit.export.onnx import onnx_scores

    data, out = tree(scratch), scratch / "run"
    proc = cli("run", "--data", data, "--out", out, "--no-plots", "--cache-dir", scratch / "cache")
    if proc.returncode != 0:
        raise RuntimeError(f"the default run failed: {proc.stderr.strip().splitlines()[-1:]}")
    model = json.loads((out / "models" / "fan" / "model.json").read_text())["detector"]
    exported = cli("export", out, "--machine", "fan", "-o", scratch / "fan.onnx")
    if exported.returncode != 0:
        return exported.returncode, False, exported.stderr.strip().splitlines()[-1][:120]
    clips = sorted((data / "fan" / "test").glob("*.wav"))
    scored = cli("score", out, *clips)
    expected = np.array([float(r["score"]) for r in csv.DictReader(io.StringIO(scored.stdout))])
    sections = [section_from_name(c.name) or "" for c in clips]
    got = onnx_scores(scratch / "fan.onnx", [load_audio(c) for c in clips], sections)
    worst = float(np.max(np.abs(got - expected) / np.maximum(np.abs(expected), 1.0)))
    ok = model == "ensemble" and len(got) == len(expected) > 0 and worst <= 1e-4
    return (
        exported.returncode,
        ok,
        f"{model}: {len(got)} clips, largest difference to asdkit score {worst:.1e}",
    )


def export_without_a_graph(scratch: Path) -> Outcome:
    """One ``error:`` line saying why, a non-zero exit, and no file."""
    out = scratch / "run"
    proc = run(tree(scratch), out, "conv_ae")
    if proc.returncode != 0:
        raise RuntimeError(f"the conv_ae run failed: {proc.stderr.strip().splitlines()[-1:]}")
    target = scratch / "fan.onnx"
    exported = cli("export", out, "--machine", "fan", "-o", target)
    ok = (
        one_error_line(exported, "conv_ae: cannot be exported to ONNX", "exportable:") and not target.exists()
    )
    return exported.returncode, ok, (exported.stderr.strip().splitlines() or [""])[-1][:120]


CASES: list[tuple[str, Callable[[Path], Outcome]]] = [
    ("export: the default detector's run (README example)", export_default_run),
    ("export: conv_ae (no graph) is one line saying why", export_without_a_graph),
]


if __name__ == "__main__":
    import fault_audit

    sys.exit(fault_audit.main(["--only", "export:"]))
