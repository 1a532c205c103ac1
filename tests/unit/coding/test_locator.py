"""LocatingBACC: the rational Welch-Berlekamp error locator on BACC.

Where the theory holds exactly (BACC-encoded inputs through an affine f: the honest answers are a
rational function of degree K - 1 over Berrut's denominator), gross errors are located and
flagged exactly, and the estimates equal BACC's plain decoding of the honest answers (to 1e-9
relative: both are the same Berrut decoder of the same answers). The locator is exact there; the
confirmation is not (Berrut's interpolant of the other answers misses an honest candidate by more
than an honest leave-one-out residual, most at the ends), so these tests plant errors of 1e4
against answers of order 1 and confirm with ``screen=30`` (at the default 8, 1 to 3 honest
candidates of 180 answers were dropped; errors of 50 with screen=50 go unflagged)."""

import pickle
import warnings

import numpy as np
import pytest
import torch

from nercc.coding import BACC, FewAnswersWarning, LocatingBACC
from nercc.coding.locator import auxiliary_nodes

K, N = 8, 30
EXACT = 30.0


def affine_answers(scheme, groups, width=4, seed=0):
    """Worker answers f(E X) of an affine f, for ``groups`` groups: (P, N, width)."""
    rng = np.random.default_rng(seed)
    inputs = rng.standard_normal((groups, scheme.num_inputs, 5))
    weights, offset = rng.standard_normal((5, width)), rng.standard_normal(width)
    return np.stack([scheme.encode(x) @ weights + offset for x in inputs])


def stragglers(groups, count, seed=1, num_workers=N):
    rng = np.random.default_rng(seed)
    available = np.ones((groups, num_workers), dtype=bool)
    for row in available:
        row[rng.choice(num_workers, count, replace=False)] = False
    return available


def corrupt(outputs, available, errors, seed=2, size=1e4):
    """``errors`` gross errors among the answers of every pattern; the answers and where."""
    rng = np.random.default_rng(seed)
    outputs, wrong = outputs.copy(), np.zeros(available.shape, dtype=bool)
    for p, row in enumerate(available):
        where = rng.choice(np.flatnonzero(row), errors, replace=False)
        wrong[p, where] = True
        outputs[p, where] += size * rng.standard_normal((errors, outputs.shape[2]))
    return outputs, wrong


@pytest.mark.parametrize("errors", [1, 3, 5])
def test_gross_errors_on_an_affine_f_are_flagged_exactly(errors):
    scheme = LocatingBACC(K, N, screen=EXACT)
    available = stragglers(6, 4)
    outputs, wrong = corrupt(affine_answers(scheme, 6), available, errors)
    estimates, params, flagged = scheme.decode_each_flagged(outputs, available)
    np.testing.assert_array_equal(flagged, wrong)
    plain = BACC(K, N).decode_each(outputs, available & ~wrong)
    np.testing.assert_allclose(estimates, plain, rtol=1e-9, atol=1e-9 * np.abs(plain).max())
    np.testing.assert_array_equal(params["screen"], EXACT)


def test_the_most_errors_the_answers_allow_are_located():
    # m = 26 answers, K = 8: E = (26 - 8 - 1) // 2 = 8 gross errors, every one flagged.
    scheme = LocatingBACC(K, N, screen=EXACT)
    available = stragglers(4, 4, seed=3)
    outputs, wrong = corrupt(affine_answers(scheme, 4, seed=4), available, 8, seed=5)
    _, _, flagged = scheme.decode_each_flagged(outputs, available)
    np.testing.assert_array_equal(flagged, wrong)


def test_clean_answers_are_not_flagged_and_decode_plainly():
    scheme = LocatingBACC(K, N, screen=EXACT)
    available = stragglers(8, 6, seed=6)
    outputs = affine_answers(scheme, 8, seed=7)
    estimates, _, flagged = scheme.decode_each_flagged(outputs, available)
    assert not flagged.any()
    np.testing.assert_array_equal(estimates, BACC(K, N).decode_each(outputs, available))


def test_clean_answers_of_a_smooth_nonlinear_f_are_not_flagged():
    scheme = LocatingBACC(K, N)
    available = stragglers(8, 6, seed=8)
    outputs = np.tanh(affine_answers(scheme, 8, seed=9))
    _, _, flagged = scheme.decode_each_flagged(outputs, available)
    assert not flagged.any()


