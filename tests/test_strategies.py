"""Active-learning scoring functions: known orderings on synthetic probabilities."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from frugalseg.active import (
    STRATEGIES,
    bald_scores,
    coreset_selection,
    entropy_scores,
    evenly_spaced_selection,
    predictive_entropy_scores,
    random_scores,
    rank_by_score,
    select_top_k_diverse,
    sqa_scores,
)


def _onehot(cls: int, num_classes: int, size: tuple[int, int] = (3, 4)) -> np.ndarray:
    probs = np.zeros((num_classes, *size))
    probs[cls] = 1.0
    return probs


def test_entropy_uniform_is_max_and_onehot_is_zero() -> None:
    uniform = np.full((3, 3, 4), 1 / 3)
    peaked = np.broadcast_to(np.array([0.8, 0.1, 0.1])[:, None, None], (3, 3, 4))
    probs = np.stack([_onehot(1, 3), uniform, peaked])
    scores = entropy_scores(probs)
    peaked_entropy = -(0.8 * math.log(0.8) + 2 * 0.1 * math.log(0.1))
    np.testing.assert_allclose(scores, [0.0, math.log(3), peaked_entropy], atol=1e-9)
    assert list(rank_by_score(scores)) == [1, 2, 0]


def test_entropy_reductions_and_tensor_input() -> None:
    probs = np.stack([_onehot(0, 2, (2, 2))])
    probs[0, :, 0, 0] = 0.5  # one uncertain pixel of four
    np.testing.assert_allclose(entropy_scores(probs, reduction="mean"), [math.log(2) / 4])
    np.testing.assert_allclose(entropy_scores(probs, reduction="sum"), [math.log(2)])
    np.testing.assert_allclose(entropy_scores(torch.from_numpy(probs), reduction="max"), [math.log(2)])
    with pytest.raises(ValueError, match="reduction"):
        entropy_scores(probs, reduction="median")  # type: ignore[arg-type]


def test_bald_high_when_samples_disagree_and_zero_when_they_agree() -> None:
    # image 0: samples agree on a uniform prediction (aleatoric only); image 1: confident samples disagree;
    # image 2: samples agree and are confident.
    t0 = np.stack([np.full((2, 3, 4), 0.5), _onehot(0, 2), _onehot(1, 2)])
    t1 = np.stack([np.full((2, 3, 4), 0.5), _onehot(1, 2), _onehot(1, 2)])
    mc = np.stack([t0, t1])  # (T=2, N=3, C=2, 3, 4)
    np.testing.assert_allclose(bald_scores(mc), [0.0, math.log(2), 0.0], atol=1e-9)
    # predictive entropy cannot tell aleatoric from epistemic: both of the first two score log 2
    np.testing.assert_allclose(predictive_entropy_scores(mc), [math.log(2), math.log(2), 0.0], atol=1e-9)
    assert rank_by_score(bald_scores(mc))[0] == 1


def test_probability_checks_and_non_finite_inputs_raise() -> None:
    with pytest.raises(ValueError, match="summing to 1"):
        entropy_scores(np.full((1, 2, 2, 2), 0.7))
    bad = np.full((1, 2, 2, 2), 0.5)
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        entropy_scores(bad)
    with pytest.raises(ValueError, match="non-finite"):
        bald_scores(bad[None])
    with pytest.raises(ValueError, match="MC probabilities"):
        bald_scores(np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match="non-finite"):
        sqa_scores([0.5, float("nan")])
    with pytest.raises(ValueError, match="non-finite"):
        rank_by_score([1.0, float("inf")])


def test_random_scores_are_seeded() -> None:
    np.testing.assert_array_equal(random_scores(10, seed=3), random_scores(10, seed=3))
    assert not np.array_equal(random_scores(10, seed=3), random_scores(10, seed=4))
    assert random_scores(10, seed=0).shape == (10,)
    with pytest.raises(ValueError):
        random_scores(0, seed=0)


def test_evenly_spaced_selection() -> None:
    # floor((j + 1/2) * 10 / 3) for j = 0, 1, 2
    np.testing.assert_array_equal(evenly_spaced_selection(10, 3), [1, 5, 8])
    np.testing.assert_array_equal(evenly_spaced_selection(4, 4), [0, 1, 2, 3])
    picks = evenly_spaced_selection(101, 7)
    assert len(set(picks.tolist())) == 7 and np.all(np.diff(picks) >= 14)
    with pytest.raises(ValueError):
        evenly_spaced_selection(3, 4)


def test_sqa_scores_rank_worst_quality_first() -> None:
    quality = np.array([0.9, 0.2, 0.6])
    np.testing.assert_allclose(sqa_scores(quality), [0.1, 0.8, 0.4])
    np.testing.assert_array_equal(rank_by_score(sqa_scores(torch.tensor(quality))), [1, 2, 0])


def test_rank_by_score_ties_broken_by_seed() -> None:
    scores = np.array([1.0, 2.0, 2.0, 2.0, 0.0])
    orders = {tuple(rank_by_score(scores, seed=s)) for s in range(20)}
    assert len(orders) > 1  # the tie among 1, 2, 3 is resolved differently by different seeds
    for order in orders:
        assert set(order[:3]) == {1, 2, 3} and order[3:] == (0, 4)
    np.testing.assert_array_equal(rank_by_score(scores, seed=7), rank_by_score(scores, seed=7))


def test_coreset_picks_the_far_point() -> None:
    pool = np.array([[0.0, 0.0], [0.1, 0.0], [10.0, 10.0], [0.0, 0.2]])
    labelled = np.array([[0.0, 0.1]])
    assert coreset_selection(pool, labelled, 1, seed=0).tolist() == [2]
    # second pick: farthest from {labelled, pool[2]} -> pool[1] (distance ~0.14) beats the others
    assert coreset_selection(pool, labelled, 2, seed=0).tolist() == [2, 1]


def test_coreset_without_labelled_is_seeded_and_covers() -> None:
    rng = np.random.default_rng(0)
    clusters = np.concatenate([rng.normal(centre, 0.01, (5, 2)) for centre in ([0, 0], [5, 0], [0, 5])])
    for seed in range(5):
        picks = coreset_selection(clusters, None, 3, seed=seed)
        assert sorted(p // 5 for p in picks.tolist()) == [0, 1, 2]  # one per cluster
        np.testing.assert_array_equal(picks, coreset_selection(clusters, np.zeros((0, 2)), 3, seed=seed))
    with pytest.raises(ValueError):
        coreset_selection(clusters, np.zeros((1, 3)), 1)
    with pytest.raises(ValueError):
        coreset_selection(clusters, None, 16)


def test_diverse_selection_never_picks_neighbouring_frames() -> None:
    rng = np.random.default_rng(0)
    for trial in range(20):
        n = 30
        positions = [(f"subject{i % 2}", int(f)) for i, f in enumerate(rng.permutation(n))]
        scores = rng.random(n)
        picks = select_top_k_diverse(scores, 8, positions=positions, min_gap=2, seed=trial)
        assert 1 <= len(picks) <= 8
        chosen = [positions[i] for i in picks]
        for a in range(len(chosen)):
            for b in range(a + 1, len(chosen)):
                same_subject = chosen[a][0] == chosen[b][0]
                assert not (same_subject and abs(chosen[a][1] - chosen[b][1]) < 2)


def test_diverse_selection_skips_duplicates_but_keeps_other_subjects() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    positions = [("a", 10), ("a", 11), ("b", 11), ("a", 13), ("a", 12)]
    # by score: ("a", 10) taken; ("a", 11) neighbours it; ("b", 11) is another pullback, taken;
    # ("a", 13) is 3 frames from 10, taken; ("a", 12) neighbours 13 -> only three admissible items
    assert select_top_k_diverse(scores, 4, positions=positions, min_gap=2).tolist() == [0, 2, 3]
    assert select_top_k_diverse(scores, 2, positions=positions, min_gap=2).tolist() == [0, 2]
    assert select_top_k_diverse(scores, 5, positions=positions, min_gap=1).tolist() == [0, 1, 2, 3, 4]
    # without positions this is plain top-k
    assert select_top_k_diverse(scores, 3).tolist() == [0, 1, 2]


def test_diverse_selection_by_feature_distance() -> None:
    scores = np.array([0.9, 0.8, 0.7])
    features = np.array([[0.0, 0.0], [0.05, 0.0], [1.0, 1.0]])
    assert select_top_k_diverse(scores, 2, features=features, min_distance=0.1).tolist() == [0, 2]
    with pytest.raises(ValueError):
        select_top_k_diverse(scores, 2, positions=[("a", 1)])


def test_strategy_catalogue_names_every_strategy() -> None:
    assert set(STRATEGIES) == {
        "random",
        "evenly_spaced",
        "entropy",
        "bald",
        "predictive_entropy",
        "coreset",
        "sqa",
    }
    assert all(isinstance(text, str) and text for text in STRATEGIES.values())
