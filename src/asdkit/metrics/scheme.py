"""Which year's evaluation rules apply: decided once, from the data's year, for both ``run`` and ``evaluate``.

The three rule sets differ in what a test set is (see :mod:`asdkit.metrics.evaluation`), so the same
scores give different official numbers under each. The year is taken, in this order, from

1. ``--scheme`` (2020, 2021 or 2022; 2023-2025 are accepted and mean 2022's rules);
2. the ground truth or eval list that labels the clips (an evaluation set's names say little: a 2021
   evaluation tree is labelled by 2021's lists, whatever its layout is called);
3. the data itself: a development layout's year, the form of an evaluation set's anonymised names,
   or the form of the score files' names (``_id_XX`` 2020, ``_section_XX_<domain>_test`` 2021,
   ``_section_XX_test`` 2022+).

Data with no challenge year (the plain ``folder`` layout) has one domain: each machine's test set is
evaluated as 2021 did each domain's own set, i.e. AUC and pAUC per machine, official score their
harmonic mean.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from asdkit.errors import AsdkitError
from asdkit.metrics.table import Scheme, normalize_scheme

if TYPE_CHECKING:
    from asdkit.data.ground_truth import GroundTruth
    from asdkit.data.manifest import Manifest

log = logging.getLogger(__name__)

#: The year of each development layout (MIMII is the recording set DCASE2020 was cut from).
YEAR_OF_LAYOUT = {"dcase2020": 2020, "dcase2021": 2021, "dcase2022": 2022, "mimii": 2020}
#: The year each score-file naming scheme stands for (2022 stands for 2022-2025).
YEAR_OF_NAMING = {"dcase2020": 2020, "dcase2021": 2021, "dcase2022": 2022}
#: Rules for data with no year: one domain per machine, so each test set is evaluated on its own.
NO_YEAR_SCHEME: Scheme = "dcase2021"


def scheme_of_year(year: int) -> Scheme:
    """2020 and 2021 have their own rules; 2022-2025 share one (their test sets are built alike)."""
    if year <= 2020:
        return "dcase2020"
    if year == 2021:
        return "dcase2021"
    return "dcase2022"


@dataclass(frozen=True)
class Rules:
    """The evaluation scheme chosen, the data's year when known, and why."""

    scheme: Scheme
    year: int | None
    reason: str
    forced: bool = False

    def __str__(self) -> str:
        return f"{self.scheme} rules ({self.reason})"

    @property
    def data(self) -> str:
        """The data the rules are for, without the evidence (the same whichever way it was found)."""
        if self.forced:
            return "forced by --scheme"
        return f"{_year(self.year)}" if self.year is not None else "no challenge year, one domain"

    def to_dict(self) -> dict[str, Any]:
        return {"scheme": self.scheme, "year": self.year, "reason": self.reason, "forced": self.forced}


def choose_rules(
    *,
    forced: str | None = None,
    truth_year: int | None = None,
    truth_source: str = "the ground truth",
    data_year: int | None = None,
    data_source: str = "the data",
) -> Rules:
    """The one decision ``run`` and ``evaluate`` both make; see the module docstring for the order.

    A ground truth whose year disagrees with the data's is logged: the ground truth wins, because it is
    what labels the clips (and a 2020 or 2021 evaluation set is otherwise mistaken for a later one).
    """
    if forced is not None:
        try:
            scheme = normalize_scheme(str(forced))
        except ValueError:
            raise AsdkitError(
                f"--scheme {forced}: expected 2020, 2021 or 2022 (2023-2025 follow the 2022 rules)"
            ) from None
        return Rules(scheme, truth_year or data_year, f"forced by --scheme {forced}", forced=True)
    if truth_year is not None:
        if data_year is not None and scheme_of_year(data_year) != scheme_of_year(truth_year):
            log.warning(
                "%s is %d's, but %s looks like %d's; evaluating with %d's rules (force with --scheme)",
                truth_source,
                truth_year,
                data_source,
                data_year,
                truth_year,
            )
        return Rules(scheme_of_year(truth_year), truth_year, f"{_year(truth_year)}, from {truth_source}")
    if data_year is not None:
        return Rules(scheme_of_year(data_year), data_year, f"{_year(data_year)}, from {data_source}")
    return Rules(
        NO_YEAR_SCHEME,
        None,
        f"{data_source} has no challenge year and one domain: AUC and pAUC per machine and section",
    )


def _year(year: int) -> str:
    return "2022-2025 data" if year == 2022 else f"{year} data"


def year_of_manifest(manifest: Manifest) -> tuple[int | None, str]:
    """The year a manifest's layout (or, for evaluation sets, its anonymised test names) says."""
    if manifest.layout in YEAR_OF_LAYOUT:
        return YEAR_OF_LAYOUT[manifest.layout], f"the {manifest.layout} layout"
    if manifest.layout == "eval":
        from asdkit.data.manifest import TEST
        from asdkit.reports.submission import parse_group

        namings = Counter(
            info.scheme for c in manifest if c.split == TEST and (info := parse_group(c.group)) is not None
        )
        if namings:
            naming = namings.most_common(1)[0][0]
            return YEAR_OF_NAMING[naming], "the evaluation set's test-clip names"
        return None, "the evaluation set"
    return None, f"the {manifest.layout} layout"


def year_of_naming(scheme: Scheme | None) -> tuple[int | None, str]:
    """The year the score files' names stand for."""
    if scheme is None:
        return None, "the score files"
    return YEAR_OF_NAMING[scheme], "the score files' names"


def most_common_year(years: Iterable[int]) -> int | None:
    counts = Counter(years)
    return counts.most_common(1)[0][0] if counts else None


def decide_rules(
    *,
    forced: str | None,
    truth: GroundTruth | None,
    keys: Iterable[tuple[str, str]],
    data_year: int | None,
    data_source: str,
) -> Rules:
    """Rules for clips ``keys`` (machine, name) labelled by ``truth`` if given; run and evaluate call it."""
    truth_year = truth.year_of(keys) if truth is not None else None
    return choose_rules(
        forced=forced,
        truth_year=truth_year,
        truth_source=f"the ground truth {truth.describe()}" if truth is not None else "the ground truth",
        data_year=data_year,
        data_source=data_source,
    )
