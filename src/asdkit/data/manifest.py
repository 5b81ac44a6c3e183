"""The manifest: one table of clips that every later stage reads instead of parsing file names again."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from asdkit.utils.io import atomic_write_text

Layout = Literal["dcase2020", "dcase2021", "dcase2022", "eval", "folder", "mimii"]
LAYOUTS: tuple[str, ...] = ("dcase2020", "dcase2021", "dcase2022", "eval", "folder", "mimii")
SOURCE, TARGET = "source", "target"
TRAIN, TEST = "train", "test"
NORMAL, ANOMALY = 0, 1


@dataclass(frozen=True)
class Clip:
    """One recording and what is known about it.

    ``section`` is the two-digit section (2021+) or machine id (2020) as it appears in file names.
    ``label`` is None when the clip is unlabelled (evaluation sets without ground truth).
    ``name`` is the file name the challenge expects in submission files (anonymised eval names stay
    anonymised); ``group`` names the submission file the clip's score belongs in.
    """

    path: Path
    machine: str
    section: str
    domain: str = SOURCE
    split: str = TEST
    label: int | None = None
    attributes: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    name: str = ""
    group: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", Path(self.path).name)


class Manifest(Sequence[Clip]):
    """An ordered, filterable collection of clips from one layout."""

    def __init__(self, clips: Iterable[Clip], layout: str, root: Path | None = None) -> None:
        self.clips: list[Clip] = list(clips)
        self.layout = layout
        self.root = root
        #: (path, reason) of audio files in the tree that the scan could not take (set by ``scan``)
        self.skipped: list[tuple[Path, str]] = []

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> Clip:  # type: ignore[override]
        return self.clips[index]

    def __iter__(self) -> Iterator[Clip]:
        return iter(self.clips)

    def __repr__(self) -> str:
        return f"Manifest(layout={self.layout!r}, clips={len(self)}, machines={self.machines()})"

    def filter(
        self,
        *,
        machine: str | Iterable[str] | None = None,
        section: str | Iterable[str] | None = None,
        domain: str | None = None,
        split: str | None = None,
        label: int | None = None,
    ) -> Manifest:
        machines = {machine} if isinstance(machine, str) else set(machine) if machine is not None else None
        sections = {section} if isinstance(section, str) else set(section) if section is not None else None
        kept = [
            c
            for c in self.clips
            if (machines is None or c.machine in machines)
            and (sections is None or c.section in sections)
            and (domain is None or c.domain == domain)
            and (split is None or c.split == split)
            and (label is None or c.label == label)
        ]
        return Manifest(kept, self.layout, self.root)

    def machines(self) -> list[str]:
        return sorted({c.machine for c in self.clips})

    def sections(self, machine: str | None = None) -> list[str]:
        return sorted({c.section for c in self.clips if machine is None or c.machine == machine})

    def groups(self) -> list[str]:
        """Submission groups in a stable order (one score file each)."""
        return sorted({c.group for c in self.clips if c.group})

    def with_labels(self, labels: dict[str, int], domains: dict[str, str] | None = None) -> Manifest:
        """Labels (and domains) looked up by clip name, e.g. from official ground-truth lists."""
        out = []
        for c in self.clips:
            label = labels.get(c.name, c.label)
            domain = domains.get(c.name, c.domain) if domains else c.domain
            out.append(replace(c, label=label, domain=domain))
        return Manifest(out, self.layout, self.root)

    def summary(self) -> str:
        parts = []
        for m in self.machines():
            sub = self.filter(machine=m)
            n_train = len(sub.filter(split=TRAIN))
            n_test = len(sub.filter(split=TEST))
            parts.append(f"{m}: {n_train} train / {n_test} test, sections {','.join(sub.sections())}")
        return f"{self.layout} layout, {len(self)} clips ({'; '.join(parts)})"

    COLUMNS = ("path", "machine", "section", "domain", "split", "label", "name", "group", "attributes")

    def to_csv(self, path: Path) -> None:
        import io

        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.COLUMNS)
        for c in self.clips:
            label = "" if c.label is None else str(c.label)
            w.writerow(
                [
                    str(c.path),
                    c.machine,
                    c.section,
                    c.domain,
                    c.split,
                    label,
                    c.name,
                    c.group,
                    json.dumps(c.attributes, sort_keys=True),
                ]
            )
        atomic_write_text(Path(path), buf.getvalue())

    @classmethod
    def from_csv(cls, path: Path, layout: str = "folder") -> Manifest:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        clips = [
            Clip(
                path=Path(r["path"]),
                machine=r["machine"],
                section=r["section"],
                domain=r["domain"],
                split=r["split"],
                label=None if r["label"] == "" else int(r["label"]),
                attributes=json.loads(r.get("attributes") or "{}"),
                name=r["name"],
                group=r["group"],
            )
            for r in rows
        ]
        return cls(clips, layout)
