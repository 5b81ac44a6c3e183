"""Official evaluation-set ground truth: labels, domains and the real names behind anonymised clips.

The organisers published it in several shapes over the years; ``load_ground_truth`` reads any of them,
one file or a folder of them (searched recursively), and keys everything by ``(machine, name)`` where
``name`` is the file name in the evaluation tree, which is also the name submission files use:

- ``ground_truth_<machine>_section_XX_<domain>_test.csv`` (2021): ``name,label`` rows; domain from the
  file name.
- ``ground_truth_data/ground_truth_<machine>_section_XX_test.csv`` (2022-2024): ``name,label``.
- ``ground_truth_domain/ground_truth_<machine>_section_XX_test.csv`` (2022-2024): ``name,0|1`` with 0 =
  source, 1 = target. The two differ only in their folder, so a 0/1 file counts as domains only when its
  folder is named like ``*domain*``.
- ``ground_truth_attributes/ground_truth_<machine>_section_XX_test.csv`` (2023, 2024): ``name,full
  name`` (2024 sometimes ``name,noAttribute name,full name``).
- ``<machine>/attributes_XX.csv`` (2022): ``file_name,d1p,d1v,...,file_name_with_(full_)attributes``.
- ``<machine>/attributes_00_{train,test}_correspondence.csv`` (2024, 2025): ``source_file_name`` (full)
  and ``target_file_name`` (the name in the tree); the machine is the parent folder's name.
- ``eval_data_list_YYYY.csv`` (every year): a machine-name line, then ``name,full name[,label]`` rows.

A ``ground_truth_data/`` folder (or one file in it) brings its siblings ``ground_truth_domain/`` and
``ground_truth_attributes/`` along when they exist: 2022-2024 labels say nothing about domains, and the
2022+ rules need them. Every fact remembers the year of the list it came from (``years``), so an
evaluation set is evaluated by the rules of the year whose lists label it.

Explicit label and domain files win over what full names imply, so scores match the official
evaluators; disagreements are logged (the 2022 ToyCar/ToyTrain evaluator lists disagree with the
published full names for about half their clips).
"""

from __future__ import annotations

import csv
import logging
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from asdkit.data.manifest import SOURCE, TARGET, TEST, Clip, Manifest
from asdkit.data.naming import dcase2020, dcase2021, dcase2022
from asdkit.errors import DataError

log = logging.getLogger(__name__)

Key = tuple[str, str]

_LIST_PREFIX = "ground_truth_"
_DOMAIN_CODES = {"0": SOURCE, "1": TARGET}
_LABEL_CODES = {"0": 0, "1": 1}
_WAV = ".wav"
_NO_ATTRIBUTE = "noattribute"


