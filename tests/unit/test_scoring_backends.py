"""The bank back ends with known answers: local-density k-NN, k-means centres, SMOTE target banks, and the
source/target minimum combined with them."""

from __future__ import annotations

import numpy as np
import pytest

from asdkit.errors import ModelError
from asdkit.scoring.embedding import DomainBanks, KMeansScorer, KnnScorer, make_scorer, smote


def _col(*values: float) -> np.ndarray:
    return np.array(values, dtype=float)[:, None]


def test_local_density_divides_by_the_neighbours_own_distances():
    # a tight group (spacing 1) and a loose one (spacing 10): own 1-NN distances 1,1,1 and 10,10,10
    bank = _col(0, 1, 2, 100, 110, 120)
    knn = KnnScorer(k=1, metric="euclidean", local_density=True)
    state = knn.fit(bank)
    np.testing.assert_allclose(state["own"], [1, 1, 1, 10, 10, 10])
    # 5 away from the tight group is 5 own distances; 5 away from the loose group is half of one
    np.testing.assert_allclose(knn.score(state, _col(-5, 125)), [5.0, 0.5])
    plain = KnnScorer(k=1, metric="euclidean")
    np.testing.assert_allclose(plain.score(plain.fit(bank), _col(-5, 125)), [5.0, 5.0])


def test_local_density_leave_one_out_scores_of_members():
    knn = KnnScorer(k=1, metric="euclidean", local_density=True)
    state = knn.fit(_col(0, 1, 3))
    # own distances 1, 1, 2; member 3's nearest other is 1 (distance 2, own 1): ratio 2
    np.testing.assert_allclose(knn.score_own(state), [1.0, 1.0, 2.0])


def test_local_density_puts_a_sparse_target_bank_in_the_source_banks_units():
    # source bank dense (spacing 1), target bank sparse (spacing 20): a normal target clip 10 from its bank
    # and an anomaly 4 from the source bank. Raw minimum ranks the anomaly lower; the ratio does not.
    E = np.concatenate([_col(*range(10)), _col(1000, 1020, 1040)])
    sections, domains = ["00"] * 13, ["source"] * 10 + ["target"] * 3
    query = _col(1030, -4)  # normal target clip, anomaly
    raw = DomainBanks(KnnScorer(k=1, metric="euclidean")).fit(E, sections, domains)
    dense = DomainBanks(KnnScorer(k=1, metric="euclidean", local_density=True)).fit(E, sections, domains)
    assert raw.score(query, ["00", "00"])[0] > raw.score(query, ["00", "00"])[1]
    np.testing.assert_allclose(dense.score(query, ["00", "00"]), [0.5, 4.0])


def test_a_lone_target_clip_borrows_the_other_banks_own_distance():
    E = np.concatenate([_col(0, 2, 4, 6), _col(50)])
    banks = DomainBanks(KnnScorer(k=1, metric="euclidean", local_density=True))
    banks.fit(E, ["00"] * 5, ["source"] * 4 + ["target"])
    target = banks.keys.index(("00", "target"))
    np.testing.assert_allclose(banks.states[target]["own"], [2.0])  # the source members' median
    np.testing.assert_allclose(banks.score(_col(56), ["00"]), [3.0])  # 6 from the target clip, / 2


def test_kmeans_centres_of_two_clusters():
    rng = np.random.default_rng(0)
    E = np.concatenate([rng.normal(0, 0.01, (20, 2)), rng.normal(0, 0.01, (20, 2)) + np.array([10, 0])])
    scorer = KMeansScorer(n_centres=2, metric="euclidean")
    state = scorer.fit(E)
    assert sorted(np.round(state["centres"][:, 0]).tolist()) == [0.0, 10.0]
    np.testing.assert_allclose(scorer.score(state, np.array([[5.0, 0.0], [10.0, 3.0]])), [5, 3], atol=0.05)


def test_kmeans_with_fewer_distinct_clips_than_centres_keeps_every_clip():
    scorer = KMeansScorer(n_centres=16, metric="euclidean")
    state = scorer.fit(_col(0, 0, 4))
    np.testing.assert_allclose(np.sort(state["centres"][:, 0]), [0, 4])
    np.testing.assert_allclose(scorer.score(state, _col(1, 3)), [1, 1])


def test_kmeans_cosine_is_one_minus_the_best_cosine():
    scorer = KMeansScorer(n_centres=2, metric="cosine")
    state = scorer.fit(np.array([[2.0, 0.0], [0.0, 3.0]]))
    np.testing.assert_allclose(scorer.score(state, np.array([[1.0, 1.0], [0.0, -1.0]])), [1 - 2**-0.5, 1.0])


