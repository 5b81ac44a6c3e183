"""Evaluation sets: anonymised, unlabelled test names; the training folder is named like the dev sets.

Test names and their groups (the submission file each score goes in), by year:

- 2020 ``<machine>/test/id_XX_NNNNNNNN.wav``: domain "source" (2020 had none), group ``<machine>_id_XX``.
- 2021 ``<machine>/{source_test,target_test}/section_XX_{source,target}_test_NNNN.wav`` (the domain
  is in the name): group ``<machine>_section_XX_<domain>_test``, as the 2021 evaluator's
  per-section-and-domain ground-truth files.
- 2022-2025 ``<machine>/test/section_XX_NNNN.wav``: domain "" until ground truth gives it, group
  ``<machine>_section_XX_test`` (both domains in one file, so the group never waits for the domain).

Labels stay None; ``scan(root, ground_truth=...)`` fills them from the official lists.
"""

from __future__ import annotations

from pathlib import Path

from asdkit.data.layouts import dcase2020, dcase2022
from asdkit.data.layouts.common import (
    EVAL2020_NAME,
    EVAL2021_NAME,
    EVAL2022_NAME,
    MachineScan,
    Tree,
    finish_machine,
    machine_attributes,
)
from asdkit.data.layouts.dcase2020 import group_2020
from asdkit.data.layouts.dcase2021 import group_2021
from asdkit.data.layouts.dcase2022 import group_2022
from asdkit.data.manifest import SOURCE, TEST, TRAIN, Clip

NAME = "eval"
PATTERN = (
    "<machine>/test/{id_XX_NNNNNNNN.wav (2020), section_XX_NNNN.wav (2022+)} or "
    "<machine>/{source,target}_test/section_XX_{source,target}_test_NNNN.wav (2021), "
    "beside a dev-style train/ folder"
)
TEST_DIRS = ("test", "source_test", "target_test")


def parse_test_clip(path: Path, machine: str, table: dict[str, dict[str, str]]) -> Clip | None:
    """One anonymised test clip, or None when the name is no evaluation-set name."""
    name = path.name
    if m := EVAL2022_NAME.match(name):
        section = m["section"]
        return Clip(
            path,
            machine,
            section,
            domain="",
            split=TEST,
            label=None,
            name=name,
            attributes=dict(table.get(name, {})),
            group=group_2022(machine, section),
        )
    if m := EVAL2021_NAME.match(name):
        section, domain = m["section"], m["domain"].lower()
        return Clip(
            path,
            machine,
            section,
            domain=domain,
            split=TEST,
            label=None,
            name=name,
            group=group_2021(machine, section, domain),
        )
    if m := EVAL2020_NAME.match(name):
        section = m["section"]
        return Clip(path, machine, section, SOURCE, TEST, None, name=name, group=group_2020(machine, section))
    return None


def parse_train_clip(path: Path, machine: str, table: dict[str, dict[str, str]]) -> Clip | None:
    """Evaluation-set training clips carry development-style names (2020 or 2021+)."""
    clip = dcase2022.parse_clip(path, machine, TRAIN, table)
    return clip if clip is not None else dcase2020.parse_clip(path, machine, TRAIN)


def scan_machine(tree: Tree, machine: str, machine_dir: Path) -> MachineScan:
    table = machine_attributes(machine_dir)
    clips: list[Clip] = []
    train = tree.child(machine_dir, TRAIN)
    if train is not None:
        for path in tree.wavs(train):
            clip = parse_train_clip(path, machine, table)
            if clip is not None:
                clips.append(clip)
    for folder_name in TEST_DIRS:
        folder = tree.child(machine_dir, folder_name)
        if folder is None:
            continue
        for path in tree.wavs(folder):
            clip = parse_test_clip(path, machine, table)
            if clip is not None:
                clips.append(clip)
    return finish_machine(tree, machine_dir, clips)