@dataclass
class GroundTruth:
    """What the official lists say about evaluation clips, keyed by ``(machine, clip name)``."""

    labels: dict[Key, int] = field(default_factory=dict)
    domains: dict[Key, str] = field(default_factory=dict)
    full_names: dict[Key, str] = field(default_factory=dict)
    attributes: dict[Key, dict[str, str]] = field(default_factory=dict)
    sources: list[Path] = field(default_factory=list, compare=False)
    years: dict[Key, int] = field(default_factory=dict, compare=False)
    """The challenge year of the list each clip's facts came from (2022 also stands for 2022-2025)."""
    given: Path | None = field(default=None, compare=False)
    """The file or folder the user named (messages name it rather than the files found in it)."""

    def __len__(self) -> int:
        return len(self.labels)

    def year_of(self, keys: Iterable[Key]) -> int | None:
        """The year of the lists that name most of ``keys`` (None when they name none)."""
        counts = Counter(self.years[k] for k in keys if k in self.years)
        return counts.most_common(1)[0][0] if counts else None

    def canonical(self, key: Key) -> Key:
        """One key per recording: ``(machine, full name)`` when the lists give it, else the key itself.

        The 2024 evaluator names each clip twice (``section_00_0001.wav`` and, through its correspondence
        tables, ``section_00_source_test_normal_0001_noAttribute.wav``); both have the same full name.
        """
        return (key[0], self.full_names.get(key, key[1]))

    def listed(self, machines: Iterable[str], year: int | None = None) -> dict[Key, Key]:
        """The labelled recordings of ``machines`` (only ``year``'s lists, if given): what must be scored.

        Keyed by :meth:`canonical`, each with the shortest of its names (the anonymised one) for messages.
        """
        wanted = set(machines)
        out: dict[Key, Key] = {}
        for key in self.labels:
            if key[0] not in wanted or (year is not None and self.years.get(key, year) != year):
                continue
            clip = self.canonical(key)
            shown = out.get(clip)
            if shown is None or (len(key[1]), key[1]) < (len(shown[1]), shown[1]):
                out[clip] = key
        return out

    def describe(self) -> str:
        """The path given, for messages."""
        return self._describe()

    def machines(self) -> list[str]:
        return sorted({m for m, _ in self.labels} | {m for m, _ in self.full_names})

    def label_manifest(self, manifest: Manifest) -> Manifest:
        """Labels, domains and attributes applied to the clips the lists name; groups follow the domain.

        Clips the lists do not name keep what they had. Raises DataError when unlabelled test clips
        exist and the lists name none of them (the wrong year's lists, most likely).
        """
        out: list[Clip] = []
        tests = matched = 0
        unmatched: list[Clip] = []
        for c in manifest:
            key = (c.machine, c.name)
            if c.split == TEST:
                tests += 1
                if key in self.labels:
                    matched += 1
                elif c.label is None:
                    unmatched.append(c)
            domain = self.domains.get(key) or c.domain
            attributes = {**c.attributes, **self.attributes.get(key, {})}
            out.append(
                replace(
                    c,
                    label=self.labels.get(key, c.label),
                    domain=domain,
                    attributes=attributes,
                    group=_regroup(c, domain),
                )
            )
        if unmatched and matched == 0:
            first = unmatched[0]
            raise DataError(
                f"ground truth {self._describe()} names none of the {len(unmatched)} unlabelled test clips "
                f"(first: {first.machine}/{first.name}); is it the list for this evaluation set?"
            )
        if unmatched:
            log.warning(
                "ground truth %s does not name %d of %d test clips; they stay unlabelled (first: %s/%s)",
                self._describe(),
                len(unmatched),
                tests,
                unmatched[0].machine,
                unmatched[0].name,
            )
        return Manifest(out, manifest.layout, manifest.root)

    def _describe(self) -> str:
        if self.given is not None:
            return str(self.given)
        if not self.sources:
            return "(in memory)"
        if len(self.sources) == 1:
            return str(self.sources[0])
        return f"({len(self.sources)} files)"


def _regroup(clip: Clip, domain: str) -> str:
    """A 2021-style group names the domain; keep it in step when the ground truth corrects it."""
    old = clip.domain
    parsed = dcase2021.parse_group(clip.group) if clip.split == TEST and old and domain != old else None
    if parsed is not None and parsed[2] == old:
        return dcase2021.group(parsed[0], parsed[1], domain)
    return clip.group


def _per_section_list(name: str) -> tuple[str, str] | None:
    """``(machine, domain)`` of ``ground_truth_<group>.csv`` (domain "" for 2022+ groups), else None."""
    if not (name.lower().startswith(_LIST_PREFIX) and name.lower().endswith(".csv")):
        return None
    group = name[len(_LIST_PREFIX) : -len(".csv")]
    if parsed := dcase2021.parse_group(group):
        return parsed[0], parsed[2]
    if found := dcase2022.parse_group(group):
        return found[0], ""
    return None


def _with_wav(name: str) -> str:
    name = name.strip()
    return name if name.lower().endswith(_WAV) else name + _WAV


def _basename(name: str) -> str:
    return name.strip().replace("\\", "/").rsplit("/", 1)[-1]


