"""The fault and bad-input audit: run every case, print one table (case, exit code, verdict, note).

Usage::

    python benchmarks/fault_audit.py                  # every case of every case module
    python benchmarks/fault_audit.py --only resume    # the cases whose name holds "resume"
    python benchmarks/fault_audit.py --skip tracking  # all but those

It exits 1 when a case FAILs, so it can gate a release.

Case modules (beside this script; a module that is absent is reported and skipped):

- ``fault_cases_run``: the run directory and exit codes (locks, reruns, status, Ctrl-C, resume, parameters,
  seeds, tracking, port, full disk, service error text).
- ``fault_cases_input``: bad input (thresholds, non-finite scores, short, truncated and vanishing clips,
  model.json validation).
- ``fault_cases_export``: ONNX export (the default detector's run, a detector without a graph).
- ``fault_cases_odd``: odd input of issue 27 (clips at 44.1/48 kHz, decoded-size limits, damaged weights,
  usage errors, submission values, the default detector in the service and its benchmark).

Contract for a case module: it exports
``CASES: list[tuple[str, Callable[[Path], tuple[int, bool, str]]]]``, a case name and a function that takes
a fresh, empty scratch directory (its own; deleted afterwards) and returns ``(exit code observed, ok?,
short note)``. The exit code is the CLI's (or, for a case that drives the service in-process, the HTTP
status, which the note then says). A case that raises counts as FAIL with the exception as its note.
A case runs the CLI as a user's script does (a subprocess) where it can.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the case modules beside this script

CASE_MODULES = ("fault_cases_run", "fault_cases_input", "fault_cases_export", "fault_cases_odd")
Case = tuple[str, Callable[[Path], tuple[int, bool, str]]]


def load_cases() -> tuple[list[tuple[str, Case]], list[str]]:
    """(module name, case) for every case of every present module, and the modules that are absent."""
    cases: list[tuple[str, Case]] = []
    missing: list[str] = []
    for name in CASE_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            missing.append(name)
            continue
        cases += [(name, case) for case in module.CASES]
    return cases, missing


def run_case(case: Case, scratch: Path) -> dict[str, object]:
    name, function = case
    start = time.perf_counter()
    try:
        code, ok, note = function(scratch)
    except Exception as exc:  # a broken case is a FAIL, and the audit goes on
        last = traceback.extract_tb(exc.__traceback__)[-1]
        code, ok, note = -1, False, f"{type(exc).__name__}: {exc} ({Path(last.filename).name}:{last.lineno})"
    return {
        "case": name,
        "exit": code,
        "verdict": "PASS" if ok else "FAIL",
        "seconds": round(time.perf_counter() - start, 1),
        "note": " ".join(str(note).replace(str(scratch), "SCRATCH").split())[:110],
    }


def table(rows: list[dict[str, object]], columns: list[str]) -> str:
    """Aligned columns: text to the left, numbers to the right (so the notes stay readable)."""
    cells = [[str(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    numeric = [all(isinstance(row[c], (int, float)) for row in rows) for c in columns]

    def line(values: list[str]) -> str:
        parts = (v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True))
        return "  ".join(parts).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths]), *map(line, cells)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="Run only the cases whose name contains this text.")
    parser.add_argument("--skip", action="append", default=[], help="Leave out cases whose name has this.")
    args = parser.parse_args(argv)
    cases, missing = load_cases()
    for name in missing:
        print(f"(case module {name} is absent: its cases are not run)")
    selected = [
        (module, case)
        for module, case in cases
        if args.only in case[0] and not any(text in case[0] for text in args.skip)
    ]
    rows = []
    work = Path(tempfile.mkdtemp(prefix="asdkit-fault-audit-"))
    try:
        for i, (module, case) in enumerate(selected):
            scratch = work / f"{i:03d}"
            scratch.mkdir()
            row = run_case(case, scratch)
            rows.append({"module": module.removeprefix("fault_cases_"), **row})
            print(f"[{i + 1}/{len(selected)}] {row['verdict']} {row['case']}", file=sys.stderr, flush=True)
            shutil.rmtree(scratch, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(table(rows, ["case", "module", "exit", "verdict", "seconds", "note"]))
    failed = sum(row["verdict"] == "FAIL" for row in rows)
    print(f"\n{len(rows) - failed} PASS, {failed} FAIL of {len(rows)} cases")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
