"""The scores of one system on one test set, in the form every evaluation scheme reads."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, cast, get_args

import numpy as np

from asdkit.errors import DataError

if TYPE_CHECKING:
    from asdkit.data.manifest import Clip

Scheme = Literal["dcase2020", "dcase2021", "dcase2022"]
SCHEMES: tuple[str, ...] = get_args(Scheme)

_ALIASES = {
    "2020": "dcase2020",
    "2021": "dcase2021",
    "2022": "dcase2022",
    "2023": "dcase2022",
    "2024": "dcase2022",
    "2025": "dcase2022",
    "2026": "dcase2022",
}


def normalize_scheme(name: str) -> Scheme:
    """``dcase2022``..``dcase2025`` (or plain years) share one scheme: their test sets are built alike."""
    key = name.strip().lower().removeprefix("dcase")
    scheme = _ALIASES.get(key, name.strip().lower())
    if scheme not in SCHEMES:
        raise ValueError(
            f"unknown evaluation scheme {name!r}: expected one of {', '.join(SCHEMES)} (or 2023-2025)"
        )
    return cast(Scheme, scheme)


@dataclass(frozen=True)
class ScoreRecord:
    """One scored test clip.

    ``section`` is the two-digit section (2021+) or machine id (2020); ``label`` is 0 (normal) or
    1 (anomalous); ``decision`` is the system's 0/1 decision, None when it made none; ``group``
    names the submission file the clip came from (``anomaly_score_<group>.csv``).
    """

    machine: str
    section: str
    domain: str
    label: int
    score: float
    decision: int | None = None
    name: str = ""
    group: str = ""


class ScoreTable(Sequence[ScoreRecord]):
    """An ordered collection of scored clips plus the scheme it should be evaluated with (if known)."""

    def __init__(self, records: Iterable[ScoreRecord], scheme: Scheme | str | None = None) -> None:
        self.records: tuple[ScoreRecord, ...] = tuple(records)
        self.scheme: Scheme | None = None if scheme is None else normalize_scheme(scheme)
        for r in self.records:
            if r.label not in (0, 1):
                raise ValueError(f"{r.machine} {r.name or r.section}: label must be 0 or 1, got {r.label!r}")
            if r.decision is not None and r.decision not in (0, 1):
                raise ValueError(
                    f"{r.machine} {r.name or r.section}: decision must be 0 or 1, got {r.decision!r}"
                )

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> ScoreRecord:  # type: ignore[override]
        return self.records[index]

    def __iter__(self) -> Iterator[ScoreRecord]:
        return iter(self.records)

    def __repr__(self) -> str:
        return f"ScoreTable(scheme={self.scheme!r}, records={len(self)}, machines={self.machines()})"

    def machines(self) -> list[str]:
        """Machine types in the order the evaluators list them (plain sorted file-name order)."""
        return sorted({r.machine for r in self.records})

    def sections(self, machine: str | None = None) -> list[str]:
        return sorted({r.section for r in self.records if machine is None or r.machine == machine})

    @property
    def has_decisions(self) -> bool:
        """True when every clip has a decision (precision/recall/F1 need all of them)."""
        return bool(self.records) and all(r.decision is not None for r in self.records)

    def filter(
        self, *, machines: Iterable[str] | None = None, sections: Iterable[str] | None = None
    ) -> ScoreTable:
        keep_m = set(machines) if machines is not None else None
        keep_s = set(sections) if sections is not None else None
        kept = [
            r
            for r in self.records
            if (keep_m is None or r.machine in keep_m) and (keep_s is None or r.section in keep_s)
        ]
        return ScoreTable(kept, self.scheme)

    @classmethod
    def from_clips(
        cls,
        clips: Sequence[Clip],
        scores: np.ndarray | Sequence[float],
        decisions: np.ndarray | Sequence[int] | None = None,
        scheme: Scheme | str | None = None,
    ) -> ScoreTable:
        """Evaluate straight from a manifest's test clips, without writing score files first."""
        scores_arr = np.asarray(scores, dtype=float).ravel()
        if scores_arr.size != len(clips):
            raise ValueError(f"{len(clips)} clips but {scores_arr.size} scores")
        dec = None if decisions is None else np.asarray(decisions).ravel()
        if dec is not None and dec.size != len(clips):
            raise ValueError(f"{len(clips)} clips but {dec.size} decisions")
        records = []
        for i, c in enumerate(clips):
            if c.label is None:
                raise DataError(f"clip {c.name} ({c.machine}) has no label: load the ground truth first")
            records.append(
                ScoreRecord(
                    machine=c.machine,
                    section=c.section,
                    domain=c.domain,
                    label=int(c.label),
                    score=float(scores_arr[i]),
                    decision=None if dec is None else int(dec[i]),
                    name=c.name,
                    group=c.group,
                )
            )
        return cls(records, scheme)
