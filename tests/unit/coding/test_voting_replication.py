"""VotingReplication: the majority vote over each input's copies.

Reference: a per-input loop written from the class's definition (pairs agree within the relative
tolerance; the copy with the most agreeing copies, the first on a tie, wins with more than half of
the answering copies; the estimate is the mean of the copies agreeing with it, else of all).
Tolerance: estimates equal to 1e-12 (means of the same copies in another order).
"""

import numpy as np
import pytest
import torch

from nercc.coding import SCHEMES, Replication, VotingReplication

K, R = 4, 5
N = K * R


def honest(groups, seed):
    """(groups, N, 3) answers: every copy of input k equal to f(x_k)."""
    values = np.random.default_rng(seed).normal(size=(groups, 1, K, 3))
    return np.broadcast_to(values, (groups, R, K, 3)).reshape(groups, N, 3).copy()


def reference_vote(outputs, available, tolerance=1e-4):
    """The flagged copies and estimates, one input at a time."""
    groups = outputs.shape[0]
    flagged = np.zeros(available.shape, dtype=bool)
    estimates = np.zeros((groups, K, outputs.shape[2]))

    def agree(a, b):
        gap = np.linalg.norm(a - b)
        return bool(
            np.isfinite(gap) and gap <= tolerance * max(np.linalg.norm(a), np.linalg.norm(b))
        )

    for g in range(groups):
        for k in range(K):
            workers = [k + K * r for r in range(R) if available[g, k + K * r]]
            if not workers:
                continue

            support = [sum(agree(outputs[g, i], outputs[g, j]) for j in workers) for i in workers]
            best = workers[int(np.argmax(support))]
            kept = workers
            if 2 * max(support) > len(workers):
                kept = [j for j in workers if agree(outputs[g, best], outputs[g, j])]
            flagged[g, [w for w in workers if w not in kept]] = True
            estimates[g, k] = outputs[g, kept].mean(axis=0)
    return estimates, flagged


def test_a_minority_of_lying_copies_is_outvoted():
    outputs = honest(3, seed=0)
    available = np.ones((3, N), dtype=bool)
    available[0, [0, K]] = False  # input 0 of group 0: three copies left
    liars = [(0, 2 * K), (1, 1), (1, 1 + K), (2, 3), (2, 2)]
    for g, w in liars:
        outputs[g, w] = -50.0 * outputs[g, w]
    estimates, params, flagged = VotingReplication(K, R).decode_each_flagged(outputs, available)
    expected = np.zeros_like(flagged)
    for g, w in liars:
        expected[g, w] = True
    np.testing.assert_array_equal(flagged, expected)
    np.testing.assert_allclose(estimates, honest(3, seed=0)[:, :K], rtol=0, atol=1e-12)
    assert params == {}


def test_without_a_majority_nothing_is_flagged_and_every_copy_averaged():
    """Two honest copies against two identical lies (and one straggler): a tie decides nothing."""
    outputs = honest(1, seed=1)
    available = np.ones((1, N), dtype=bool)
    available[0, 4 * K] = False
    outputs[0, [2 * K, 3 * K]] = 7.0
    estimates, _, flagged = VotingReplication(K, R).decode_each_flagged(outputs, available)
    assert not flagged.any()
    np.testing.assert_allclose(
        estimates, Replication(K, R).decode_each(outputs, available), rtol=0, atol=1e-12
    )


def test_copies_within_the_tolerance_agree():
    outputs = honest(1, seed=2)
    outputs[0, K] *= 1 + 5e-5  # within 1e-4 of its copies: agrees
    outputs[0, 2 * K] *= 1 + 5e-3  # outside: outvoted
    _, _, flagged = VotingReplication(K, R).decode_each_flagged(outputs, np.ones((1, N), bool))
    assert flagged[0].tolist() == [n == 2 * K for n in range(N)]
    _, _, loose = VotingReplication(K, R, tolerance=1e-2).decode_each_flagged(
        outputs, np.ones((1, N), bool)
    )
    assert not loose.any()


def test_equal_copies_agree_at_tolerance_zero_even_when_zero():
    """The bound is inclusive: equal copies agree at tolerance 0, all-zero ones too (0 <= 0)."""
    outputs = honest(1, seed=6)
    outputs[0, [0, K, 2 * K, 3 * K]] = 0.0
    outputs[0, 4 * K] = 1.0
    estimates, _, flagged = VotingReplication(K, R, tolerance=0).decode_each_flagged(
        outputs, np.ones((1, N), bool)
    )
    assert np.flatnonzero(flagged[0]).tolist() == [4 * K]
    np.testing.assert_array_equal(estimates[0, 0], 0.0)


def test_a_non_finite_copy_agrees_with_none():
    outputs = honest(1, seed=3)
    outputs[0, 1, 0] = np.nan
    outputs[0, 1 + K, 0] = np.inf
    _, _, flagged = VotingReplication(K, R).decode_each_flagged(outputs, np.ones((1, N), bool))
    assert np.flatnonzero(flagged[0]).tolist() == [1, 1 + K]


def test_random_answers_match_the_reference_loop():
    """Copies drawn from few values (so that ties, majorities and their absence all occur),
    random stragglers: flags and estimates as the per-input loop gives them."""
    rng = np.random.default_rng(4)
    groups = 200
    choices = rng.normal(size=(3, 2))
    outputs = choices[rng.integers(0, 3, size=(groups, N))]
    available = rng.random((groups, N)) > 0.3
    available[:, 0] = True
    estimates, _, flagged = VotingReplication(K, R).decode_each_flagged(outputs, available)
    ref_estimates, ref_flagged = reference_vote(outputs, available)
    np.testing.assert_array_equal(flagged, ref_flagged)
    lost = Replication(K, R).lost(available)
    np.testing.assert_allclose(estimates[~lost], ref_estimates[~lost], rtol=0, atol=1e-12)
    assert flagged.any() and (~flagged & available).any()


def test_decode_votes_like_decode_each_and_keeps_torch():
    outputs = honest(1, seed=5)
    outputs[0, 3] = 100.0
    scheme = VotingReplication(K, R)
    mask = np.ones(N, dtype=bool)
    one = scheme.decode(outputs[0], mask)
    np.testing.assert_array_equal(one, scheme.decode_each(outputs, mask[None])[0])
    np.testing.assert_allclose(one, honest(1, seed=5)[0, :K], rtol=0, atol=1e-12)
    tensor = scheme.decode(torch.tensor(outputs[0], dtype=torch.float32), mask)
    assert tensor.dtype == torch.float32
    np.testing.assert_allclose(tensor.numpy(), one, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("bad", [-1e-3, float("nan"), float("inf"), "0.1", True, None])
def test_a_bad_tolerance_is_refused(bad):
    with pytest.raises(ValueError, match="tolerance must be a finite number >= 0"):
        VotingReplication(K, R, tolerance=bad)


def test_declarations():
    assert SCHEMES["VotingReplication"] is VotingReplication
    assert VotingReplication.screens and VotingReplication.loses_inputs
    assert not Replication.screens
    assert VotingReplication(K, R).decoder_key() != Replication(K, R).decoder_key()