class _Collector:
    """Gathers facts from many files; explicit lists beat facts implied by full names."""

    def __init__(self) -> None:
        self.labels: dict[Key, int] = {}
        self.domains: dict[Key, str] = {}
        self.implied_labels: dict[Key, int] = {}
        self.implied_domains: dict[Key, str] = {}
        self.full_names: dict[Key, str] = {}
        self.pairs: dict[Key, dict[str, str]] = {}
        self.conflicts: list[str] = []
        self.years: dict[Key, int] = {}
        self.year: int | None = None  # the year of the file being read

    def _put(self, table: dict, key: Key, value: object, what: str, where: Path) -> None:
        self._date(key)
        old = table.setdefault(key, value)
        if old != value:
            self.conflicts.append(f"{what} of {key[0]}/{key[1]}: {old!r} vs {value!r} in {where}")

    def label(self, key: Key, value: int, where: Path) -> None:
        self._put(self.labels, key, value, "label", where)

    def domain(self, key: Key, value: str, where: Path) -> None:
        self._put(self.domains, key, value, "domain", where)

    def full_name(self, key: Key, full: str, where: Path, *, test: bool = True) -> None:
        """Record the real name; for test clips its words also imply label and domain."""
        self._date(key)
        full = _with_wav(_basename(full))
        old = self.full_names.setdefault(key, full)
        if old != full:
            # 2024 lists give both "..._noAttribute" and the name with attributes: keep the telling one.
            if _NO_ATTRIBUTE in old.lower() and _NO_ATTRIBUTE not in full.lower():
                self.full_names[key] = full
            else:
                log.debug("%s: %s/%s already maps to %s, not %s", where, key[0], key[1], old, full)
        if not test:
            return
        if fields := dcase2022.parse_name(full):
            self.implied_labels.setdefault(key, fields.label)
            self.implied_domains.setdefault(key, fields.domain)
        elif fields := dcase2020.parse_name(full):
            self.implied_labels.setdefault(key, fields.label)

    def _date(self, key: Key) -> None:
        if self.year is not None:
            self.years.setdefault(key, self.year)

    def attribute_pairs(self, key: Key, pairs: dict[str, str]) -> None:
        if pairs:
            self.pairs.setdefault(key, pairs)

    def result(self, sources: list[Path]) -> GroundTruth:
        labels = dict(self.implied_labels)
        domains = dict(self.implied_domains)
        for table, implied, what in ((self.labels, labels, "label"), (self.domains, domains, "domain")):
            for key, value in table.items():
                if key in implied and implied[key] != value:
                    self.conflicts.append(
                        f"{what} of {key[0]}/{key[1]}: list says {value!r}, "
                        f"full name implies {implied[key]!r}"
                    )
                implied[key] = value
        if self.conflicts:
            log.warning(
                "ground truth: %d disagreement(s), the first list read wins (first: %s)",
                len(self.conflicts),
                self.conflicts[0],
            )
        attributes: dict[Key, dict[str, str]] = {}
        for key, full in self.full_names.items():
            fields = dcase2022.parse_name(full)
            tail = fields.attributes if fields else {}
            if tail:
                attributes[key] = tail
        for key, pairs in self.pairs.items():
            attributes[key] = {**attributes.get(key, {}), **pairs}
        return GroundTruth(labels, domains, dict(self.full_names), attributes, sources, dict(self.years))


