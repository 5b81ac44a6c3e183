"""Evaluate a score table the way one year's official evaluator does.

Three schemes, because the test sets were built three ways:

* ``dcase2020``: one test set per machine type and id; a type's "Average" is the arithmetic mean
  over its ids.
* ``dcase2021``: one test set per machine type, section *and* domain (separate source and target
  score files); AUC and pAUC per set; arithmetic and harmonic means per type and over everything;
  the official score is the harmonic mean of all AUC and pAUC values.
* ``dcase2022`` (2022-2025): one test set per section holding both domains. AUC(source) is computed
  on the source normals plus ALL anomalies of the section, AUC(target) on the target normals plus
  ALL anomalies (the domain shift is about normal behaviour, and every anomaly should score above
  each domain's normals); pAUC on every clip of the section; precision/recall/F1 per domain on that
  domain's clips. The official score is the harmonic mean over all sections' AUC(source),
  AUC(target) and pAUC.

A test set whose AUC does not exist (no normal or no anomalous clip; 2022+: no source or no target
normals) is left out with one warning each and listed in ``Evaluation.left_out``; the rest are
evaluated. The official evaluators would stop there, so a result with sets left out is not the
official number for the whole test set, and result.csv says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from asdkit.errors import DataError
from asdkit.metrics.core import UnevaluableSet, amean, auc, hmean, pauc, precision_recall_f1
from asdkit.metrics.jackknife import MIN_SECTIONS, JackknifeInterval, jackknife
from asdkit.metrics.table import Scheme, ScoreRecord, ScoreTable, normalize_scheme

if TYPE_CHECKING:
    from asdkit.metrics.coverage import Coverage
    from asdkit.metrics.scheme import Rules

log = logging.getLogger(__name__)

SOURCE, TARGET = "source", "target"
DOMAINS: tuple[str, str] = (SOURCE, TARGET)

COLUMNS_2020: tuple[str, ...] = ("AUC", "pAUC")
COLUMNS_2021: tuple[str, ...] = ("AUC", "pAUC")
DECISION_COLUMNS_2021: tuple[str, ...] = ("precision", "recall", "F1 score")
COLUMNS_2022: tuple[str, ...] = ("AUC (source)", "AUC (target)", "pAUC")
DECISION_COLUMNS_2022: tuple[str, ...] = (
    "precision (source)",
    "precision (target)",
    "recall (source)",
    "recall (target)",
    "F1 score (source)",
    "F1 score (target)",
)

_OFFICIAL = {
    "dcase2020": (
        COLUMNS_2020,
        "arithmetic mean of all AUC and pAUC values (2020 ranked by average rank; no single official score)",
    ),
    "dcase2021": (COLUMNS_2021, "harmonic mean of all AUC and pAUC values"),
    "dcase2022": (COLUMNS_2022, "harmonic mean of all sections' AUC (source), AUC (target) and pAUC"),
}


@dataclass(frozen=True)
class RowMetrics:
    """The metrics of one test set: a (machine, id) in 2020, (machine, section, domain) in 2021,
    (machine, section) in 2022+. ``domain`` is None except in 2021."""

    machine: str
    section: str
    domain: str | None
    values: Mapping[str, float]
    n_normal: int = 0
    n_anomaly: int = 0

    def __getitem__(self, column: str) -> float:
        return self.values[column]


@dataclass(frozen=True)
class MachineResult:
    """One machine type's rows and their means (2020's "Average" is ``amean``)."""

    machine: str
    rows: tuple[RowMetrics, ...]
    amean: Mapping[str, float]
    hmean: Mapping[str, float]


@dataclass(frozen=True)
class Evaluation:
    """Everything one official evaluator reports, plus the jackknife interval of the official score."""

    scheme: Scheme
    columns: tuple[str, ...]
    machines: tuple[MachineResult, ...]
    overall_amean: Mapping[str, float]
    overall_hmean: Mapping[str, float]
    official_score: float
    official_score_definition: str
    jackknife: JackknifeInterval | None
    left_out: tuple[tuple[str, str], ...] = ()
    """(test set, reason) of each set that could not be evaluated: ("fan section 00", "no anomalous clip")."""
    rules: Rules | None = None
    """Which year's rules were chosen and why (set by ``asdkit.api``; None when the caller chose)."""
    coverage: Coverage | None = None
    """How much of a ground truth's list was scored (None without a list)."""

    @property
    def rows(self) -> tuple[RowMetrics, ...]:
        return tuple(r for m in self.machines for r in m.rows)

    def machine(self, name: str) -> MachineResult:
        for m in self.machines:
            if m.machine == name:
                return m
        raise KeyError(f"no machine type {name!r} in this evaluation ({', '.join(self.machine_names)})")

    @property
    def machine_names(self) -> list[str]:
        return [m.machine for m in self.machines]

    def __iter__(self) -> Iterator[MachineResult]:
        return iter(self.machines)


