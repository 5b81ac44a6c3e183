"""Embedding scorers against hand-checkable cases; memory banks pick the right domain; normalisation."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import scipy.stats

from asdkit.errors import ModelError
from asdkit.scoring.embedding import DomainBanks, GmmScorer, KnnScorer, MahalanobisScorer, make_scorer
from asdkit.scoring.normalise import fit_normaliser, normalise


def _col(*values: float) -> np.ndarray:
    return np.array(values, dtype=float)[:, None]


def test_knn_on_points_on_a_line():
    bank = _col(0, 1, 2, 10)
    knn1 = KnnScorer(k=1, metric="euclidean")
    knn2 = KnnScorer(k=2, metric="euclidean")
    query = _col(3, 6, -1)
    np.testing.assert_allclose(knn1.score(knn1.fit(bank), query), [1, 4, 1])
    np.testing.assert_allclose(knn2.score(knn2.fit(bank), query), [1.5, 4, 1.5])


def test_knn_k_larger_than_the_bank_uses_every_point():
    knn = KnnScorer(k=5, metric="euclidean")
    np.testing.assert_allclose(knn.score(knn.fit(_col(0, 2)), _col(1)), [1.0])


def test_knn_cosine_is_one_minus_cosine_similarity():
    knn = KnnScorer(k=1, metric="cosine")
    bank = np.array([[1.0, 0.0], [0.0, 1.0]])
    scores = knn.score(knn.fit(bank), np.array([[1.0, 1.0], [5.0, 0.0], [-1.0, 0.0]]))
    np.testing.assert_allclose(scores, [1 - 1 / np.sqrt(2), 0.0, 1.0], atol=1e-12)


def test_mahalanobis_matches_the_closed_form():
    # mean 0, covariance diag(0.5, 2): (1, 0) and (0, 2) are both sqrt(2) away; (1, 2) is 2 away
    E = np.array([[1.0, 0], [-1, 0], [0, 2], [0, -2]])
    scorer = MahalanobisScorer(covariance="empirical", ridge=0.0)
    state = scorer.fit(E)
    np.testing.assert_allclose(state["location"], [0, 0], atol=1e-12)
    np.testing.assert_allclose(
        scorer.score(state, np.array([[1.0, 0], [0, 2], [1, 2]])), [np.sqrt(2)] * 2 + [2]
    )


def test_mahalanobis_with_ledoit_wolf_matches_its_own_covariance():
    from sklearn.covariance import LedoitWolf

    rng = np.random.default_rng(0)
    E = rng.normal(size=(6, 10))  # fewer clips than dimensions: the target bank's case
    query = rng.normal(size=(3, 10))
    scorer = MahalanobisScorer(ridge=0.0)
    cov = LedoitWolf().fit(E).covariance_
    d = query - E.mean(axis=0)
    expected = np.sqrt(np.einsum("ij,jk,ik->i", d, np.linalg.inv(cov), d))
    np.testing.assert_allclose(scorer.score(scorer.fit(E), query), expected, rtol=1e-8)


def test_gmm_with_one_component_is_the_gaussian_log_likelihood():
    rng = np.random.default_rng(1)
    E = rng.normal(size=(200, 3)) @ np.array([[1.0, 0.3, 0], [0, 1, 0.2], [0, 0, 0.5]])
    scorer = GmmScorer(n_components=1, covariance_type="full", reg_covar=0.0)
    query = rng.normal(size=(5, 3))
    expected = -scipy.stats.multivariate_normal(E.mean(axis=0), np.cov(E.T, bias=True)).logpdf(query)
    np.testing.assert_allclose(scorer.score(scorer.fit(E), query), expected, rtol=1e-6)


def test_gmm_caps_components_at_the_number_of_clips():
    scorer = GmmScorer(n_components=8)
    state = scorer.fit(np.random.default_rng(2).normal(size=(3, 4)))
    assert len(state["weights"]) == 3


def _two_domain_banks(scorer: object, domains: str = "min") -> DomainBanks:
    # section 00: source clips near 0 (many), target clips near 100 (few); section 01 near 50
    E = _col(-1, 0, 1, 2, 99, 101, 49, 51)
    sections = ["00"] * 6 + ["01"] * 2
    doms = ["source"] * 4 + ["target"] * 2 + ["source"] * 2
    return DomainBanks(scorer, domains).fit(E, sections, doms)  # type: ignore[arg-type]


@pytest.mark.parametrize("covariance_type", ["diag", "full", "spherical", "tied"])
def test_gmm_bank_of_one_clip_is_a_narrow_gaussian_around_it(covariance_type: str):
    """A lone target clip, or the remainder of a held-out fold, must fit (scikit-learn alone needs two)."""
    one = np.array([[1.0, -2.0, 0.5]])
    scorer = GmmScorer(n_components=2, covariance_type=covariance_type)
    state = scorer.fit(one)
    near, far = scorer.score(state, np.array([[1.0, -2.0, 0.5], [3.0, 0.0, 2.5]]))
    assert len(state["weights"]) == 1 and near < far


def test_gmm_banks_score_their_training_clips_held_out_with_two_clips_per_bank():
    rng = np.random.default_rng(0)
    E = rng.normal(size=(4, 3))
    banks = DomainBanks(GmmScorer(), "min").fit(E, ["00", "00", "01", "01"], ["source"] * 4)
    scores = banks.score_training(E, ["00", "00", "01", "01"], ["source"] * 4)
    assert scores.shape == (4,) and np.all(np.isfinite(scores))


def test_min_over_domains_picks_the_nearest_bank():
    banks = _two_domain_banks(KnnScorer(k=1, metric="euclidean"))
    assert banks.keys == [("00", "source"), ("00", "target"), ("01", "source")]
    per_bank = banks.score_banks(_col(98, 3))
    np.testing.assert_allclose(per_bank[:, :2], [[96, 1], [1, 96]])
    np.testing.assert_allclose(banks.score(_col(98, 3), ["00", "00"]), [1, 1])


def test_a_clip_is_scored_against_its_own_sections_banks():
    banks = _two_domain_banks(KnnScorer(k=1, metric="euclidean"))
    np.testing.assert_allclose(banks.score(_col(50, 50), ["00", "01"]), [48, 1])


def test_selective_mahalanobis_takes_the_smaller_domain_distance():
    scorer = MahalanobisScorer(covariance="empirical", ridge=0.0)
    banks = _two_domain_banks(scorer)
    src = scorer.fit(_col(-1, 0, 1, 2))
    tgt = scorer.fit(_col(99, 101))
    query = _col(100, 0.5, 60)
    expected = np.minimum(scorer.score(src, query), scorer.score(tgt, query))
    np.testing.assert_allclose(banks.score(query, ["00"] * 3), expected)
    assert expected[0] == 0 and expected[1] == 0


def test_shared_covariance_banks_keep_their_means_and_share_the_pooled_spread():
    """Residuals around each bank's own mean give one covariance: closed form with the empirical estimate."""
    scorer = MahalanobisScorer(covariance="empirical", ridge=0.0, shared_covariance=True)
    source, target = _col(-1, 0, 1, 2), _col(99, 101)
    states = scorer.fit_banks([source, target])
    residuals = np.concatenate([source - source.mean(), target - target.mean()])
    variance = float(np.mean(residuals**2))  # (2.25 + 0.25 + 0.25 + 2.25 + 1 + 1) / 6
    assert variance == pytest.approx(7 / 6)
    np.testing.assert_allclose(states[1]["location"], [100.0])
    for state in states:
        np.testing.assert_allclose(state["precision"], [[1 / variance]])
    np.testing.assert_allclose(scorer.score(states[1], _col(103)), [3.0 / np.sqrt(variance)])


