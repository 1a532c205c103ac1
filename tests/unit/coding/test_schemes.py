"""Schemes: their matrices against the building blocks and scipy, end-to-end recovery, parity
between numpy and torch, batching and caching."""

import contextlib

import numpy as np
import pytest
import torch
from scipy.interpolate import make_smoothing_spline

from nercc.coding import (
    BACC,
    FewAnswersWarning,
    FloaterHormann,
    NeRCC,
    Replication,
    Uncoded,
    berrut_matrix,
    smoothing_spline_matrix,
)
from tests.unit.coding.patterns import random_patterns


def make_schemes():
    return {
        "nercc": NeRCC(8, 20, lam_enc=1e-4, lam_dec=1e-3),
        "nercc_interp": NeRCC(8, 20),
        "nercc_uniform": NeRCC(8, 20, lam_enc=1e-3, lam_dec=1e-2, points="uniform"),
        "bacc": BACC(8, 20),
        "fh": FloaterHormann(8, 20, d=2),
        "uncoded": Uncoded(8),
        "replication": Replication(8, 3),
    }


def test_nercc_matrices_are_the_two_regressions():
    scheme = NeRCC(6, 15, lam_enc=1e-3, lam_dec=1e-2)
    np.testing.assert_allclose(
        scheme.encoder_matrix(), smoothing_spline_matrix(scheme.alphas, scheme.betas, 1e-3)
    )
    mask = random_patterns(15, 4, 1, seed=3)[0]
    decoder = scheme.decoder_matrix(mask)
    assert decoder.shape == (6, 15)
    np.testing.assert_array_equal(decoder[:, ~mask], 0.0)
    np.testing.assert_allclose(
        decoder[:, mask], smoothing_spline_matrix(scheme.betas[mask], scheme.alphas, 1e-2)
    )


def test_nercc_decoder_matches_scipy_on_worker_outputs():
    """With the first and last workers available, every alpha is inside the knot range."""
    scheme = NeRCC(10, 40, lam_dec=1e-3)
    mask = random_patterns(40, 12, 1, seed=5)[0]
    mask[[0, -1]] = True
    outputs = np.random.default_rng(0).normal(size=40)
    reference = make_smoothing_spline(scheme.betas[mask], outputs[mask], lam=1e-3 * mask.sum())
    np.testing.assert_allclose(
        scheme.decode(outputs, mask), reference(scheme.alphas), rtol=0, atol=1e-9
    )


def test_bacc_decoder_reindexes_available_workers():
    scheme = BACC(5, 12)
    mask = np.ones(12, dtype=bool)
    mask[[1, 4, 5]] = False
    decoder = scheme.decoder_matrix(mask)
    np.testing.assert_allclose(decoder[:, mask], berrut_matrix(scheme.betas[mask], scheme.alphas))
    # With the signs of the original worker indices the decoder would differ:
    wrong_signs = np.where(np.flatnonzero(mask) % 2 == 0, 1.0, -1.0)
    terms = wrong_signs / (scheme.alphas[:, None] - scheme.betas[mask][None, :])
    wrong = terms / terms.sum(axis=1, keepdims=True)
    assert np.max(np.abs(wrong - decoder[:, mask])) > 1e-2
    np.testing.assert_allclose(scheme.encoder_matrix(), berrut_matrix(scheme.alphas, scheme.betas))


