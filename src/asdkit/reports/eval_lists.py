"""Every DCASE Task 2 evaluation set's clip list (2020-2025), as facts: machines, sections, clip counts;
2026's machine types and sections (its clip names are not published yet).

The organisers' ``eval_data_list_<YEAR>.csv`` files follow one rule per year, so the lists are rebuilt
here from a few numbers instead of being shipped: machine types, their sections (2020: machine ids;
2021: section and domain), how many anonymised clips each has and the first clip index, and the year's
name pattern. The tests regenerate each list and compare it with the published file where it is present.

Submission groups and clip names per year:

- 2020: ``anomaly_score_<machine>_id_<XX>.csv`` holding ``id_XX_NNNNNNNN.wav``;
- 2021: ``anomaly_score_<machine>_section_<XX>_<domain>_test.csv`` holding
  ``section_XX_<domain>_test_NNNN.wav``;
- 2022-2026: ``anomaly_score_<machine>_section_<XX>_test.csv`` holding ``section_XX_NNNN.wav``.

2026: the organisers' repository (``nttcslab/dcase2023_task2_baseline_ae``, snapshot of 2026-05-18) gives
the evaluation machine types and their one section 00 (``datasets/machine_type_2026_eval.yaml``) and
scores them with the 2022+ code, hence the same file and clip names; it holds no
``eval_data_list_2026.csv``. So the 2026 groups carry no clip names (``names_known=False``): a submission
is checked for its files and for clip names of the anonymised pattern, and every clip is checked only
against a list given with ``--eval-list``.
"""

from __future__ import annotations

from dataclasses import dataclass

from asdkit.data.catalogue import RELEASES
from asdkit.data.manifest import TEST
from asdkit.data.naming import evalset
from asdkit.data.naming.clipname import ClipName

YEARS = (2020, 2021, 2022, 2023, 2024, 2025)
#: Years whose machine types and sections are known but not their clip names.
UNLISTED_YEARS = (2026,)


@dataclass(frozen=True)
class EvalGroup:
    """One submission file's worth of clips."""

    machine: str
    group: str  # the <group> of anomaly_score_<group>.csv
    names: tuple[str, ...]
    names_known: bool = True  # False: the clip names were not published (names is empty)


def _rules(year: int) -> int:
    """The naming rules of ``year`` (``asdkit.data.naming.evalset``: 2022 stands for 2022-2025)."""
    return min(year, 2022)


def _seq(year: int, section: str, count: int, start: int = 0, domain: str = "") -> tuple[str, ...]:
    return tuple(
        evalset.format_name(ClipName(section, i, None, domain, TEST), _rules(year))
        for i in range(start, start + count)
    )


# 2020: clips per (machine, id).
_2020 = {
    "fan": {"01": 426, "03": 458, "05": 458},
    "pump": {"01": 216, "03": 213, "05": 348},
    "slider": {"01": 278, "03": 278, "05": 278},
    "valve": {"01": 220, "03": 220, "05": 500},
    "ToyCar": {"05": 515, "06": 515, "07": 515},
    "ToyConveyor": {"04": 555, "05": 555, "06": 555},
}
# 2021: 200 clips per (machine, section 03-05, domain) except these.
_2021_MACHINES = ("fan", "gearbox", "pump", "slider", "ToyCar", "ToyTrain", "valve")
_2021_EXCEPTIONS = {
    ("gearbox", "03", "source"): 234,
    ("gearbox", "03", "target"): 286,
    ("gearbox", "04", "source"): 252,
    ("gearbox", "04", "target"): 234,
    ("gearbox", "05", "source"): 210,
    ("gearbox", "05", "target"): 212,
    ("slider", "05", "source"): 204,
    ("slider", "05", "target"): 203,
}
# 2022-2025: machine types; 200 clips per section (2022: sections 03-05, later: 00).
_SECTION_YEARS: dict[int, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # the machine types come from the download catalogue, so that the two never disagree
    year: (RELEASES[year].eval_machines, ("03", "04", "05") if year == 2022 else ("00",))
    for year in (2022, 2023, 2024, 2025)
}
_CLIPS_PER_SECTION = 200
#: 2024: three machine types number their clips from 1 (section_00_0001 ... section_00_0200).
_FIRST_INDEX = {(2024, "3DPrinter"): 1, (2024, "AirCompressor"): 1, (2024, "Scanner"): 1}


def eval_groups(year: int) -> list[EvalGroup]:
    """The year's evaluation list as submission groups, machine types in the published order."""
    if year == 2020:
        return [
            EvalGroup(m, evalset.group(2020, m, s), _seq(2020, s, n))
            for m, ids in _2020.items()
            for s, n in ids.items()
        ]
    if year == 2021:
        return [
            EvalGroup(
                m,
                evalset.group(2021, m, s, d),
                _seq(2021, s, _2021_EXCEPTIONS.get((m, s, d), 200), domain=d),
            )
            for m in _2021_MACHINES
            for s in ("03", "04", "05")
            for d in ("source", "target")
        ]
    if year in _SECTION_YEARS:
        machines, sections = _SECTION_YEARS[year]
        return [
            EvalGroup(
                m,
                evalset.group(_rules(year), m, s),
                _seq(year, s, _CLIPS_PER_SECTION, _FIRST_INDEX.get((year, m), 0)),
            )
            for m in machines
            for s in sections
        ]
    if year in UNLISTED_YEARS:
        return [
            EvalGroup(m, evalset.group(_rules(year), m, "00"), (), names_known=False)
            for m in RELEASES[year].eval_machines
        ]
    raise ValueError(
        f"year {year}: evaluation lists exist for {', '.join(map(str, (*YEARS, *UNLISTED_YEARS)))}"
    )


def groups_from_list_file(text: str, year: int) -> list[EvalGroup]:
    """Groups from an ``eval_data_list_<YEAR>.csv`` (machine line, then ``name,...`` rows)."""
    by_group: dict[tuple[str, str], list[str]] = {}
    machine = None
    for line in text.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if not cells or not cells[0]:
            continue
        if len(cells) == 1:
            machine = cells[0]
            continue
        if machine is None:
            raise ValueError("the list starts with a clip row, not a machine-type line")
        name = cells[0]
        parsed = evalset.parse_name(name)
        if parsed is None or parsed[0] != _rules(year):
            raise ValueError(f"clip name {name!r} does not follow the {year} evaluation-set naming")
        clip = parsed[1]
        group = evalset.group(_rules(year), machine, clip.section, clip.domain)
        by_group.setdefault((machine, group), []).append(name)
    return [EvalGroup(m, g, tuple(names)) for (m, g), names in by_group.items()]
