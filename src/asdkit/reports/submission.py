"""Submission files: writing ``anomaly_score_<group>.csv``/``decision_result_<group>.csv``, reading them.

The file names carry the machine type, the section (or 2020 machine id), the domain (2021) and
with them the year's scheme, so a folder of score files is enough to evaluate once the clips'
labels are known: from the clip names on development sets (``normal``/``anomaly``,
``source``/``target``), from a ground-truth object on anonymised evaluation sets.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from asdkit.data.naming import dcase2020, dcase2021, dcase2022
from asdkit.errors import DataError
from asdkit.metrics.table import Scheme, ScoreRecord, ScoreTable
from asdkit.rundir import seeds_hint
from asdkit.utils.io import atomic_write_text

if TYPE_CHECKING:
    from asdkit.data.manifest import Clip

SCORE_PREFIX = "anomaly_score_"
DECISION_PREFIX = "decision_result_"

EXPECTED_NAMES = (
    "anomaly_score_<machine>_section_<XX>_test.csv (2022-2025), "
    "anomaly_score_<machine>_section_<XX>_{source,target}_test.csv (2021) or "
    "anomaly_score_<machine>_id_<XX>.csv (2020)"
)

_LABEL_TOKENS = {"normal": 0, "anomaly": 1}
_DOMAIN_TOKENS = ("source", "target")


class GroundTruthLike(Protocol):
    """What read_scores_dir needs from ground truth: labels and domains keyed by (machine, clip name).

    ``asdkit.data.ground_truth.GroundTruth`` fits; so does any object with these two mappings.
    """

    @property
    def labels(self) -> Mapping[tuple[str, str], int]: ...

    @property
    def domains(self) -> Mapping[tuple[str, str], str]: ...


@dataclass(frozen=True)
class ScoreFileName:
    """What a score file's name says."""

    scheme: Scheme
    machine: str
    section: str
    domain: str | None
    group: str


def score_group(scheme: Scheme | str, machine: str, section: str, domain: str | None = None) -> str:
    """The submission group of a test set, i.e. the ``<group>`` of ``anomaly_score_<group>.csv``."""
    if scheme == "dcase2020":
        return dcase2020.group(machine, section)
    if scheme == "dcase2021":
        if domain not in _DOMAIN_TOKENS:
            raise ValueError(f"a 2021 score file needs a domain (source or target), got {domain!r}")
        return dcase2021.group(machine, section, domain)
    return dcase2022.group(machine, section)


def parse_group(group: str) -> ScoreFileName | None:
    """The scheme, machine, section and domain of a group name (the naming modules' rules, most specific
    first: a 2021 group would also fit a looser pattern); None when it fits no year's."""
    if found := dcase2021.parse_group(group):
        return ScoreFileName("dcase2021", *found, group)
    if found2022 := dcase2022.parse_group(group):
        return ScoreFileName("dcase2022", *found2022, None, group)
    if found2020 := dcase2020.parse_group(group):
        return ScoreFileName("dcase2020", *found2020, None, group)
    return None


def parse_score_file_name(path: Path | str) -> ScoreFileName | None:
    """Parse ``anomaly_score_<group>.csv``; None for any other name."""
    name = Path(path).name
    if not (name.startswith(SCORE_PREFIX) and name.endswith(".csv")):
        return None
    return parse_group(name[len(SCORE_PREFIX) : -len(".csv")])


def label_from_name(name: str) -> int | None:
    """0/1 from a development-set clip name (``..._normal_...`` / ``..._anomaly_...``), else None."""
    for token in Path(name).stem.split("_"):
        if token in _LABEL_TOKENS:
            return _LABEL_TOKENS[token]
    return None


def domain_from_name(name: str) -> str | None:
    """``source``/``target`` from a 2021+ development-set clip name, else None."""
    for token in Path(name).stem.split("_"):
        if token in _DOMAIN_TOKENS:
            return token
    return None


