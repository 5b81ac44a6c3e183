"""A plain folder of clips with no DCASE names: the way a user brings their own machine's recordings.

``<root>/train/*.wav`` are normal training clips. Test clips are either sorted into
``test/normal/`` and ``test/anomaly/`` (``abnormal/`` as in MIMII is accepted), or lie in ``test/`` with a
``labels.csv`` (columns ``file,label``, label 0/1 or normal/anomaly; at the root or in ``test/``), or lie
in ``test/`` unlabelled (label None). The machine is the folder's name, with one section "00", domain
"source" and group ``<machine>_section_00_test``.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from asdkit.data.layouts.common import MachineScan, Tree, finish_machine
from asdkit.data.manifest import ANOMALY, NORMAL, SOURCE, TEST, TRAIN, Clip
from asdkit.data.naming import folder as naming
from asdkit.errors import DataError

log = logging.getLogger(__name__)

NAME = "folder"
PATTERN = "<root>/train/*.wav and <root>/test/{normal,anomaly}/*.wav or <root>/test/*.wav [+ labels.csv]"
SECTION = naming.SECTION
LABELS_FILE = naming.LABELS_FILE
_LABEL_WORDS = {"0": NORMAL, "1": ANOMALY, "normal": NORMAL, "anomaly": ANOMALY, "abnormal": ANOMALY}
_FILE_COLUMNS = ("file", "filename", "file_name", "name", "path")


def read_labels_csv(path: Path) -> dict[str, int]:
    """``file,label`` rows keyed by file name (basename); a bad label is an error naming file and line."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [r for r in csv.reader(f) if any(c.strip() for c in r)]
    if not rows:
        return {}
    file_col, label_col, start = 0, 1, 0
    header = [c.strip().lower() for c in rows[0]]
    if len(header) < 2 or header[1] not in _LABEL_WORDS:
        names = [c for c in _FILE_COLUMNS if c in header]
        if not names or "label" not in header:
            raise DataError(f"{path}: expected columns file,label; found header {','.join(rows[0])}")
        file_col, label_col, start = header.index(names[0]), header.index("label"), 1
    out: dict[str, int] = {}
    for line, row in enumerate(rows[start:], start=start + 1):
        if len(row) <= max(file_col, label_col):
            raise DataError(f"{path}, line {line}: expected file,label; found {','.join(row)}")
        value = row[label_col].strip().lower()
        if value not in _LABEL_WORDS:
            raise DataError(f"{path}, line {line}: label {row[label_col]!r} is not 0/1/normal/anomaly")
        name = Path(row[file_col].strip().replace("\\", "/")).name
        if not name.lower().endswith(".wav"):
            name += ".wav"
        out[name] = _LABEL_WORDS[value]
    return out


def _labels_for(machine_dir: Path) -> tuple[dict[str, int], Path | None]:
    for candidate in (machine_dir / LABELS_FILE, machine_dir / TEST / LABELS_FILE):
        if candidate.is_file():
            return read_labels_csv(candidate), candidate
    return {}, None


def scan_machine(tree: Tree, machine: str, machine_dir: Path) -> MachineScan:
    group = naming.group(machine)
    clips: list[Clip] = []
    train = tree.child(machine_dir, TRAIN)
    if train is not None:
        normal = tree.child(train, "normal")
        for path in tree.wavs(train) + (tree.wavs(normal) if normal is not None else []):
            clips.append(Clip(path, machine, SECTION, SOURCE, TRAIN, NORMAL, name=path.name))
    test = tree.child(machine_dir, TEST)
    if test is not None:
        tests: list[tuple[Path, int | None]] = []
        for sub in tree.subdirs(test):
            label = naming.label_of_dir(sub.name)
            if label is not None:
                tests.extend((p, label) for p in tree.wavs(sub))
        loose = tree.wavs(test)
        if loose:
            labels, labels_path = _labels_for(machine_dir)
            missing = [p for p in loose if p.name not in labels]
            if labels_path is not None and missing:
                log.warning(
                    "%s: %d test clip(s) not in %s stay unlabelled (first: %s)",
                    machine_dir,
                    len(missing),
                    labels_path,
                    missing[0].name,
                )
            tests.extend((p, labels.get(p.name)) for p in loose)
        seen: dict[str, int] = {}
        for path, _ in tests:
            seen[path.name] = seen.get(path.name, 0) + 1
        for path, label in tests:
            # The same file name under normal/ and anomaly/ would collide in the score file.
            name = path.relative_to(test).as_posix() if seen[path.name] > 1 else path.name
            clips.append(
                Clip(path, machine, SECTION, domain=SOURCE, split=TEST, label=label, name=name, group=group)
            )
    return finish_machine(tree, machine_dir, clips)