def _rows(path: Path) -> list[list[str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return [[c.strip() for c in r] for r in csv.reader(f) if any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read as a ground-truth CSV ({exc})") from None


def _read_eval_list(path: Path, rows: list[list[str]], out: _Collector) -> None:
    machine = rows[0][0]  # the format check saw a machine-name line first
    for row in rows:
        if len(row) == 1 or not any(row[1:]):
            machine = row[0]
            continue
        key = (machine, _basename(row[0]))
        out.full_name(key, row[1], path)
        if len(row) >= 3 and row[2] in _LABEL_CODES:
            out.label(key, _LABEL_CODES[row[2]], path)


def _read_per_section(
    path: Path, rows: list[list[str]], out: _Collector, machine: str, domain_in_name: str
) -> None:
    is_domain_list = "domain" in path.parent.name.lower()
    for line, row in enumerate(rows, start=1):
        if len(row) < 2:
            raise DataError(f"{path}, line {line}: expected name,value; found {','.join(row)}")
        key = (machine, _basename(row[0]))
        value = row[1]
        if value in _LABEL_CODES:
            if is_domain_list:
                out.domain(key, _DOMAIN_CODES[value], path)
            else:
                out.label(key, _LABEL_CODES[value], path)
                if domain_in_name:
                    out.domain(key, domain_in_name, path)
        else:
            # name -> full name; 2024 adds a "noAttribute" middle column: take the most telling one.
            candidates = [c for c in row[1:] if c]
            full = next((c for c in reversed(candidates) if _NO_ATTRIBUTE not in c.lower()), candidates[-1])
            out.full_name(key, full, path)


def _read_attributes_2022(path: Path, rows: list[list[str]], out: _Collector) -> None:
    for row in rows[1:]:
        name = row[0].replace("\\", "/")
        machine = name.split("/", 1)[0] if "/" in name else path.parent.name
        key = (machine, _basename(name))
        wavs = [c for c in row[1:] if c.lower().endswith(_WAV)]
        values = [c for c in row[1:] if c and not c.lower().endswith(_WAV)]
        if wavs:
            out.full_name(key, wavs[-1], path)
        out.attribute_pairs(key, {k: v for k, v in zip(values[0::2], values[1::2], strict=False) if k})


def _read_correspondence(path: Path, rows: list[list[str]], out: _Collector) -> None:
    machine = path.parent.name
    for row in rows[1:]:
        if len(row) < 2:
            continue
        full, name = _basename(row[0]), _basename(row[1])
        fields = dcase2022.parse_name(full)
        is_test = fields is not None and fields.split == TEST
        out.full_name((machine, name), full, path, test=is_test)


def _read_file(path: Path, out: _Collector) -> bool:
    """Read one file into ``out``; False when it is none of the official formats."""
    if path.suffix.lower() != ".csv":
        return False
    rows = _rows(path)
    if not rows:
        return False
    header = [c.lower() for c in rows[0]]
    if listed := _per_section_list(path.name):
        machine, domain = listed
        out.year = 2021 if domain else _year_in_path(path, 2022)
        _read_per_section(path, rows, out, machine, domain)
    elif header[:2] == ["source_file_name", "target_file_name"]:
        out.year = _year_in_path(path, 2024)
        _read_correspondence(path, rows, out)
    elif header and header[0] == "file_name" and any(c.startswith("file_name_with") for c in header):
        out.year = 2022
        _read_attributes_2022(path, rows, out)
    elif len(rows[0]) == 1 and not header[0].endswith(_WAV) and any(len(r) >= 2 for r in rows):
        out.year = _year_in_path(path, None)
        _read_eval_list(path, rows, out)
    else:
        return False
    return True


_YEAR_IN_NAME = re.compile(r"(?:^|[^0-9])(20[2-9][0-9])(?:[^0-9]|$)")


def _year_in_path(path: Path, default: int | None) -> int | None:
    """The year a list's own name or its folders carry (``eval_data_list_2023.csv``, ``dcase2024t2/``).

    Lists that never changed form between years (2022-2024 per-section labels) fall back to ``default``,
    whose rules are the same as those of the years it stands for.
    """
    for part in reversed(path.parts[-4:]):  # the list and the evaluator's folders, not the user's
        if m := _YEAR_IN_NAME.search(part):
            return int(m.group(1))
    return default


def _companions(path: Path) -> list[Path]:
    """``ground_truth_domain/`` and ``ground_truth_attributes/`` beside a ``ground_truth_data/`` given alone.

    The evaluators keep labels, domains and full names in three sibling folders; the 2022+ rules need the
    domains, so pointing at the labels folder (as the evaluators' READMEs do) must find them.
    """
    folder = path if path.is_dir() else path.parent
    if folder.name.lower() != "ground_truth_data":
        return []
    found: list[Path] = []
    for sibling in ("ground_truth_domain", "ground_truth_attributes"):
        other = folder.parent / sibling
        candidate = other if path.is_dir() else other / path.name
        if candidate.exists():
            found.append(candidate)
    return found


def load_ground_truth(path: Path | str) -> GroundTruth:
    """Read one official ground-truth file, or every one below a folder, into a :class:`GroundTruth`.

    Raises DataError naming the path when it is missing, unreadable, or holds no official list.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such ground-truth file or folder")
    out = _Collector()
    read: list[Path] = []
    _load_into(path, out, read)
    for companion in _companions(path):
        log.info("%s: also reading %s beside it (domains and full names)", path, companion)
        _load_into(companion, out, read)
    return replace(out.result(read), given=path)


def _load_into(path: Path, out: _Collector, read: list[Path]) -> None:
    if path.is_dir():
        files = sorted(
            p
            for p in path.rglob("*.csv")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
        ignored: list[Path] = []
        for p in files:
            (read if _read_file(p, out) else ignored).append(p)
        if ignored:
            log.info(
                "%s: ignored %d CSV file(s) that are no ground-truth list (first: %s)",
                path,
                len(ignored),
                ignored[0].relative_to(path),
            )
        if not read:
            raise DataError(f"{path}: no official ground-truth lists found ({_EXPECTED})")
    else:
        if not _read_file(path, out):
            raise DataError(f"{path}: not an official ground-truth list ({_EXPECTED})")
        read.append(path)


_EXPECTED = (
    "expected ground_truth_<machine>_section_XX[_<domain>]_test.csv, <machine>/attributes_XX.csv, "
    "*_correspondence.csv or eval_data_list_YYYY.csv"
)