def test_shared_covariance_gives_a_bank_of_one_clip_the_units_of_the_others():
    """A one-clip bank on its own has no spread (distances blow up by 1/ridge); sharing gives it one, so
    its held-out scores, which the threshold is fitted on, stay on the scale of the test scores."""
    rng = np.random.default_rng(0)
    big = rng.normal(size=(12, 3))
    pair = rng.normal(size=(2, 3)) + 5.0  # two clips: cross-fitting leaves a bank of one
    E = np.concatenate([big, pair])
    sections, domains = ["00"] * 12 + ["01"] * 2, ["source"] * 14
    own = DomainBanks(MahalanobisScorer(), "min").fit(E, sections, domains)
    shared = DomainBanks(MahalanobisScorer(shared_covariance=True), "min").fit(E, sections, domains)
    query = rng.normal(size=(20, 3)) + 5.0
    test_scale = float(np.median(shared.score(query, ["01"] * 20)))
    held_own = own.score_training(E, sections, domains)[12:]
    held_shared = shared.score_training(E, sections, domains)[12:]
    assert held_own.min() > 100 * test_scale
    assert np.all(held_shared < 10 * test_scale)


def test_shared_covariance_leaves_the_held_out_fold_out_of_the_covariance_too():
    """Cross-fitted scores equal a refit of every bank without the held-out clip."""
    rng = np.random.default_rng(1)
    E = rng.normal(size=(5, 2))
    sections, domains = ["00"] * 5, ["source", "source", "source", "target", "target"]
    scorer = MahalanobisScorer(covariance="empirical", shared_covariance=True)
    held = DomainBanks(scorer, "min").fit(E, sections, domains).score_training(E, sections, domains)
    for i in range(5):
        rest = [j for j in range(5) if j != i]
        refit = DomainBanks(scorer, "min").fit(
            E[rest], [sections[j] for j in rest], [domains[j] for j in rest]
        )
        assert held[i] == pytest.approx(float(refit.score(E[i : i + 1], ["00"])[0]))


def test_pooled_banks_ignore_the_domain():
    banks = _two_domain_banks(KnnScorer(k=2, metric="euclidean"), domains="pooled")
    assert banks.keys == [("00", "all"), ("01", "all")]
    np.testing.assert_allclose(banks.score(_col(100), ["00"]), [1.0])  # 99 and 101


