"""The raw MIMII tree: ``<snr>_<machine>/<machine>/id_XX/{normal,abnormal}/NNNNNNNN.wav`` (8 channels).

MIMII has no train/test split, so this scanner makes the one DCASE2020 made from the same recordings:
for each machine id, every abnormal clip is a test clip, and as many normal clips as there are
abnormal ones are held out for test (never more than half of the normals, so training keeps at least
as many as it gives up); the other normals are for training. Which normals are held out is a seeded
permutation (seed ``SPLIT_SEED``, the same for every run) of the normals sorted by name, so every
model is tested on the same clips.

The machine is the name of the folder under the root (``0_dB_pump``: two noise levels of one machine
are two data sets), or the inner ``<machine>`` folder's name when the root is one ``<snr>_<machine>``
folder. Sections are the machine ids and clips are named as DCASE2020 named them
(``{normal,anomaly}_id_XX_NNNNNNNN.wav``), so the score files are 2020's and are evaluated by the 2020
rules. The channel is chosen when features are computed (``--channel``: 0 by default, or ``mix``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from asdkit.data.layouts.common import MachineScan, Tree, finish_machine
from asdkit.data.manifest import ANOMALY, NORMAL, SOURCE, TEST, TRAIN, Clip
from asdkit.data.naming import dcase2020
from asdkit.data.naming import mimii as naming

NAME = "mimii"
PATTERN = "<snr>_<machine>/<machine>/id_XX/{normal,abnormal}/NNNNNNNN.wav (raw MIMII)"
SPLIT_SEED = 0


def _id_dirs(tree: Tree, machine_dir: Path) -> list[tuple[str, Path]]:
    """``(section, folder)`` of the ``id_XX`` folders directly below, or one level further down."""
    direct = [(s, d) for d in tree.subdirs(machine_dir) if (s := naming.section_of_dir(d.name)) is not None]
    if direct:
        return direct
    return [
        (s, d)
        for inner in tree.subdirs(machine_dir)
        for d in tree.subdirs(inner)
        if (s := naming.section_of_dir(d.name)) is not None
    ]


def held_out(n_normal: int, n_anomaly: int) -> np.ndarray:
    """Indices (into the name-sorted normals) of the normals held out for test: the split rule."""
    n_test = min(n_anomaly, n_normal // 2)
    order = np.random.default_rng(SPLIT_SEED).permutation(n_normal)
    return np.sort(order[:n_test])


def _clip(path: Path, machine: str, section: str, split: str, label: int, index: int) -> Clip:
    return Clip(
        path=path,
        machine=machine,
        section=section,
        domain=SOURCE,
        split=split,
        label=label,
        name=naming.clip_name(section, label, index),
        group=dcase2020.group(machine, section) if split == TEST else "",
    )


def _numbered(paths: list[Path]) -> list[tuple[Path, int]]:
    """The files named by a clip number (all of a raw MIMII tree); others are left to be reported."""
    return [(p, i) for p in paths if (i := naming.index_of_raw_name(p.name)) is not None]


def scan_machine(tree: Tree, machine: str, machine_dir: Path) -> MachineScan:
    clips: list[Clip] = []
    for section, id_dir in _id_dirs(tree, machine_dir):
        found = {
            label: _numbered(tree.wavs(d))
            for name, label in naming.CLASS_DIRS.items()
            if (d := tree.child(id_dir, name)) is not None
        }
        normals, anomalies = found.get(NORMAL, []), found.get(ANOMALY, [])
        test_idx = set(held_out(len(normals), len(anomalies)).tolist())
        for i, (path, index) in enumerate(normals):
            clips.append(_clip(path, machine, section, TEST if i in test_idx else TRAIN, NORMAL, index))
        clips.extend(_clip(path, machine, section, TEST, ANOMALY, index) for path, index in anomalies)
    return finish_machine(tree, machine_dir, clips)