def test_non_finite_answers_are_flagged_and_the_rest_located():
    scheme = LocatingBACC(K, N, screen=EXACT)
    available = stragglers(3, 4, seed=10)
    outputs, wrong = corrupt(affine_answers(scheme, 3, seed=11), available, 2, seed=12)
    broken = np.zeros_like(wrong)
    for p, row in enumerate(available & ~wrong):
        broken[p, np.flatnonzero(row)[0]] = True
    outputs[broken] = np.nan
    outputs[0, np.flatnonzero(broken[0])[0], 1] = np.inf
    estimates, _, flagged = scheme.decode_each_flagged(outputs, available)
    np.testing.assert_array_equal(flagged, wrong | broken)
    assert np.isfinite(estimates).all()


def test_every_answer_non_finite_is_decoded_plainly():
    scheme = LocatingBACC(K, N)
    available = stragglers(1, 4)
    outputs = np.full((1, N, 3), np.nan)
    _, _, flagged = scheme.decode_each_flagged(outputs, available)
    assert not flagged.any()


@pytest.mark.parametrize("answers", [K, K + 1, K + 2])
def test_patterns_too_small_to_locate_are_decoded_plainly(answers):
    # E = (m - K - 1) // 2 < 1 below K + 3 answers: nothing can be located.
    scheme = LocatingBACC(K, N)
    available = stragglers(2, N - answers, seed=13)
    outputs, _ = corrupt(affine_answers(scheme, 2, seed=14), available, 1)
    estimates, _, flagged = scheme.decode_each_flagged(outputs, available)
    assert not flagged.any()
    np.testing.assert_array_equal(estimates, BACC(K, N).decode_each(outputs, available))


def test_torch_in_torch_out_and_decode_locates_like_decode_each():
    scheme = LocatingBACC(K, N, screen=EXACT)
    available = stragglers(2, 4, seed=15)
    outputs, wrong = corrupt(affine_answers(scheme, 2, seed=16), available, 2)
    tensor = torch.from_numpy(outputs).to(torch.float32)
    estimates, _, flagged = scheme.decode_each_flagged(tensor, available)
    assert isinstance(estimates, torch.Tensor) and estimates.dtype == torch.float32
    np.testing.assert_array_equal(flagged, wrong)
    plain = BACC(K, N).decode_each(outputs, available & ~wrong)
    np.testing.assert_allclose(estimates.numpy(), plain, rtol=1e-4, atol=1e-4)
    one = scheme.decode(outputs[0], available[0])
    np.testing.assert_allclose(one, plain[0], rtol=1e-9, atol=1e-9)


def test_a_used_scheme_pickles_and_locates_alike():
    scheme = LocatingBACC(K, N, screen=5.0)
    available = stragglers(2, 4, seed=17)
    outputs, _ = corrupt(affine_answers(scheme, 2, seed=18), available, 3)
    before = scheme.decode_each_flagged(outputs, available)
    copy = pickle.loads(pickle.dumps(scheme))
    assert copy.screen == 5.0 and copy.params() == {"screen": 5.0}
    after = copy.decode_each_flagged(outputs, available)
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[2], after[2])


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "8", True, None])
def test_a_bad_screen_is_refused(bad):
    with pytest.raises(ValueError, match=r"screen must be .*got"):
        LocatingBACC(K, N, screen=bad)


def test_declarations_and_the_plain_decoder_matrix():
    scheme = LocatingBACC(K, N)
    assert LocatingBACC.screens and LocatingBACC.reported == ("screen",)
    assert LocatingBACC.tunable("screen").side == "decoder"
    mask = stragglers(1, 4)[0]
    np.testing.assert_array_equal(scheme.decoder_matrix(mask), BACC(K, N).decoder_matrix(mask))
    assert scheme.decoder_key() != LocatingBACC(K, N, screen=5.0).decoder_key()
    assert "screen=8.0" in repr(scheme)


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 8, 9, 20])
@pytest.mark.parametrize("k", [1, 3, 8, 20])
def test_auxiliary_nodes_are_ascending_and_apart_from_the_alphas(count, k):
    alphas = BACC(k, max(k, 2)).alphas
    nodes = auxiliary_nodes(count, alphas)
    assert nodes.shape == (count,) and np.all(np.diff(nodes) > 0)
    assert np.min(np.abs(nodes[:, None] - alphas[None])) > 1e-6


def test_few_answers_still_warn():
    scheme = LocatingBACC(K, N)
    available = stragglers(1, N - K + 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scheme.decode_each(affine_answers(scheme, 1), available)
    assert [w.category for w in caught] == [FewAnswersWarning]
