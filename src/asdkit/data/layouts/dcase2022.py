"""DCASE2022-2025 Task 2 development sets: ``<machine>/{train,test}/section_XX_..._<attributes>.wav``.

From 2022 on, one test set per section holds both domains, so the group is ``<machine>_section_XX_test``.
Attributes come from the name tail and, where the machine folder holds the official
``attributes_XX.csv``, from that table too (its pairs win where both name the same key).
"""

from __future__ import annotations

from pathlib import Path

from asdkit.data.layouts.common import (
    SECTION_NAME,
    MachineScan,
    Tree,
    finish_machine,
    label_from_word,
    machine_attributes,
    parse_attribute_tail,
)
from asdkit.data.manifest import TEST, TRAIN, Clip

NAME = "dcase2022"
PATTERN = (
    "<machine>/{train,test}/section_XX_{source,target}_{train,test}_{normal,anomaly}_NNNN_<attributes>.wav"
)


def group_2022(machine: str, section: str) -> str:
    """The 2022+ submission group: one file per section, both domains together."""
    return f"{machine}_section_{section}_test"


def parse_clip(path: Path, machine: str, split: str, table: dict[str, dict[str, str]]) -> Clip | None:
    m = SECTION_NAME.match(path.name)
    if m is None:
        return None
    section = m["section"]
    attributes = parse_attribute_tail(m["tail"])
    attributes.update(table.get(path.name, {}))
    return Clip(
        path=path,
        name=path.name,  # given, so Clip need not build another Path
        machine=machine,
        section=section,
        domain=m["domain"].lower(),
        split=split,
        label=label_from_word(m["label"]),
        attributes=attributes,
        group=group_2022(machine, section) if split == TEST else "",
    )


def scan_machine(tree: Tree, machine: str, machine_dir: Path) -> MachineScan:
    table = machine_attributes(machine_dir)
    clips: list[Clip] = []
    for split in (TRAIN, TEST):
        folder = tree.child(machine_dir, split)
        if folder is None:
            continue
        for path in tree.wavs(folder):
            clip = parse_clip(path, machine, split, table)
            if clip is not None:
                clips.append(clip)
    return finish_machine(tree, machine_dir, clips)
