"""DCASE2020 Task 2 development sets: ``<machine>/{train,test}/{normal,anomaly}_id_XX_NNNNNNNN.wav``.

2020 had no domains (all clips are "source") and its sections are the machine ids; the official score
files are ``anomaly_score_<machine>_id_XX.csv``, hence the group ``<machine>_id_XX``.
"""

from __future__ import annotations

from pathlib import Path

from asdkit.data.layouts.common import DCASE2020_NAME, MachineScan, Tree, finish_machine, label_from_word
from asdkit.data.manifest import SOURCE, TEST, TRAIN, Clip

NAME = "dcase2020"
PATTERN = "<machine>/{train,test}/{normal,anomaly}_id_XX_NNNNNNNN.wav"


def group_2020(machine: str, section: str) -> str:
    """The 2020 submission group: ``anomaly_score_<machine>_id_XX.csv``."""
    return f"{machine}_id_{section}"


def parse_clip(path: Path, machine: str, split: str) -> Clip | None:
    """One 2020 development clip, or None when the name is not a 2020 name."""
    m = DCASE2020_NAME.match(path.name)
    if m is None:
        return None
    section = m["section"]
    return Clip(
        path=path,
        name=path.name,  # given, so Clip need not build another Path
        machine=machine,
        section=section,
        domain=SOURCE,
        split=split,
        label=label_from_word(m["label"]),
        group=group_2020(machine, section) if split == TEST else "",
    )


def scan_machine(tree: Tree, machine: str, machine_dir: Path) -> MachineScan:
    clips: list[Clip] = []
    for split in (TRAIN, TEST):
        folder = tree.child(machine_dir, split)
        if folder is None:
            continue
        for path in tree.wavs(folder):
            clip = parse_clip(path, machine, split)
            if clip is not None:
                clips.append(clip)
    return finish_machine(tree, machine_dir, clips)
