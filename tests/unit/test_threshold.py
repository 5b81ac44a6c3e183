from __future__ import annotations

import logging

import numpy as np
import pytest
import scipy.stats

from asdkit.scoring.threshold import gamma_threshold


def test_gamma_threshold_matches_the_quantile_of_the_true_distribution():
    rng = np.random.default_rng(0)
    scores = scipy.stats.gamma.rvs(4.0, loc=1.0, scale=0.5, size=5000, random_state=rng)
    expected = scipy.stats.gamma.ppf(0.9, 4.0, loc=1.0, scale=0.5)
    assert gamma_threshold(scores) == pytest.approx(expected, rel=0.03)


def test_about_ten_percent_of_training_scores_exceed_the_threshold():
    rng = np.random.default_rng(1)
    scores = scipy.stats.gamma.rvs(3.0, scale=2.0, size=2000, random_state=rng)
    assert 0.07 <= (scores > gamma_threshold(scores)).mean() <= 0.13


def test_degenerate_scores_fall_back_to_the_empirical_quantile(caplog):
    with caplog.at_level(logging.WARNING):
        assert gamma_threshold(np.array([2.0, 2.0, 2.0])) == 2.0
    assert "empirical" in caplog.text


def test_no_finite_scores_is_an_error():
    with pytest.raises(ValueError, match="no finite"):
        gamma_threshold(np.array([np.nan]))


def test_one_extreme_score_cannot_drag_the_threshold_below_most_normal_scores(caplog):
    # a mixture component collapsed onto one training clip gives it a hugely negative NLL
    scores = np.random.default_rng(0).normal(35.0, 3.5, size=30)
    scores[16] = -78.4
    with caplog.at_level(logging.WARNING):
        threshold = gamma_threshold(scores)
    assert np.median(scores) <= threshold <= scores.max()  # the free-location gamma fit says 441 here
    assert "empirical" in caplog.text
