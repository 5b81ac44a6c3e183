"""Trees for the evaluation paths: every year's evaluation set with its own ground-truth form, raw MIMII.

``make_year_eval_tree(root, year)`` writes an evaluation tree of ``year`` (2020-2025) with the ground truth
in the form that year's official evaluator (or baseline) ships it, and returns ``(data, ground_truth)``,
where ``ground_truth`` is what a user would pass to ``--ground-truth``:

- 2020: ``eval_data_list_2020.csv`` (a single file, with labels);
- 2021: the evaluator's ``ground_truth_data/`` (per section and domain);
- 2022: the evaluator's ``ground_truth_data/`` (domains in ``ground_truth_domain/`` beside it);
- 2023, 2024: the evaluator's root folder (``ground_truth_{data,domain,attributes}/``);
- 2025: ``eval_data_list_2025.csv`` (anonymised name -> full name, which says label and domain).

The hidden truth is :func:`tests.helpers.trees.make_tree`'s: test clip ``i`` of a section is an anomaly
when ``i`` is odd and (2022+) in the target domain when ``(i // 2)`` is odd.
"""

from __future__ import annotations

from pathlib import Path

from asdkit.data.manifest import ANOMALY, NORMAL, SOURCE, TARGET, TEST
from asdkit.data.naming import ClipName, dcase2022, evalset, mimii
from tests.helpers.trees import _tail, _write_csv, make_tree, write_clip

GT_FOLDER = {
    2021: "dcase2021_task2_evaluator",
    2022: "dcase2022_evaluator",
    2023: "dcase2023_task2_evaluator",
    2024: "dcase2024_task2_evaluator",
}


def make_year_eval_tree(
    root: Path, year: int, machines: tuple[str, ...] = ("fan", "valve"), n_test: int = 2
) -> tuple[Path, Path]:
    """An evaluation tree of ``year`` and the ground truth a user passes for it (see the module doc)."""
    data = root / f"eval_{year}"
    if year == 2020:
        gt_dir = root / "lists"
        make_tree(data, "eval", year=2020, machines=machines, ground_truth=gt_dir, n_test=n_test)
        return data, gt_dir / "eval_data_list_2020.csv"
    if year in (2021, 2022, 2023, 2024):
        evaluator = root / GT_FOLDER[year]
        layout_year = 2021 if year == 2021 else 2022
        gt_dir = evaluator / "ground_truth_data" if year == 2021 else evaluator
        make_tree(data, "eval", year=layout_year, machines=machines, ground_truth=gt_dir, n_test=n_test)
        return data, evaluator if year in (2023, 2024) else evaluator / "ground_truth_data"
    if year == 2025:
        make_tree(data, "eval", year=2022, machines=machines, sections=("00",), n_test=n_test)
        rows: list[list[str]] = []
        for machine in machines:
            rows.append([machine])
            for i in range(4 * n_test):
                label = ANOMALY if i % 2 == 1 else NORMAL
                domain = TARGET if (i // 2) % 2 == 1 else SOURCE
                full = dcase2022.format_name(ClipName("00", i, label, domain, TEST, _tail(machine)))
                rows.append([evalset.format_name(ClipName("00", i), 2022), full])
        gt = root / "lists" / "eval_data_list_2025.csv"
        _write_csv(gt, rows)
        return data, gt
    raise ValueError(f"no evaluation tree for {year}")


def make_mimii_tree(
    root: Path,
    machines: tuple[str, ...] = ("pump", "valve"),
    ids: tuple[str, ...] = ("00", "02"),
    n_normal: int = 8,
    n_abnormal: int = 2,
    snr: str = "0_dB",
    channels: int = 8,
) -> Path:
    """The raw MIMII tree: ``<snr>_<machine>/<machine>/id_XX/{normal,abnormal}/NNNNNNNN.wav``, 8 channels."""
    count = 0
    for mi, machine in enumerate(machines):
        for section in ids:
            for label, n in ((NORMAL, n_normal), (ANOMALY, n_abnormal)):
                for i in range(n):
                    count += 1
                    write_clip(
                        root / mimii.clip_path(snr, machine, section, label, i),
                        anomaly=label == ANOMALY,
                        seed=count,
                        base_hz=180.0 + 60.0 * mi,
                        channels=channels,
                    )
    return root
