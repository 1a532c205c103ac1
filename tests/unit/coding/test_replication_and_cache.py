"""Replication decodes to the mean of the replicas that answer; the decoder cache stays bounded,
drops the least recently used patterns first, and gives the same decoders after evicting them.

References: the replication estimates are averaged here by hand, worker by worker; the cached
decoders are compared with those of a fresh scheme that never evicted anything.
"""

import numpy as np
import pytest
import torch

from nercc.coding import BACC, NeRCC, Replication, decoder_cache

# -- replication (item 5) -----------------------------------------------------------------------
K, R = 3, 3  # N = 9; worker n computes input n % K, so input k's replicas are k, k + 3, k + 6


def replica_mean(outputs, mask):
    """Reference estimates (K, ...): each input's mean over its answering replicas, 0 if none."""
    estimates = np.zeros((K, *outputs.shape[1:]))
    for k in range(K):
        answering = [n for n in range(K * R) if n % K == k and mask[n]]
        if answering:
            estimates[k] = np.mean([outputs[n] for n in answering], axis=0)
    return estimates


PATTERNS = np.array(
    [
        [1, 1, 1, 1, 1, 1, 1, 1, 1],  # everyone answers: the mean of three differing replicas
        [0, 0, 0, 1, 1, 1, 1, 1, 1],  # every first replica straggles
        [0, 1, 1, 1, 0, 1, 0, 1, 0],  # input 0: only its second replica; input 1: first and third
        [1, 0, 0, 0, 0, 1, 1, 1, 0],  # input 0: first and third; input 1: third; 2: second
        [0, 1, 0, 0, 1, 0, 1, 1, 0],  # input 0: third only; input 1: all three; input 2 lost
    ],
    dtype=bool,
)


