"""asdkit.reports: submission files (anomaly_score_*.csv, decision_result_*.csv) and reports."""
