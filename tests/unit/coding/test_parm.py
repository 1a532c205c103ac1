"""ParM: the encoder [I_k; 1 ... 1], the subtraction decoder against a reference written from the
rule, exact recovery when the parity model is exact (a linear f and g = f), lost inputs when two
of a group straggle, and the arguments it refuses."""

import itertools

import numpy as np
import pytest
import torch

from nercc.coding import SCHEMES, ParM


def reference_estimates(outputs, available, k):
    """The estimates by the rule, input by input: its own answer, else the parity answer minus
    the other k - 1 answers when they are all there, else zeros (lost)."""
    estimates = np.zeros((k, *outputs.shape[1:]))
    lost = np.zeros(k, dtype=bool)
    for i in range(k):
        others = [j for j in range(k) if j != i]
        if available[i]:
            estimates[i] = outputs[i]
        elif available[k] and all(available[j] for j in others):
            estimates[i] = outputs[k] - sum(outputs[j] for j in others)
        else:
            lost[i] = True
    return estimates, lost


def every_pattern(n):
    return [np.array(p, dtype=bool) for p in itertools.product([False, True], repeat=n) if any(p)]


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_the_encoder_is_the_inputs_and_their_sum(k):
    scheme = ParM(k, k + 1)
    assert scheme.num_workers == k + 1
    np.testing.assert_array_equal(scheme.encoder_matrix(), np.vstack([np.eye(k), np.ones(k)]))
    inputs = np.random.default_rng(k).normal(size=(k, 5))
    coded = scheme.encode(inputs)
    np.testing.assert_allclose(coded[:k], inputs)
    np.testing.assert_allclose(coded[k], inputs.sum(axis=0))
    assert scheme.parity_workers == (k,)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_every_pattern_decodes_by_the_rule(k):
    scheme = ParM(k, k + 1)
    rng = np.random.default_rng(0)
    outputs = rng.normal(size=(k + 1, 7))
    for available in every_pattern(k + 1):
        want, want_lost = reference_estimates(outputs, available, k)
        np.testing.assert_allclose(scheme.decode(outputs, available), want, atol=1e-12)
        np.testing.assert_array_equal(scheme.lost(available), want_lost)
        decoder = scheme.decoder_matrix(available)
        assert not np.any(decoder[:, ~available])  # stragglers' columns are zero


def test_an_exact_parity_model_recovers_the_missing_output_exactly():
    # f linear and g = f: g(x_1 + ... + x_k) = f(x_1) + ... + f(x_k), the subtraction is exact
    k, rng = 3, np.random.default_rng(1)
    weight, inputs = rng.normal(size=(6, 10)), rng.normal(size=(k, 6))
    scheme = ParM(k, k + 1)
    worker_outputs = scheme.encode(inputs) @ weight  # every worker, the parity one too, runs f
    truth = inputs @ weight
    for missing in range(k):
        available = np.ones(k + 1, dtype=bool)
        available[missing] = False
        np.testing.assert_allclose(
            scheme.decode(worker_outputs, available), truth, rtol=1e-12, atol=1e-12
        )
        assert not scheme.lost(available).any()
    # torch tensors too, in their dtype
    decoded = scheme.decode(torch.tensor(worker_outputs), torch.tensor([False, True, True, True]))
    assert decoded.dtype == torch.float64
    torch.testing.assert_close(decoded, torch.tensor(truth))


def test_two_stragglers_of_a_group_lose_their_inputs_and_say_so():
    scheme = ParM(3, 4)
    assert scheme.loses_inputs
    np.testing.assert_array_equal(scheme.lost(np.array([False, False, True, True])), [1, 1, 0])
    # one data worker and the parity worker missing: that input is lost
    np.testing.assert_array_equal(scheme.lost(np.array([True, False, True, False])), [0, 1, 0])
    # only the parity worker missing: nothing lost, nothing to reconstruct
    np.testing.assert_array_equal(scheme.lost(np.array([True, True, True, False])), [0, 0, 0])
    batch = np.array([[False, False, True, True], [True, True, True, True]])
    np.testing.assert_array_equal(scheme.lost(batch), [[1, 1, 0], [0, 0, 0]])
    estimates = scheme.decode(np.ones((4, 2)), np.array([False, False, True, True]))
    np.testing.assert_array_equal(estimates[:2], 0.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_inputs": 0}, "num_inputs"),
        ({"num_inputs": 2, "num_workers": 4}, "num_workers must be num_inputs \\+ 1 = 3"),
        ({"num_inputs": 2, "parity_model": 3}, "parity_model"),
    ],
)
def test_bad_arguments_are_refused_by_name(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ParM(**kwargs)


def test_it_is_registered_and_its_parity_model_is_part_of_its_description():
    assert SCHEMES["ParM"] is ParM
    a, b = ParM(2, 3, parity_model="a.ckpt"), ParM(2, 3, parity_model="b.ckpt")
    assert a.parity_model == "a.ckpt" and "a.ckpt" in repr(a)
    assert a.decoder_key() != b.decoder_key()
