"""Evaluation sets: anonymised, unlabelled test names; the training folder is named like the dev sets.

Test names and their groups (the submission file each score goes in), by year:

- 2020 ``<machine>/test/id_XX_NNNNNNNN.wav``: domain "source" (2020 had none), group ``<machine>_id_XX``.
- 2021 ``<machine>/{source_test,target_test}/section_XX_{source,target}_test_NNNN.wav`` (the domain
  is in the name): group ``<machine>_section_XX_<domain>_test``, as the 2021 evaluator's
  per-section-and-domain ground-truth files.
- 2022-2025 ``<machine>/test/section_XX_NNNN.wav``: domain "" until ground truth gives it, group
  ``<machine>_section_XX_test`` (both domains in one file, so the group never waits for the domain).

Labels stay None; ``scan(root, ground_truth=...)`` fills them from the official lists. The name rules
are :mod:`asdkit.data.naming.evalset`.
"""

from __future__ import annotations

from pathlib import Path

from asdkit.data.layouts import dcase2020, dcase2022
from asdkit.data.layouts.common import MachineScan, Tree, finish_machine, machine_attributes
from asdkit.data.manifest import TEST, TRAIN, Clip
from asdkit.data.naming import evalset as naming

NAME = "eval"
PATTERN = (
    "<machine>/test/{id_XX_NNNNNNNN.wav (2020), section_XX_NNNN.wav (2022+)} or "
    "<machine>/{source,target}_test/section_XX_{source,target}_test_NNNN.wav (2021), "
    "beside a dev-style train/ folder"
)


def parse_test_clip(path: Path, machine: str, table: dict[str, dict[str, str]]) -> Clip | None:
    """One anonymised test clip, or None when the name is no evaluation-set name."""
    parsed = naming.parse_name(path.name)
    if parsed is None:
        return None
    year, fields = parsed
    return Clip(
        path,
        machine,
        fields.section,
        domain=fields.domain,
        split=TEST,
        label=None,
        name=path.name,
        # 2022+ attribute tables name anonymised clips too; 2020 and 2021 had none.
        attributes=dict(table.get(path.name, {})) if year == 2022 else {},
        group=naming.group(year, machine, fields.section, fields.domain),
    )


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
    for folder_name in naming.TEST_DIRS:
        folder = tree.child(machine_dir, folder_name)
        if folder is None:
            continue
        for path in tree.wavs(folder):
            clip = parse_test_clip(path, machine, table)
            if clip is not None:
                clips.append(clip)
    return finish_machine(tree, machine_dir, clips)
