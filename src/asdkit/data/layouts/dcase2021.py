"""DCASE2021 Task 2 development sets: ``<machine>/{train,source_test,target_test}/section_XX_...wav``.

2021 scored every section and domain on its own test files, so a test clip's group (its submission
file ``anomaly_score_<group>.csv``) carries the domain: ``<machine>_section_XX_<domain>_test``.
A plain ``test/`` folder is accepted too, for trees whose two test folders were merged. The name rules
are :mod:`asdkit.data.naming.dcase2021`.
"""

from __future__ import annotations

from pathlib import Path

from asdkit.data.layouts.common import MachineScan, Tree, finish_machine
from asdkit.data.manifest import TEST, TRAIN, Clip
from asdkit.data.naming import dcase2021 as naming

NAME = "dcase2021"
PATTERN = (
    "<machine>/{train,source_test,target_test}/"
    "section_XX_{source,target}_{train,test}_{normal,anomaly}_NNNN.wav"
)


def parse_clip(path: Path, machine: str, split: str) -> Clip | None:
    fields = naming.parse_name(path.name)
    if fields is None:
        return None
    return Clip(
        path=path,
        name=path.name,  # given, so Clip need not build another Path
        machine=machine,
        section=fields.section,
        domain=fields.domain,
        split=split,
        label=fields.label,
        attributes=fields.attributes,
        group=naming.group(machine, fields.section, fields.domain) if split == TEST else "",
    )


def scan_machine(tree: Tree, machine: str, machine_dir: Path) -> MachineScan:
    clips: list[Clip] = []
    for folder_name in naming.FOLDERS:
        folder = tree.child(machine_dir, folder_name)
        if folder is None:
            continue
        split = TRAIN if folder_name == TRAIN else TEST
        for path in tree.wavs(folder):
            clip = parse_clip(path, machine, split)
            if clip is not None:
                clips.append(clip)
    return finish_machine(tree, machine_dir, clips)
