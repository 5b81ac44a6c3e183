"""The official DCASE Task 2 metrics (2020, 2021 and 2022-2025 schemes), result.csv and a jackknife interval.

Typical use::

    from asdkit.metrics import evaluate, write_result_csv, format_table
    from asdkit.reports.submission import read_scores_dir

    ev = evaluate(read_scores_dir("results/"))
    write_result_csv(ev, "results/result.csv")
    print(format_table(ev))
"""

from asdkit.metrics.core import EPS, MAX_FPR, amean, auc, hmean, pauc, precision_recall_f1
from asdkit.metrics.evaluation import Evaluation, MachineResult, RowMetrics, evaluate
from asdkit.metrics.jackknife import JackknifeInterval, jackknife
from asdkit.metrics.result_csv import format_table, result_csv_rows, result_csv_text, write_result_csv
from asdkit.metrics.table import SCHEMES, Scheme, ScoreRecord, ScoreTable, normalize_scheme

__all__ = [
    "EPS",
    "MAX_FPR",
    "SCHEMES",
    "Evaluation",
    "JackknifeInterval",
    "MachineResult",
    "RowMetrics",
    "Scheme",
    "ScoreRecord",
    "ScoreTable",
    "amean",
    "auc",
    "evaluate",
    "format_table",
    "hmean",
    "jackknife",
    "normalize_scheme",
    "pauc",
    "precision_recall_f1",
    "result_csv_rows",
    "result_csv_text",
    "write_result_csv",
]
