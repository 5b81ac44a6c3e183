"""DCASE2021 Task 2 development sets: ``<machine>/{train,source_test,target_test}/section_XX_...wav``.

2021 scored every section and domain on its own test files, so a test clip's group (its submission
file ``anomaly_score_<group>.csv``) carries the domain: ``<machine>_section_XX_<domain>_test``.
A plain ``test/`` folder is accepted too, for trees whose two test folders were merged.
"""

from __future__ import annotations

from pathlib import Path

from asdkit.data.layouts.common import (
    SECTION_NAME,
    MachineScan,
    Tree,
    finish_machine,
    label_from_word,
    parse_attribute_tail,
)
from asdkit.data.manifest import TEST, TRAIN, Clip

NAME = "dcase2021"
PATTERN = (
    "<machine>/{train,source_test,target_test}/"
    "section_XX_{source,target}_{train,test}_{normal,anomaly}_NNNN.wav"
)
TEST_DIRS = ("source_test", "target_test", "test")


def group_2021(machine: str, section: str, domain: str) -> str:
    """The 2021 submission group: one file per section and domain."""
    return f"{machine}_section_{section}_{domain}_test"


def parse_clip(path: Path, machine: str, split: str) -> Clip | None:
    m = SECTION_NAME.match(path.name)
    if m is None:
        return None
    section, domain = m["section"], m["domain"].lower()
    return Clip(
        path=path,
        name=path.name,  # given, so Clip need not build another Path
        machine=machine,
        section=section,
        domain=domain,
        split=split,
        label=label_from_word(m["label"]),
        attributes=parse_attribute_tail(m["tail"]),
        group=group_2021(machine, section, domain) if split == TEST else "",
    )


def scan_machine(tree: Tree, machine: str, machine_dir: Path) -> MachineScan:
    clips: list[Clip] = []
    for folder_name in (TRAIN, *TEST_DIRS):
        folder = tree.child(machine_dir, folder_name)
        if folder is None:
            continue
        split = TRAIN if folder_name == TRAIN else TEST
        for path in tree.wavs(folder):
            clip = parse_clip(path, machine, split)
            if clip is not None:
                clips.append(clip)
    return finish_machine(tree, machine_dir, clips)
