"""``--debug`` runs: a few clips of every test set, so that a run finishes in seconds and still evaluates."""

from __future__ import annotations

from typing import Any

from asdkit.data.manifest import Clip, Manifest

DEBUG_TRAIN_CLIPS_PER_SECTION = 12
DEBUG_TEST_CLIPS_PER_SET = 6


def debug_subset(manifest: Manifest, per_set: int) -> Manifest:
    """A few clips of every (machine, section, domain, label) set, so a debug run still evaluates."""
    kept: list[Clip] = []
    counts: dict[tuple[Any, ...], int] = {}
    for c in manifest:
        key = (c.machine, c.section, c.domain, c.label, c.group)
        if counts.get(key, 0) < per_set:
            counts[key] = counts.get(key, 0) + 1
            kept.append(c)
    return Manifest(kept, manifest.layout, manifest.root)
