"""DCASE2022-2025 Task 2 development sets: ``<machine>/{train,test}/section_XX_..._<attributes>.wav``.

From 2022 on, one test set per section holds both domains, so the group is ``<machine>_section_XX_test``.
Attributes come from the name tail and, where the machine folder holds the official
``attributes_XX.csv``, from that table too (its pairs win where both name the same key). The name rules
(and where the years differ) are :mod:`asdkit.data.naming.dcase2022`.
"""

from __future__ import annotations

from pathlib import Path

from asdkit.data.layouts.common import MachineScan, Tree, finish_machine, machine_attributes
from asdkit.data.manifest import TEST, TRAIN, Clip
from asdkit.data.naming import dcase2022 as naming

NAME = "dcase2022"
PATTERN = (
    "<machine>/{train,test}/section_XX_{source,target}_{train,test}_{normal,anomaly}_NNNN_<attributes>.wav"
)


def parse_clip(path: Path, machine: str, split: str, table: dict[str, dict[str, str]]) -> Clip | None:
    fields = naming.parse_name(path.name)
    if fields is None:
        return None
    attributes = fields.attributes
    attributes.update(table.get(path.name, {}))
    return Clip(
        path=path,
        name=path.name,  # given, so Clip need not build another Path
        machine=machine,
        section=fields.section,
        domain=fields.domain,
        split=split,
        label=fields.label,
        attributes=attributes,
        group=naming.group(machine, fields.section) if split == TEST else "",
    )


def scan_machine(tree: Tree, machine: str, machine_dir: Path) -> MachineScan:
    table = machine_attributes(machine_dir)
    clips: list[Clip] = []
    for split in (TRAIN, TEST):
        folder = tree.child(machine_dir, naming.folder(split))
        if folder is None:
            continue
        for path in tree.wavs(folder):
            clip = parse_clip(path, machine, split, table)
            if clip is not None:
                clips.append(clip)
    return finish_machine(tree, machine_dir, clips)