def test_unknown_section_is_scored_against_every_bank_with_a_warning(caplog):
    banks = _two_domain_banks(KnnScorer(k=1, metric="euclidean"))
    with caplog.at_level(logging.WARNING):
        scores = banks.score(_col(50), ["07"])
    np.testing.assert_allclose(scores, [1])
    assert "07" in caplog.text


def test_banks_rebuilt_from_their_arrays_score_the_same():
    banks = _two_domain_banks(GmmScorer(n_components=1))
    rebuilt = DomainBanks.from_arrays(banks.scorer, banks.domains, banks.layout(), banks.to_arrays())
    query = _col(0.5, 100, 50)
    np.testing.assert_array_equal(
        rebuilt.score(query, ["00", "00", "01"]), banks.score(query, ["00", "00", "01"])
    )


def test_min_scaled_puts_sparse_and_dense_banks_on_one_scale(caplog):
    """A dense source bank and a sparse target bank on a line (hand-checkable leave-one-out distances):
    the plain minimum ranks a source-like anomaly below a normal target clip, the scaled one above it."""
    source = _col(0, 0.1, 0.3, 0.6, 1.0)  # left out: 0.1, 0.1, 0.2, 0.3, 0.4
    target = _col(100, 104, 110, 120)  # left out: 4, 4, 6, 10
    s_mean, s_std = 0.22, np.std([0.1, 0.1, 0.2, 0.3, 0.4])
    t_mean, t_std = 6.0, np.std([4, 4, 6, 10])
    E = np.vstack([source, target])
    sections, domains = ["00"] * 9, ["source"] * 5 + ["target"] * 4
    queries = _col(107, 1.3)  # a normal target clip (3 from 104 and 110), an anomaly 0.3 past the source
    knn = KnnScorer(k=1, metric="euclidean")
    plain = DomainBanks(knn, "min").fit(E, sections, domains).score(queries, ["00", "00"])
    np.testing.assert_allclose(plain, [3, 0.3])  # the anomaly scores lower than the normal clip
    scaled = DomainBanks(knn, "min_scaled").fit(E, sections, domains)
    expected = [(3 - t_mean) / t_std, (0.3 - s_mean) / s_std]
    np.testing.assert_allclose(scaled.score(queries, ["00", "00"]), expected)
    assert expected[1] > expected[0]
    rebuilt = DomainBanks.from_arrays(knn, "min_scaled", scaled.layout(), scaled.to_arrays())
    np.testing.assert_array_equal(rebuilt.score(queries, ["00", "00"]), scaled.score(queries, ["00", "00"]))
    own = scaled.score_training(E, sections, domains)
    np.testing.assert_allclose(own[5:], (np.array([4, 4, 6, 10]) - t_mean) / t_std)
    with caplog.at_level(logging.WARNING):
        DomainBanks(knn, "min_scaled").fit(
            np.vstack([source, _col(50)]), ["00"] * 6, ["source"] * 5 + ["target"]
        )
    assert "00/target: too few distinct member scores" in caplog.text
    with pytest.raises(ModelError, match=r"domains=min_scaled needs the knn scorer .*, not mahalanobis"):
        DomainBanks(MahalanobisScorer(), "min_scaled")


def test_bad_scorer_options_and_inputs_are_clear_errors():
    with pytest.raises(ModelError, match="metric"):
        KnnScorer(metric="manhattan")
    with pytest.raises(ModelError, match="k must be"):
        KnnScorer(k=0)
    with pytest.raises(ModelError, match="unknown embedding scorer 'svm'"):
        make_scorer("svm")
    with pytest.raises(ModelError, match="NaN"):
        KnnScorer().fit(np.array([[np.nan, 1.0]]))
    with pytest.raises(ModelError, match="domains"):
        DomainBanks(KnnScorer(), domains="max")


def test_make_scorer_takes_only_its_own_options():
    scorer = make_scorer("mahalanobis", covariance="empirical", k=3, metric="cosine")
    assert scorer == MahalanobisScorer(covariance="empirical")


def test_zscore_normalisation_uses_the_training_statistics():
    stats = fit_normaliser("zscore", np.array([1.0, 3.0]))
    np.testing.assert_allclose(normalise("zscore", stats, np.array([2.0, 5.0])), [0.0, 3.0])


def test_rank_normalisation_is_the_ecdf_and_keeps_order_beyond_the_range():
    stats = fit_normaliser("rank", np.array([0.0, 1.0, 2.0, 3.0]))
    ranks = normalise("rank", stats, np.array([1.0, 1.5, 3.0, 6.0, 9.0, -3.0]))
    np.testing.assert_allclose(ranks[:3], [0.375, 0.5, 0.875])
    np.testing.assert_allclose(ranks[3:], [1.875, 2.875, -0.875])
    with pytest.raises(ModelError, match="normalise must be"):
        fit_normaliser("minmax", np.array([1.0]))
