"""The two ways to an official score, ``run`` (clips in memory) and ``evaluate`` (score files on disk).

Both decide their rules with :func:`asdkit.metrics.scheme.decide_rules`, check completeness against
the ground truth with :func:`asdkit.metrics.coverage.check_coverage` and record both in result.csv, so
the same scores give the same numbers either way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from asdkit.data.manifest import TEST, Clip, Manifest
from asdkit.errors import DataError
from asdkit.metrics.coverage import Coverage, check_coverage
from asdkit.metrics.scheme import Rules, decide_rules, year_of_manifest, year_of_naming
from asdkit.run_result import read_config, read_manifest
from asdkit.rundir import CONFIG_FILE, RESULT_FILE, SCORES_DIR

if TYPE_CHECKING:
    from asdkit.data.ground_truth import GroundTruth
    from asdkit.metrics import Evaluation

log = logging.getLogger(__name__)


def _load_truth(ground_truth: Path | str | None) -> GroundTruth | None:
    if ground_truth is None:
        return None
    from asdkit.data.ground_truth import load_ground_truth

    return load_ground_truth(Path(ground_truth))


@dataclass
class RunEvaluation:
    """How ``run`` evaluates its scores: the rules and the ground truth's list, fixed before training."""

    rules: Rules
    truth: GroundTruth | None
    listed: dict[tuple[str, str], tuple[str, str]]
    allow_partial: bool

    @classmethod
    def prepare(
        cls,
        manifest: Manifest,
        ground_truth: Path | str | None,
        scheme: str | None,
        *,
        allow_partial: bool = False,
    ) -> RunEvaluation:
        """Rules for ``manifest``; with a ground truth, clips it lists that the tree lacks fail here."""
        truth = _load_truth(ground_truth)
        tests = [c for c in manifest if c.split == TEST]
        keys = {(c.machine, c.name) for c in tests}
        data_year, data_source = year_of_manifest(manifest)
        rules = decide_rules(
            forced=scheme, truth=truth, keys=keys, data_year=data_year, data_source=data_source
        )
        listed: dict[tuple[str, str], tuple[str, str]] = {}
        if truth is not None:
            listed = truth.listed(manifest.machines(), truth.year_of(keys))
            check_coverage(
                listed,
                {truth.canonical(k) for k in keys},
                f"{truth.describe()} (the data tree)",
                allow_partial=allow_partial,
            )
        return cls(rules, truth, listed, allow_partial)

    def evaluate(
        self, clips: Sequence[Clip], scores: np.ndarray, decisions: np.ndarray, out: Path
    ) -> Evaluation | None:
        """Evaluate the scored clips and write result.csv; None (with a warning) when they cannot be."""
        from asdkit.metrics import ScoreTable, write_result_csv
        from asdkit.metrics import evaluate as evaluate_table

        unlabelled = sum(c.label is None for c in clips)
        if unlabelled:
            log.warning(
                "%d of %d test clips have no label (give --ground-truth to evaluate an eval set); "
                "wrote the submission files only",
                unlabelled,
                len(clips),
            )
            return None
        coverage = None
        if self.truth is not None:
            coverage = check_coverage(
                self.listed,
                {self.truth.canonical((c.machine, c.name)) for c in clips},
                self.truth.describe(),
                allow_partial=self.allow_partial,
            )
        table = ScoreTable.from_clips(clips, scores, decisions, scheme=self.rules.scheme)
        try:
            evaluation = evaluate_table(table)
        except DataError as exc:
            log.warning("cannot evaluate: %s", exc)
            return None
        evaluation = replace(evaluation, rules=self.rules, coverage=coverage)
        write_result_csv(evaluation, out / RESULT_FILE)
        return evaluation


def evaluate_scores(
    scores_dir: Path | str,
    ground_truth: Path | str | None = None,
    out: Path | str | None = None,
    *,
    scheme: str | None = None,
    allow_partial: bool = False,
) -> Evaluation:
    """``asdkit evaluate``: see :func:`asdkit.api.evaluate`."""
    from asdkit.data.ground_truth import GroundTruth
    from asdkit.metrics import evaluate as evaluate_table
    from asdkit.metrics import write_result_csv
    from asdkit.reports.submission import read_scores_dir

    given = Path(scores_dir)
    run_dir = given if (given / SCORES_DIR).is_dir() else None
    folder = given / SCORES_DIR if run_dir is not None else given
    truth = _load_truth(ground_truth)
    manifest, run_scheme = _run_record(run_dir) if run_dir is not None and truth is None else (None, None)
    labels = truth
    if manifest is not None:
        tests = [c for c in manifest if c.split == TEST and c.label is not None]
        labels = GroundTruth(
            labels={(c.machine, c.name): int(c.label) for c in tests if c.label is not None},
            domains={(c.machine, c.name): c.domain for c in tests if c.domain},
        )
    table = read_scores_dir(folder, ground_truth=labels)
    keys = {(r.machine, r.name) for r in table}
    if manifest is not None:
        data_year, data_source = year_of_manifest(manifest)
    else:
        data_year, data_source = year_of_naming(table.scheme)
    rules = decide_rules(
        forced=scheme or run_scheme, truth=truth, keys=keys, data_year=data_year, data_source=data_source
    )
    coverage: Coverage | None = None
    if truth is not None:
        listed = truth.listed(table.machines(), truth.year_of(keys))
        scored = {truth.canonical(k) for k in keys}
        coverage = check_coverage(listed, scored, truth.describe(), allow_partial=allow_partial)
    evaluation = replace(evaluate_table(table, rules.scheme), rules=rules, coverage=coverage)
    if out is not None:
        write_result_csv(evaluation, Path(out) / RESULT_FILE)
    return evaluation


def _run_record(run_dir: Path) -> tuple[Manifest | None, str | None]:
    """A run directory's manifest (labels, domains, layout) and the scheme its ``--scheme`` forced."""
    if not (run_dir / CONFIG_FILE).is_file():
        return None, None
    config = read_config(run_dir)
    manifest = read_manifest(run_dir, config)
    if manifest is None:
        return None, None
    recorded = config.get("scheme")
    forced = recorded.get("scheme") if isinstance(recorded, dict) and recorded.get("forced") else None
    return manifest, forced