def _where(machine: str, section: str, domain: str | None = None) -> str:
    return f"{machine} section {section}" + (f" ({domain})" if domain else "")


def _decision_columns(table: ScoreTable, scheme: Scheme) -> bool:
    """Decision metrics are reported only when every clip has a decision; a partial set is an error."""
    if scheme == "dcase2020":
        return False
    have = [r.decision is not None for r in table]
    if all(have):
        return True
    if any(have):
        missing = sorted({r.group or _where(r.machine, r.section) for r in table if r.decision is None})
        raise DataError(
            f"decisions are missing for {len(missing)} score file(s) ({', '.join(missing[:3])}"
            f"{', ...' if len(missing) > 3 else ''}): write decision_result files for all of them or none"
        )
    return False


def _arrays(records: Sequence[ScoreRecord]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    y = np.array([r.label for r in records], dtype=int)
    s = np.array([r.score for r in records], dtype=float)
    if any(r.decision is None for r in records):
        return y, s, None
    d = np.array([r.decision for r in records], dtype=int)
    return y, s, d


def _row_2020(machine: str, section: str, records: Sequence[ScoreRecord]) -> RowMetrics:
    y, s, _ = _arrays(records)
    what = _where(machine, section).replace("section", "id")
    _require_both(y, what)
    values = {"AUC": auc(y, s, what), "pAUC": pauc(y, s, what=what)}
    return RowMetrics(machine, section, None, values, int(np.sum(y == 0)), int(np.sum(y == 1)))


def _row_2021(
    machine: str, section: str, domain: str, records: Sequence[ScoreRecord], decisions: bool
) -> RowMetrics:
    y, s, d = _arrays(records)
    what = _where(machine, section, domain)
    _require_both(y, what)
    values = {"AUC": auc(y, s, what), "pAUC": pauc(y, s, what=what)}
    if decisions:
        assert d is not None
        values.update(zip(DECISION_COLUMNS_2021, precision_recall_f1(y, d), strict=True))
    return RowMetrics(machine, section, domain, values, int(np.sum(y == 0)), int(np.sum(y == 1)))


def _row_2022(machine: str, section: str, records: Sequence[ScoreRecord], decisions: bool) -> RowMetrics:
    y, s, d = _arrays(records)
    domains = np.array([r.domain for r in records])
    odd = sorted(set(domains.tolist()) - set(DOMAINS))
    if odd:
        raise DataError(
            f"{_where(machine, section)}: clips with domain {odd[0]!r}; expected source or target"
        )
    is_source = domains == SOURCE
    is_target = domains == TARGET
    anomalous = y == 1
    where = _where(machine, section)
    _require_both(y, where)
    for name, mask in (("source", is_source), ("target", is_target)):
        if not np.any(mask & ~anomalous):
            raise UnevaluableSet(where, f"no {name} normals (AUC ({name}) needs them)")
    src = is_source | anomalous
    tgt = is_target | anomalous
    values = {
        "AUC (source)": auc(y[src], s[src], _where(machine, section, "source normals + all anomalies")),
        "AUC (target)": auc(y[tgt], s[tgt], _where(machine, section, "target normals + all anomalies")),
        "pAUC": pauc(y, s, what=_where(machine, section)),
    }
    if decisions:
        assert d is not None
        p_s, r_s, f_s = precision_recall_f1(y[is_source], d[is_source])
        p_t, r_t, f_t = precision_recall_f1(y[is_target], d[is_target])
        values.update(zip(DECISION_COLUMNS_2022, (p_s, p_t, r_s, r_t, f_s, f_t), strict=True))
    return RowMetrics(machine, section, None, values, int(np.sum(y == 0)), int(np.sum(y == 1)))


def _require_both(y: np.ndarray, what: str) -> None:
    if not np.any(y == 1):
        raise UnevaluableSet(what, "no anomalous clip")
    if not np.any(y == 0):
        raise UnevaluableSet(what, "no normal clip")


def _means(rows: Sequence[RowMetrics], columns: tuple[str, ...]) -> tuple[dict[str, float], dict[str, float]]:
    # One 2-D array reduced along axis 0, like the official scripts: summing each column as its own
    # 1-D array uses numpy's pairwise summation and can differ in the last bit.
    a = np.array([[r.values[c] for c in columns] for r in rows], dtype=float)
    am = np.asarray(amean(a, axis=0))
    hm = np.asarray(hmean(a, axis=0))
    return (
        {c: float(v) for c, v in zip(columns, am, strict=True)},
        {c: float(v) for c, v in zip(columns, hm, strict=True)},
    )


def _rows_for(
    table: ScoreTable, scheme: Scheme, machine: str, decisions: bool, left_out: list[tuple[str, str]]
) -> list[RowMetrics]:
    """The rows of one machine type's test sets; sets that cannot be evaluated go to ``left_out``."""
    rows: list[RowMetrics] = []
    for compute in _row_makers(table, scheme, machine, decisions):
        try:
            rows.append(compute())
        except UnevaluableSet as exc:
            log.warning("%s left out of the evaluation: %s", exc.what, exc.reason)
            left_out.append((exc.what, exc.reason))
    return rows


def _row_makers(
    table: ScoreTable, scheme: Scheme, machine: str, decisions: bool
) -> list[Callable[[], RowMetrics]]:
    by_set: dict[tuple[str, str], list[ScoreRecord]] = {}
    for r in table:
        if r.machine == machine:
            key = (r.section, r.domain if scheme == "dcase2021" else "")
            by_set.setdefault(key, []).append(r)
    sections = sorted({k[0] for k in by_set})
    if scheme == "dcase2020":
        return [partial(_row_2020, machine, sec, by_set[(sec, "")]) for sec in sections]
    if scheme == "dcase2022":
        return [partial(_row_2022, machine, sec, by_set[(sec, "")], decisions) for sec in sections]
    odd = sorted({k[1] for k in by_set} - set(DOMAINS))
    if odd:
        raise DataError(f"{machine}: clips with domain {odd[0]!r}; expected source or target")
    # The 2021 evaluator lists every section's source set first, then every section's target set.
    return [
        partial(_row_2021, machine, sec, dom, by_set[(sec, dom)], decisions)
        for dom in DOMAINS
        for sec in sections
        if (sec, dom) in by_set
    ]


def evaluate(
    table: ScoreTable, scheme: Scheme | str | None = None, *, confidence: float = 0.95
) -> Evaluation:
    """All metrics of ``table`` under ``scheme`` (default: the scheme the table was read with).

    Sets without normal or without anomalous clips are left out (one warning each, listed in
    ``left_out``). Raises DataError for a table that cannot be evaluated at all (empty, every set left
    out, decisions for only some files).
    """
    chosen = normalize_scheme(scheme) if scheme is not None else table.scheme
    if chosen is None:
        raise ValueError("the score table has no scheme: pass scheme='dcase2020', 'dcase2021' or 'dcase2022'")
    if len(table) == 0:
        raise DataError("nothing to evaluate: the score table is empty")
    with_decisions = _decision_columns(table, chosen)
    base, definition = _OFFICIAL[chosen]
    columns = base
    if with_decisions:
        columns = base + (DECISION_COLUMNS_2021 if chosen == "dcase2021" else DECISION_COLUMNS_2022)

    machines = []
    left_out: list[tuple[str, str]] = []
    for machine in table.machines():
        rows = _rows_for(table, chosen, machine, with_decisions, left_out)
        if not rows:
            continue
        am, hm = _means(rows, columns)
        machines.append(MachineResult(machine, tuple(rows), am, hm))
    all_rows = [r for m in machines for r in m.rows]
    if not all_rows:
        what, reason = left_out[0]
        raise DataError(
            f"nothing to evaluate: all {len(left_out)} test set(s) were left out (first: {what}: {reason})"
        )
    overall_am, overall_hm = _means(all_rows, columns)

    statistic = amean if chosen == "dcase2020" else hmean
    units: dict[tuple[str, str], list[float]] = {}
    for r in all_rows:
        units.setdefault((r.machine, r.section), []).extend(r.values[c] for c in base)
    official = float(statistic(np.concatenate([np.asarray(v) for v in units.values()])))
    interval = jackknife(
        list(units.values()),
        lambda v: float(statistic(v)),
        confidence=confidence,
        units=list(units.keys()),
        bounds=(0.0, 1.0),
        min_units=MIN_SECTIONS,
    )
    return Evaluation(
        scheme=chosen,
        columns=columns,
        machines=tuple(machines),
        overall_amean=overall_am,
        overall_hmean=overall_hm,
        official_score=official,
        official_score_definition=definition,
        jackknife=interval,
        left_out=tuple(left_out),
    )