def test_kmeans_bad_options_are_refused():
    with pytest.raises(ModelError, match="n_centres"):
        KMeansScorer(n_centres=0)
    with pytest.raises(ModelError, match="metric"):
        make_scorer("kmeans", metric="manhattan")


def test_smote_rows_lie_on_segments_between_neighbouring_members():
    E = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    out = smote(E, 10, np.random.default_rng(0), k=2)
    assert out.shape == (10, 2)
    np.testing.assert_array_equal(out[:3], E)
    new = out[3:]
    # every new row lies in the triangle of the members (on one of its edges)
    assert np.all(new >= -1e-12) and np.all(new.sum(axis=1) <= 1 + 1e-12)
    on_edge = np.isclose(new[:, 0], 0) | np.isclose(new[:, 1], 0) | np.isclose(new.sum(axis=1), 1)
    assert on_edge.all()


def test_smote_leaves_a_lone_clip_and_a_large_bank_alone():
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(smote(_col(3), 10, rng), _col(3))
    np.testing.assert_array_equal(smote(_col(0, 1, 2), 2, rng), _col(0, 1, 2))


def test_oversampled_target_bank_scores_between_its_members():
    # three target clips at 0, 10, 20 (1-D): a clip at 5 is 5 from the plain bank, but near an interpolation
    E = np.concatenate([_col(*np.linspace(100, 200, 30)), _col(0, 10, 20)])
    sections, domains = ["00"] * 33, ["source"] * 30 + ["target"] * 3
    plain = DomainBanks(KnnScorer(k=1, metric="euclidean")).fit(E, sections, domains)
    over = DomainBanks(KnnScorer(k=1, metric="euclidean"), oversample=16).fit(E, sections, domains)
    target = over.keys.index(("00", "target"))
    assert len(over.states[target]["bank"]) == 16
    assert len(over.states[1 - target]["bank"]) == 30  # the source bank is large enough already
    assert plain.score(_col(5), ["00"])[0] == pytest.approx(5.0)
    assert over.score(_col(5), ["00"])[0] < 1.0


def test_oversampled_bank_members_are_scored_without_their_own_interpolations():
    E = _col(0, 10, 20)
    banks = DomainBanks(KnnScorer(k=1, metric="euclidean"), oversample=50).fit(E, ["00"] * 3, ["s"] * 3)
    held = banks.score_training(E, ["00"] * 3, ["s"] * 3)
    # left out, member 0's nearest rows lie on the segment 10..20, so it is at least 10 away
    assert held[0] >= 10 - 1e-9 and held[2] >= 10 - 1e-9
    assert held[1] > 0  # a middle member sits between interpolations of the others, but not on them


def test_oversample_applies_to_every_scorer_kind():
    rng = np.random.default_rng(1)
    E = np.concatenate([rng.normal(size=(40, 3)), rng.normal(size=(3, 3)) + 5])
    sections, domains = ["00"] * 43, ["source"] * 40 + ["target"] * 3
    for kind in ("knn", "kmeans", "mahalanobis", "gmm"):
        banks = DomainBanks(make_scorer(kind), oversample=16).fit(E, sections, domains)
        scores = banks.score_training(E, sections, domains)
        assert scores.shape == (43,) and np.all(np.isfinite(scores)), kind


def test_negative_oversample_is_refused():
    with pytest.raises(ModelError, match="oversample"):
        DomainBanks(KnnScorer(), oversample=-1)


def test_frame_coreset_local_density_ratio():
    from asdkit.detectors.banks.patch_bank import CoresetScorer

    # frames of two clips: a tight pair (0, 1) and a loose pair (100, 110); owners alternate
    bank, owners = _col(0, 1, 100, 110), np.array([0, 1, 0, 1])
    scorer = CoresetScorer(bank_size=8, local_density=True)
    state = scorer.fit(bank, owners)
    order = np.argsort(state["bank"][:, 0])
    np.testing.assert_allclose(state["own"][order], [1, 1, 10, 10])
    np.testing.assert_allclose(scorer.score(state, _col(-3, 113)), [3.0, 0.3])
    # left out, clip 0's frame at 0 only sees clip 1's frame at 1 (own 1)
    np.testing.assert_allclose(scorer.score_excluding(state, _col(0), owner=0), [1.0])
