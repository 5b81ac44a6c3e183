"""Putting an evaluator's ground-truth files beside a downloaded evaluation set.

The organisers publish ground truth in the evaluators' repositories, not on Zenodo, so ``asdkit download``
cannot fetch it; a user who has a checkout copies it with :func:`prepare_ground_truth` into
``<root>/dcase<YEAR>/ground_truth``, the folder ``--ground-truth`` then takes. Only the CSV lists that
:func:`asdkit.data.ground_truth.load_ground_truth` reads are copied (folder names kept: they carry
meaning, e.g. ``ground_truth_domain``), and the copy is renamed into place only once it reads back.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from asdkit.data.catalogue import RELEASES
from asdkit.data.ground_truth import load_ground_truth
from asdkit.errors import AsdkitError, DataError


def prepare_ground_truth(year: str | int, source: Path | str, root: Path | str) -> tuple[Path, int]:
    """Copy the ground-truth lists under ``source`` into ``root/dcase<year>/ground_truth``.

    Returns the destination and the number of files copied. A source without any readable list is a
    DataError and leaves nothing behind; an existing destination is replaced only after the new copy
    was read back.
    """
    if not str(year).isdigit() or int(year) not in RELEASES:
        raise AsdkitError(f"year {year!r}: expected one of {', '.join(map(str, RELEASES))}")
    source = Path(source).expanduser()
    truth = load_ground_truth(source)  # raises DataError naming the path when nothing is readable
    if not truth.labels:
        raise DataError(f"{source}: holds no labels")
    dest = Path(root) / f"dcase{year}" / "ground_truth"
    staging = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    files = [source] if source.is_file() else sorted(source.rglob("*.csv"))
    for f in files:
        rel = Path(f.name) if source.is_file() else f.relative_to(source)
        if any(part.startswith(".") for part in rel.parts):
            continue
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, staging / rel)
    try:
        load_ground_truth(staging)
    except DataError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if dest.exists():
        shutil.rmtree(dest)
    staging.rename(dest)
    return dest, sum(1 for _ in dest.rglob("*.csv"))
