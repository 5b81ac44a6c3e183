"""DCASE2020 Task 2 development sets: ``<machine>/{train,test}/{normal,anomaly}_id_XX_NNNNNNNN.wav``.

2020 had no domains (all clips are "source") and its sections are the machine ids; the official score
files are ``anomaly_score_<machine>_id_XX.csv``, hence the group ``<machine>_id_XX``. The name rules are
:mod:`asdkit.data.naming.dcase2020`.
"""

from __future__ import annotations

from pathlib import Path

from asdkit.data.layouts.common import MachineScan, Tree, finish_machine
from asdkit.data.manifest import SOURCE, TEST, TRAIN, Clip
from asdkit.data.naming import dcase2020 as naming

NAME = "dcase2020"
PATTERN = "<machine>/{train,test}/{normal,anomaly}_id_XX_NNNNNNNN.wav"


def parse_clip(path: Path, machine: str, split: str) -> Clip | None:
    """One 2020 development clip, or None when the name is not a 2020 name."""
    fields = naming.parse_name(path.name)
    if fields is None:
        return None
    return Clip(
        path=path,
        name=path.name,  # given, so Clip need not build another Path
        machine=machine,
        section=fields.section,
        domain=SOURCE,
        split=split,
        label=fields.label,
        group=naming.group(machine, fields.section) if split == TEST else "",
    )


def scan_machine(tree: Tree, machine: str, machine_dir: Path) -> MachineScan:
    clips: list[Clip] = []
    for split in (TRAIN, TEST):
        folder = tree.child(machine_dir, naming.folder(split))
        if folder is None:
            continue
        for path in tree.wavs(folder):
            clip = parse_clip(path, machine, split)
            if clip is not None:
                clips.append(clip)
    return finish_machine(tree, machine_dir, clips)
