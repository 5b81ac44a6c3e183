"""Finding the machines under a root, recognising its layout and building the manifest.

Every layout's scanner is tried on the same cached listing; the layout that explains the most wav files
wins (ties go to the more specific development layouts), and the plain ``folder`` layout only when no
DCASE layout explains at least half of what it does.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from asdkit.data.layouts import dcase2020, dcase2021, dcase2022, evalset, folder, mimii
from asdkit.data.layouts.common import SPLIT_DIR_NAMES, MachineScan, Tree
from asdkit.data.manifest import Clip, Manifest
from asdkit.errors import DataError

log = logging.getLogger(__name__)

SCANNERS: dict[str, ModuleType] = {
    m.NAME: m for m in (dcase2020, dcase2021, dcase2022, evalset, folder, mimii)
}
#: Order in which equally good DCASE layouts are preferred (a train-only tree is development data).
_PREFERENCE = ("dcase2020", "dcase2022", "dcase2021", "eval", "mimii")
LAYOUT_PATTERNS: dict[str, str] = {name: m.PATTERN for name, m in SCANNERS.items()}

Scans = list[tuple[str, Path, MachineScan]]


def _resolve_root(root: Path | str) -> Path:
    path = Path(os.path.abspath(os.path.expanduser(str(root))))
    if not path.exists():
        raise DataError(f"{path}: no such directory (expected a dataset root or one machine's folder)")
    if not path.is_dir():
        raise DataError(f"{path}: is a file, expected a dataset root or one machine's folder")
    return path


def machine_dirs(tree: Tree, root: Path) -> list[tuple[str, Path]]:
    """``(machine, folder)`` pairs: the root itself when it holds train/test folders, else its sub-folders."""
    if any(d.name in SPLIT_DIR_NAMES for d in tree.subdirs(root)):
        return [(root.name, root)]
    return [(d.name, d) for d in tree.subdirs(root)]


def _found(tree: Tree, root: Path) -> str:
    wavs = tree.all_wavs(root)
    if not wavs:
        return "found no wav files"
    return f"found {len(wavs)} wav file(s), first: {wavs[0].relative_to(root).as_posix()}"


def _expected() -> str:
    return "expected one of: " + "; ".join(f"{name} ({pattern})" for name, pattern in LAYOUT_PATTERNS.items())


def _run(layout: str, tree: Tree, dirs: list[tuple[str, Path]]) -> Scans:
    scanner = SCANNERS[layout]
    return [(machine, path, scanner.scan_machine(tree, machine, path)) for machine, path in dirs]


def _count(scans: Scans) -> int:
    return sum(len(s.clips) for _, _, s in scans)


def _choose(
    tree: Tree, dirs: list[tuple[str, Path]]
) -> tuple[str | None, dict[str, Scans], dict[str, DataError]]:
    """Try every layout; a layout whose scan fails (a bad labels.csv) only matters if it would win."""
    results: dict[str, Scans] = {}
    errors: dict[str, DataError] = {}
    for name in SCANNERS:
        try:
            results[name] = _run(name, tree, dirs)
        except DataError as exc:
            errors[name] = exc
    counts = {name: _count(results[name]) if name in results else 0 for name in SCANNERS}
    best = max(_PREFERENCE, key=lambda n: (counts[n], -_PREFERENCE.index(n)))
    folder_count = counts[folder.NAME]
    if counts[best] > 0 and 2 * counts[best] >= folder_count:
        return best, results, errors
    if folder.NAME in errors:
        raise errors[folder.NAME]
    if folder_count > 0:
        return folder.NAME, results, errors
    return None, results, errors


def detect(root: Path | str) -> str:
    """The layout name of the tree at ``root`` (one of ``LAYOUT_PATTERNS``); DataError if none fits."""
    path = _resolve_root(root)
    tree = Tree(path)
    layout, _, _ = _choose(tree, machine_dirs(tree, path))
    if layout is None:
        raise DataError(f"{path}: not a recognised dataset layout: {_found(tree, path)}; {_expected()}")
    return layout


def _select(
    dirs: list[tuple[str, Path]], machines: Iterable[str] | str | None, root: Path
) -> list[tuple[str, Path]]:
    if machines is None:
        return dirs
    wanted = [machines] if isinstance(machines, str) else list(machines)
    available = [m for m, _ in dirs]
    unknown = [m for m in wanted if m not in available]
    if unknown:
        raise DataError(
            f"{root}: no machine folder {', '.join(map(repr, unknown))}; "
            f"available: {', '.join(available) or 'none'}"
        )
    return [(m, p) for m, p in dirs if m in wanted]


def _report(layout: str, root: Path, scans: Scans, requested: bool, tree: Tree) -> None:
    skipped = [p for _, _, s in scans for p in s.skipped]
    if skipped:
        log.warning(
            "%s: skipped %d wav file(s) that match no %s pattern (first: %s)",
            root,
            len(skipped),
            layout,
            skipped[0].relative_to(root).as_posix(),
        )
    for machine, path, s in scans:
        if s.clips:
            continue
        has_splits = any(d.name in SPLIT_DIR_NAMES for d in tree.subdirs(path))
        what = (
            "holds no wav files"
            if not tree.all_wavs(path)
            else f"holds no clips named as the {layout} layout"
        )
        if requested:
            raise DataError(f"{path}: machine folder {machine!r} {what}")
        if has_splits:
            log.warning("%s: machine folder %r %s; it is left out", path, machine, what)


def _sort_key(clip: Clip) -> tuple[str, str, str, str, str]:
    return (clip.machine, clip.split, clip.section, clip.name, str(clip.path))


def scan(
    root: Path | str,
    layout: str | None = None,
    ground_truth: Path | str | None = None,
    machines: Iterable[str] | str | None = None,
) -> Manifest:
    """Every clip under ``root`` as a manifest, the layout detected unless ``layout`` forces one.

    ``machines`` keeps only those machine folders; ``ground_truth`` (an official list or a folder of
    them) labels evaluation clips. Raises DataError with one line for a missing or unrecognised root.
    """
    path = _resolve_root(root)
    tree = Tree(path)
    dirs = machine_dirs(tree, path)
    wanted = {m for m, _ in _select(dirs, machines, path)}
    # The layout is recognised on the whole tree, so a machine filter never changes what the tree is.
    if layout is None:
        chosen, results, _ = _choose(tree, dirs)
        if chosen is None:
            raise DataError(f"{path}: not a recognised dataset layout: {_found(tree, path)}; {_expected()}")
        everything = results[chosen]
    else:
        if layout not in SCANNERS:
            raise DataError(f"unknown layout {layout!r}; choose one of: {', '.join(SCANNERS)}")
        chosen = layout
        everything = _run(layout, tree, dirs)
        if _count(everything) == 0:
            guess, _, _ = _choose(tree, dirs)
            hint = f"; it looks like {guess}" if guess is not None else ""
            raise DataError(
                f"{path}: does not match layout {layout} ({LAYOUT_PATTERNS[layout]}): "
                f"{_found(tree, path)}, none named as expected{hint}"
            )
    scans = [s for s in everything if s[0] in wanted]
    _report(chosen, path, scans, machines is not None, tree)
    skipped = tree_skips(tree, chosen, [(p, s) for _, p, s in scans])
    clips = sorted((c for _, _, s in scans for c in s.clips), key=_sort_key)
    manifest = Manifest(clips, chosen, path)
    if ground_truth is not None:
        from asdkit.data.ground_truth import load_ground_truth

        manifest = load_ground_truth(Path(ground_truth)).label_manifest(manifest)
    manifest.skipped = skipped
    return manifest


def tree_skips(tree: Tree, layout: str, scans: list[tuple[Path, MachineScan]]) -> list[tuple[Path, str]]:
    """Every audio file under the scanned machine folders that gives no clip, with the reason (named in a
    warning here, and kept in the manifest so that a run records them in config.json)."""
    skipped = [(p, f"matches no {layout} file name pattern") for _, s in scans for p in s.skipped]
    broken = sorted(
        (p, why) for p, why in tree.broken.items() if any(folder in p.parents for folder, _ in scans)
    )
    if broken:
        log.warning(
            "skipped %d audio file(s) that cannot be opened: %s",
            len(broken),
            "; ".join(f"{p} ({why})" for p, why in broken[:5]) + (" ..." if len(broken) > 5 else ""),
        )
    return skipped + broken