@pytest.mark.parametrize("name", list(make_schemes()))
def test_matrix_shapes_and_row_sums(name):
    scheme = make_schemes()[name]
    k, n = scheme.num_inputs, scheme.num_workers
    encoder = scheme.encoder_matrix()
    assert encoder.shape == (n, k)
    np.testing.assert_allclose(encoder.sum(axis=1), 1.0, atol=1e-12)
    masks = random_patterns(n, n // 3, 5, seed=1)
    decoders = scheme.decoder_matrices(masks)
    assert decoders.shape == (5, k, n) and decoders.dtype == np.float64
    np.testing.assert_array_equal(decoders * ~masks[:, None, :], 0.0)
    sums = decoders.sum(axis=2)
    np.testing.assert_allclose(sums[~scheme.lost(masks)], 1.0, atol=1e-12)
    np.testing.assert_array_equal(sums[scheme.lost(masks)], 0.0)


@pytest.mark.parametrize("name", ["nercc", "nercc_interp", "nercc_uniform"])
@pytest.mark.parametrize("stragglers", [0, 5, 12, 18])
def test_nercc_recovers_affine_functions_exactly(name, stragglers):
    """Inputs on a line in alpha and an affine f: both splines reproduce lines, so the decoded
    outputs equal f(x) for every lam and every pattern with two or more workers."""
    scheme = make_schemes()[name]
    rng = np.random.default_rng(stragglers)
    inputs = rng.normal(size=(1, 6)) + np.outer(scheme.alphas, rng.normal(size=6))
    weight, bias = rng.normal(size=(6, 3)), rng.normal(size=3)
    f = lambda x: x @ weight + bias  # noqa: E731
    masks = random_patterns(scheme.num_workers, stragglers, 16, seed=stragglers)
    few = scheme.num_workers - stragglers < scheme.num_inputs  # 2 answers for 8 inputs: warned
    with pytest.warns(FewAnswersWarning) if few else contextlib.nullcontext():
        estimates = scheme.decode(f(scheme.encode(inputs)), masks)
    np.testing.assert_allclose(estimates, np.broadcast_to(f(inputs), estimates.shape), atol=1e-10)


def test_bacc_recovers_affine_functions_with_even_counts():
    """Berrut reproduces lines when it has an even number of nodes (see test_berrut)."""
    scheme = BACC(8, 20)
    rng = np.random.default_rng(0)
    inputs = np.outer(1.0 + 2.0 * scheme.alphas, rng.normal(size=4))
    weight = rng.normal(size=(4, 2))
    even = random_patterns(20, 6, 8, seed=2)
    estimates = scheme.decode(scheme.encode(inputs) @ weight + 1.0, even)
    np.testing.assert_allclose(
        estimates, np.broadcast_to(inputs @ weight + 1.0, estimates.shape), atol=1e-10
    )
    odd = random_patterns(20, 5, 1, seed=2)[0]
    assert (
        np.max(np.abs(scheme.decode(scheme.encode(inputs) @ weight, odd) - inputs @ weight)) > 1e-4
    )


@pytest.mark.parametrize("name", list(make_schemes()))
def test_decoding_commutes_with_affine_functions(name):
    """Rows of E and D_F sum to 1, so for affine f: decode(f(encode x)) = f(decode(encode x))."""
    scheme = make_schemes()[name]
    rng = np.random.default_rng(1)
    inputs = rng.normal(size=(scheme.num_inputs, 5))
    weight, bias = rng.normal(size=(5, 3)), rng.normal(size=3)
    masks = random_patterns(scheme.num_workers, scheme.num_workers // 4, 6, seed=4)
    coded = scheme.encode(inputs)
    lost = scheme.lost(masks)
    left = scheme.decode(coded @ weight + bias, masks)
    right = scheme.decode(coded, masks) @ weight + bias
    np.testing.assert_allclose(left[~lost], right[~lost], atol=1e-10)


@pytest.mark.parametrize("name", ["uncoded", "replication"])
def test_baselines_recover_any_function_of_answered_inputs(name):
    scheme = make_schemes()[name]
    rng = np.random.default_rng(2)
    inputs = rng.normal(size=(scheme.num_inputs, 3, 2))
    f = np.sin
    masks = random_patterns(scheme.num_workers, scheme.num_workers // 2, 10, seed=6)
    estimates = scheme.decode(f(scheme.encode(inputs)), masks)
    lost = scheme.lost(masks)
    np.testing.assert_allclose(estimates[~lost], np.broadcast_to(f(inputs), estimates.shape)[~lost])
    np.testing.assert_array_equal(estimates[lost], 0.0)


def test_lost_inputs_of_baselines():
    uncoded = Uncoded(4)
    np.testing.assert_array_equal(uncoded.lost(np.array([True, False, True, False])), [0, 1, 0, 1])
    replication = Replication(3, 2)  # worker n computes input n % 3
    mask = np.array([False, True, False, True, True, False])  # input 2: workers 2, 5 both out
    np.testing.assert_array_equal(replication.lost(mask), [False, False, True])
    assert not NeRCC(4, 10).lost(np.eye(10, dtype=bool)[3]).any()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", ["nercc", "bacc", "fh", "replication"])
def test_numpy_and_torch_agree(name, dtype):
    scheme = make_schemes()[name]
    rng = np.random.default_rng(3)
    inputs = rng.normal(size=(scheme.num_inputs, 4, 3))
    masks = random_patterns(scheme.num_workers, 3, 5, seed=8)
    tensor = torch.as_tensor(inputs, dtype=dtype)
    coded = scheme.encode(tensor)
    assert isinstance(coded, torch.Tensor) and coded.dtype == dtype
    decoded = scheme.decode(coded, torch.as_tensor(masks))
    assert decoded.dtype == dtype and decoded.shape == (5, scheme.num_inputs, 4, 3)
    reference = scheme.decode(scheme.encode(inputs), masks)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    np.testing.assert_allclose(decoded.numpy(), reference, rtol=tol, atol=tol)


def test_numpy_dtype_is_kept():
    scheme = NeRCC(4, 9)
    assert scheme.encode(np.ones((4, 2), dtype=np.float32)).dtype == np.float32
    assert scheme.encode(np.ones((4, 2), dtype=np.int64)).dtype == np.float64


def test_batched_decode_equals_loop():
    scheme = NeRCC(8, 30, lam_enc=1e-4, lam_dec=1e-3)
    rng = np.random.default_rng(4)
    outputs = rng.normal(size=(30, 7, 2))
    masks = np.concatenate(
        [random_patterns(30, s, 3, seed=s) for s in (0, 4, 11, 20)]
    )  # mixed sizes, built in one call
    batched = scheme.decode(outputs, masks)
    looped = np.stack([NeRCC(8, 30, 1e-4, 1e-3).decode(outputs, m) for m in masks])
    np.testing.assert_allclose(batched, looped, rtol=0, atol=1e-13)


def test_matrices_are_built_once_and_cached():
    scheme = NeRCC(5, 12, lam_dec=1e-3)
    assert scheme.encoder_matrix() is scheme.encoder_matrix()
    mask = random_patterns(12, 3, 1)[0]
    first = scheme.decoder_matrix(mask)
    assert scheme.decoder_matrix(mask.copy()) is first
    with pytest.raises(ValueError):
        first[0, 0] = 1.0  # read-only: the cache cannot be corrupted by a caller


def test_repr_names_the_parameters():
    assert repr(NeRCC(3, 5, 0.1, 0.2)) == (
        "NeRCC(num_inputs=3, num_workers=5, points='chebyshev', lam_enc=0.1, lam_dec=0.2)"
    )


@pytest.mark.parametrize("name", ["nercc", "nercc_interp", "bacc", "fh", "replication", "uncoded"])
@pytest.mark.parametrize("as_tensor", [False, True])
def test_decode_each_pairs_patterns_with_their_outputs(name, as_tensor):
    scheme = make_schemes()[name]
    rng = np.random.default_rng(5)
    n = scheme.num_workers
    outputs = rng.normal(size=(12, n, 3, 2))
    masks = np.concatenate([random_patterns(n, s, 4, seed=s) for s in (0, 2, n // 2)])
    expected = np.stack([scheme.decode(outputs[p], masks[p]) for p in range(12)])
    given = torch.as_tensor(outputs, dtype=torch.float32) if as_tensor else outputs
    result = scheme.decode_each(given, masks)
    if as_tensor:
        assert isinstance(result, torch.Tensor) and result.dtype == torch.float32
        result = result.double().numpy()
    assert result.shape == (12, scheme.num_inputs, 3, 2)
    np.testing.assert_allclose(
        result, expected, rtol=1e-5 if as_tensor else 1e-10, atol=1e-5 if as_tensor else 1e-10
    )


def test_decode_each_checks_shapes():
    scheme = NeRCC(4, 10)
    with pytest.raises(
        ValueError,
        match=r"shape \(P, 10, ...\) matching available \(3, 10\), got shape \(2, 10\)",
    ):
        scheme.decode_each(np.ones((2, 10)), np.ones((3, 10), dtype=bool))


@pytest.mark.parametrize("scheme", [NeRCC(4, 10, 1e-3, 1e-2), BACC(4, 10), Replication(4, 3)])
@pytest.mark.parametrize("as_tensor", [False, True])
def test_straggler_rows_never_enter_an_estimate(scheme, as_tensor):
    rng = np.random.default_rng(0)
    n = scheme.num_workers
    outputs = rng.normal(size=(n, 3))
    patterns = np.ones((3, n), dtype=bool)
    patterns[0, [2, 5]] = False
    patterns[1, 2] = False
    patterns[2, 7] = False
    poisoned = outputs.copy()
    poisoned[2] = np.nan  # a straggler in patterns 0 and 1, answering in pattern 2
    poisoned[5, 0] = np.nan  # a straggler in pattern 0 only
    wrap = torch.tensor if as_tensor else np.asarray
    same = dict(rtol=1e-12, atol=1e-12)  # the masked path may round differently
    clean = np.asarray(scheme.decode(wrap(outputs), patterns[0]))
    np.testing.assert_allclose(
        np.asarray(scheme.decode(wrap(poisoned), patterns[0])), clean, **same
    )
    batched = np.asarray(scheme.decode(wrap(poisoned), patterns))
    np.testing.assert_allclose(batched[0], clean, **same)
    assert np.isnan(batched[1]).any() and np.isnan(batched[2]).any()  # answering NaNs count
    # decode_each: every group's straggler rows hold NaN or inf
    groups = np.stack([outputs] * 3)
    poisoned_groups = np.where(patterns[..., None], groups, np.nan)
    poisoned_groups[0, 5] = np.inf
    np.testing.assert_allclose(
        np.asarray(scheme.decode_each(wrap(poisoned_groups), patterns)),
        np.asarray(scheme.decode_each(wrap(groups), patterns)),
        **same,
    )


def test_encode_takes_integer_tensors_and_plain_lists():
    scheme = NeRCC(4, 10, 1e-3, 0.0)
    values = [[1, 2], [3, 4], [5, 6], [7, 8]]
    expected = scheme.encode(np.asarray(values, dtype=np.float64))
    from_tensor = scheme.encode(torch.tensor(values))
    assert from_tensor.dtype == torch.float64
    np.testing.assert_allclose(from_tensor.numpy(), expected, rtol=1e-15, atol=1e-15)
    np.testing.assert_array_equal(scheme.encode(values), expected)
    with pytest.raises(ValueError, match="inputs must be an array of numbers, got 'abc'"):
        scheme.encode("abc")


@pytest.mark.parametrize("scheme", [NeRCC(6, 20, lam_enc=1e-5, lam_dec=1e-6), BACC(6, 20)])
def test_decoders_built_in_chunks_equal_those_built_alone(scheme, monkeypatch):
    """Many patterns of mixed sizes are fitted in chunks (point_scheme.BUILD_CHUNK): each decoder
    equals the one built for its pattern alone, in the patterns' order."""
    from nercc.coding import point_scheme

    monkeypatch.setattr(point_scheme, "BUILD_CHUNK", 7)
    rng = np.random.default_rng(3)
    masks = np.ones((40, 20), dtype=bool)
    for row in masks:
        row[rng.choice(20, int(rng.choice([0, 3, 8])), replace=False)] = False  # 13 per size
    batched = scheme._build_decoders(masks)
    alone = np.stack([scheme._build_decoders(row[None])[0] for row in masks])
    np.testing.assert_allclose(batched, alone, rtol=0, atol=1e-13)