# --------------------------------------------------------------------------------------------- writing


def _csv_text(rows: Sequence[tuple[str, str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def write_scores(
    out_dir: Path | str,
    clips: Sequence[Clip],
    scores: np.ndarray | Sequence[float],
    decisions: np.ndarray | Sequence[int] | None = None,
) -> list[Path]:
    """Write one ``anomaly_score_<group>.csv`` (and ``decision_result_<group>.csv``) per clip group.

    Rows are ``file,score`` with no header, the clip's submission name and the score's shortest
    round-trip text (``repr`` of the float), as the official baselines write them, so nothing is
    lost. Groups come out in sorted order, clips in the order given. Each file is written
    atomically. Returns the paths written.
    """
    out = Path(out_dir)
    scores_arr = np.asarray(scores, dtype=float).ravel()
    if scores_arr.size != len(clips):
        raise ValueError(f"{len(clips)} clips but {scores_arr.size} scores")
    dec_arr = None if decisions is None else np.asarray(decisions).ravel()
    if dec_arr is not None and dec_arr.size != len(clips):
        raise ValueError(f"{len(clips)} clips but {dec_arr.size} decisions")

    groups: dict[str, list[int]] = {}
    for i, clip in enumerate(clips):
        if not clip.group:
            raise ValueError(
                f"clip {clip.name} ({clip.machine}) has no submission group: cannot name its score file"
            )
        if not math.isfinite(scores_arr[i]):
            raise ValueError(f"clip {clip.name} ({clip.machine}) has a non-finite score ({scores_arr[i]})")
        if dec_arr is not None and dec_arr[i] not in (0, 1):
            raise ValueError(
                f"clip {clip.name} ({clip.machine}) has decision {dec_arr[i]!r}; expected 0 or 1"
            )
        groups.setdefault(clip.group, []).append(i)

    written: list[Path] = []
    for group in sorted(groups):
        idx = groups[group]
        names = [clips[i].name for i in idx]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise ValueError(f"clip name {dup} appears twice in group {group}")
        path = out / f"{SCORE_PREFIX}{group}.csv"
        atomic_write_text(path, _csv_text([(clips[i].name, repr(float(scores_arr[i]))) for i in idx]))
        written.append(path)
        if dec_arr is not None:
            dpath = out / f"{DECISION_PREFIX}{group}.csv"
            atomic_write_text(dpath, _csv_text([(clips[i].name, str(int(dec_arr[i]))) for i in idx]))
            written.append(dpath)
    return written


# --------------------------------------------------------------------------------------------- reading


def _read_rows(path: Path) -> list[tuple[int, list[str]]]:
    try:
        with open(path, newline="") as f:
            return [
                (n, row)
                for n, row in enumerate(csv.reader(f), start=1)
                if row and any(c.strip() for c in row)
            ]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc


def _read_score_file(path: Path) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    for k, (line, row) in enumerate(_read_rows(path)):
        if len(row) < 2:
            raise DataError(f"{path}, line {line}: expected 'file,score', got {','.join(row)!r}")
        try:
            score = float(row[1])
        except ValueError:
            if k == 0:  # a header written by some other tool
                continue
            raise DataError(f"{path}, line {line}: score {row[1]!r} is not a number") from None
        if not math.isfinite(score):
            raise DataError(f"{path}, line {line}: score {row[1]!r} is not a finite number")
        out.append((row[0].strip(), score))
    if not out:
        raise DataError(f"{path} holds no scores")
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise DataError(f"{path}: clip {dup} is scored twice")
    return out


def _read_decision_file(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for k, (line, row) in enumerate(_read_rows(path)):
        if len(row) < 2:
            raise DataError(f"{path}, line {line}: expected 'file,decision', got {','.join(row)!r}")
        try:
            value = float(row[1])
        except ValueError:
            if k == 0:
                continue
            raise DataError(f"{path}, line {line}: decision {row[1]!r} is not 0 or 1") from None
        if value not in (0.0, 1.0):
            raise DataError(f"{path}, line {line}: decision {row[1]!r} is not 0 or 1")
        out[row[0].strip()] = int(value)
    return out


@dataclass(frozen=True)
class ScoreFile:
    """One score file as written: what its name says, its (clip name, score) rows and its decisions."""

    info: ScoreFileName
    path: Path
    rows: list[tuple[str, float]]
    decisions: dict[str, int] | None

    def decision(self, name: str) -> int | None:
        """The clip's decision; None without a decision file, a DataError when that file lacks the clip."""
        if self.decisions is None:
            return None
        if name not in self.decisions:
            raise DataError(
                f"{DECISION_PREFIX}{self.info.group}.csv has no decision for clip {name} of {self.path.name}"
            )
        return self.decisions[name]


def read_score_files(scores_dir: Path | str) -> list[ScoreFile]:
    """Every score file of a folder (and its decision file), names checked against one year's scheme."""
    folder = Path(scores_dir)
    if not folder.is_dir():
        raise DataError(f"score folder {folder} does not exist")
    candidates = sorted(folder.glob(f"{SCORE_PREFIX}*.csv"))
    parsed = [(p, parse_score_file_name(p)) for p in candidates]
    unknown = [p.name for p, info in parsed if info is None]
    if not candidates:
        raise DataError(f"no score files in {folder}: expected {EXPECTED_NAMES}{seeds_hint(folder)}")
    if unknown:
        raise DataError(f"unrecognised score file name {unknown[0]} in {folder}: expected {EXPECTED_NAMES}")
    schemes = sorted({info.scheme for _, info in parsed if info is not None})
    if len(schemes) > 1:
        raise DataError(f"{folder} mixes score files of several years' naming schemes ({', '.join(schemes)})")
    files = []
    for path, info in parsed:
        assert info is not None
        dpath = folder / f"{DECISION_PREFIX}{info.group}.csv"
        decisions = _read_decision_file(dpath) if dpath.is_file() else None
        files.append(ScoreFile(info, path, _read_score_file(path), decisions))
    return files


def read_scores_dir(scores_dir: Path | str, ground_truth: GroundTruthLike | None = None) -> ScoreTable:
    """Read every score (and decision) file of a folder into a ScoreTable, scheme detected from the names.

    Labels and domains come from ``ground_truth`` (keyed by (machine, clip name)) when it knows
    the clip, otherwise from the clip name; a 2021 file's domain comes from its file name. A clip
    whose label (or, 2022+, domain) cannot be found is a DataError naming it and its score file.
    """
    files = read_score_files(scores_dir)
    labels: Mapping[tuple[str, str], int] = ground_truth.labels if ground_truth is not None else {}
    domains: Mapping[tuple[str, str], str] = ground_truth.domains if ground_truth is not None else {}
    records: list[ScoreRecord] = []
    for file in files:
        info, path = file.info, file.path
        for name, score in file.rows:
            key = (info.machine, name)
            label = labels.get(key)
            if label is None:
                label = label_from_name(name)
            if label is None:
                raise DataError(
                    f"cannot tell whether clip {name} in {path.name} is normal or anomalous: "
                    "its name says neither; pass the ground truth for this set"
                )
            if info.scheme == "dcase2020":
                domain = "source"
            elif info.domain is not None:
                domain = info.domain
            else:
                found = domains.get(key) or domain_from_name(name)
                if found is None:
                    raise DataError(
                        f"cannot tell the domain (source or target) of clip {name} in {path.name}: "
                        "its name says neither; pass the ground truth for this set"
                    )
                domain = found
            decision = file.decision(name)
            records.append(
                ScoreRecord(
                    machine=info.machine,
                    section=info.section,
                    domain=domain,
                    label=int(label),
                    score=score,
                    decision=decision,
                    name=name,
                    group=info.group,
                )
            )
    return ScoreTable(records, files[0].info.scheme)