def replica_outputs(seed=0):
    """Outputs (N, 2, 3) whose replicas of one input disagree (as when workers compute with
    noise or differ in precision): replica r of input k holds base[k] + r-th offset."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(K, 2, 3))
    offsets = rng.normal(scale=0.5, size=(R, 1, 2, 3)) + np.arange(R).reshape(R, 1, 1, 1)
    return (base[None] + offsets).reshape(K * R, 2, 3)


def test_replication_averages_the_answering_replicas():
    scheme = Replication(K, R)
    outputs = replica_outputs()
    expected = np.stack([replica_mean(outputs, m) for m in PATTERNS])
    # the cases really tell the mean from the first (or any single) replica
    assert not np.allclose(expected[0], outputs[:K])
    assert not np.allclose(expected[3][0], outputs[0])
    assert not np.allclose(expected[3][0], outputs[6])
    for p, mask in enumerate(PATTERNS):
        np.testing.assert_allclose(scheme.decode(outputs, mask), expected[p], rtol=0, atol=1e-12)
    np.testing.assert_allclose(scheme.decode(outputs, PATTERNS), expected, rtol=0, atol=1e-12)
    each = scheme.decode_each(np.stack([outputs] * len(PATTERNS)), PATTERNS)
    np.testing.assert_allclose(each, expected, rtol=0, atol=1e-12)
    as_tensor = scheme.decode(torch.tensor(outputs), torch.tensor(PATTERNS))
    np.testing.assert_allclose(as_tensor.numpy(), expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(
        scheme.lost(PATTERNS), [[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 1]]
    )


def test_replication_decoder_weights_are_one_over_the_answering_count():
    scheme = Replication(K, R)
    for mask in PATTERNS:
        expected = np.zeros((K, K * R))
        for k in range(K):
            answering = [n for n in range(K * R) if n % K == k and mask[n]]
            for n in answering:
                expected[k, n] = 1.0 / len(answering)
        np.testing.assert_allclose(scheme.decoder_matrix(mask), expected, rtol=0, atol=1e-15)


def test_replication_of_a_nonlinear_function_with_noisy_replicas():
    """End to end: encode, a per-worker function with worker-dependent noise, decode."""
    scheme = Replication(4, 2)
    rng = np.random.default_rng(3)
    inputs = rng.normal(size=(4, 5))
    coded = scheme.encode(inputs)
    noise = rng.normal(scale=0.1, size=coded.shape)
    outputs = np.tanh(coded) + noise
    mask = np.array([0, 1, 1, 1, 1, 0, 1, 1], dtype=bool)  # input 0: replica 2; 1: replica 1
    expected = np.stack(
        [
            outputs[4],  # input 0: only worker 4 answers
            outputs[1],  # input 1: only worker 1
            (outputs[2] + outputs[6]) / 2,
            (outputs[3] + outputs[7]) / 2,
        ]
    )
    np.testing.assert_allclose(scheme.decode(outputs, mask), expected, rtol=0, atol=1e-12)


# -- decoder cache (item 8) ---------------------------------------------------------------------
CACHE = 6


@pytest.fixture
def small_cache(monkeypatch):
    monkeypatch.setattr(decoder_cache, "DECODER_CACHE_SIZE", CACHE)
    return CACHE


def distinct_patterns(num_workers, stragglers, count, seed=0):
    rng = np.random.default_rng(seed)
    found = {}
    while len(found) < count:
        mask = np.ones(num_workers, dtype=bool)
        mask[rng.choice(num_workers, stragglers, replace=False)] = False
        found.setdefault(mask.tobytes(), mask)
    return np.stack(list(found.values()))


def counting(scheme):
    """Count the patterns whose decoders the scheme builds."""
    built = []
    original = scheme._build_decoders

    def build(available):
        built.extend(bytes(np.packbits(row)) for row in available)
        return original(available)

    scheme._build_decoders = build
    return built


SCHEMES = {
    "nercc": lambda: NeRCC(4, 10, lam_enc=1e-3, lam_dec=1e-2),
    "bacc": lambda: BACC(4, 10),
    "replication": lambda: Replication(2, 5),
}


def fresh(name, mask):
    """The decoder of a scheme that has built nothing else (no eviction ever happened)."""
    return SCHEMES[name]().decoder_matrix(mask)


@pytest.mark.parametrize("name", list(SCHEMES))
def test_more_patterns_than_the_cache_holds_stay_correct_and_bounded(small_cache, name):
    scheme = SCHEMES[name]()
    built = counting(scheme)
    masks = distinct_patterns(10, 3, 20)
    references = np.stack([fresh(name, m) for m in masks])
    # one batch of 20 distinct patterns (more than the cache holds), with repeats inside it
    order = [*range(20), 0, 5, 19, 0]
    np.testing.assert_allclose(
        scheme.decoder_matrices(masks[order]), references[order], rtol=0, atol=1e-14
    )
    assert len(built) == 20  # each distinct pattern built once, repeats included
    assert len(scheme.decoder_cache) <= small_cache
    # the most recently used patterns are still there: no rebuild; the oldest was dropped
    recent = [19, 0, 5]
    for i in recent:
        np.testing.assert_array_equal(scheme.decoder_matrix(masks[i]), references[i])
    assert len(built) == 20
    np.testing.assert_allclose(scheme.decoder_matrix(masks[1]), references[1], atol=1e-14)
    assert len(built) == 21
    # many rounds of single and batched decodes: always correct, never larger than the bound
    rng = np.random.default_rng(1)
    outputs = rng.normal(size=(10, 3))
    for _ in range(3):
        for i in rng.permutation(20):
            np.testing.assert_allclose(
                scheme.decode(outputs, masks[i]), references[i] @ outputs, rtol=0, atol=1e-12
            )
            assert len(scheme.decoder_cache) <= small_cache
        chosen = rng.choice(20, 9)
        np.testing.assert_allclose(
            scheme.decode(outputs, masks[chosen]),
            references[chosen] @ outputs,
            rtol=0,
            atol=1e-12,
        )
        np.testing.assert_array_equal(
            scheme.lost(masks[chosen]), ~np.any(references[chosen] != 0, axis=2)
        )
        assert len(scheme.decoder_cache) <= small_cache


def test_the_least_recently_used_pattern_goes_first(small_cache):
    scheme = NeRCC(4, 10, lam_dec=1e-3)
    built = counting(scheme)
    masks = distinct_patterns(10, 2, 10, seed=4)
    for i in range(CACHE):  # fill the cache: 0 .. 5
        scheme.decoder_matrix(masks[i])
    kept = scheme.decoder_matrix(masks[0])  # 0 is used again: now the most recent
    assert len(built) == CACHE
    scheme.decoder_matrix(masks[CACHE])  # one more: 1, the least recently used, goes
    assert scheme.decoder_matrix(masks[0]) is kept  # still cached, the same array
    assert len(built) == CACHE + 1
    for i in range(2, CACHE + 1):  # 2 .. 6 are cached too
        scheme.decoder_matrix(masks[i])
    assert len(built) == CACHE + 1
    again = scheme.decoder_matrix(masks[1])  # 1 was evicted: rebuilt, and right
    assert len(built) == CACHE + 2
    np.testing.assert_allclose(
        again, NeRCC(4, 10, lam_dec=1e-3).decoder_matrix(masks[1]), rtol=0, atol=1e-14
    )
    # a batch's own patterns are all returned even when the batch alone overflows the cache
    batch = scheme.decoder_matrices(masks)
    np.testing.assert_allclose(
        batch, np.stack([NeRCC(4, 10, lam_dec=1e-3).decoder_matrix(m) for m in masks]), atol=1e-14
    )
    assert len(scheme.decoder_cache) == CACHE
