"""RobustNeRCC and RobustBACC: the screening of adversarial answers.

References: the plain scheme (NeRCC, BACC) decoding the honest answers alone, and data the
screening spline reproduces exactly (answers linear in beta, constants: a smoothing spline
reproduces every line for every lambda), so that every honest residual is at rounding level and
a gross error can be located exactly. Tolerances: the robust estimates equal
the plain decoding of the honest subset to 1e-10 (the same code path on the same mask: in fact
bit for bit); with nothing flagged they are the plain estimates exactly.
"""

import math
import pickle
import warnings

import numpy as np
import pytest
import torch

from nercc.coding import (
    BACC,
    SCHEMES,
    CodingScheme,
    FewAnswersWarning,
    NeRCC,
    RobustBACC,
    RobustNeRCC,
    Uncoded,
    gcv,
)

from .patterns import random_patterns

K, N, S, A = 8, 40, 5, 3


def linear_answers(scheme, groups, seed):
    """Answers (groups, N, 4) of a linear map of inputs linear in alpha: linear in beta too."""
    rng = np.random.default_rng(seed)
    offset, slope = rng.normal(size=(groups, 1, 3)), rng.normal(size=(groups, 1, 3))
    inputs = offset + slope * np.asarray(scheme.alphas)[None, :, None]
    coded = np.einsum("nk,gkd->gnd", scheme.encoder_matrix(), inputs)
    return coded @ rng.normal(size=(3, 4))


def constant_answers(groups, seed):
    rng = np.random.default_rng(seed)
    return np.repeat(rng.normal(size=(groups, 1, 4)), N, axis=1)


def corrupt(answers, masks, count, seed):
    """Gross errors (100 times the answers' largest magnitude) at ``count`` random answering
    workers of each group: the corrupted answers and where the adversaries are."""
    rng = np.random.default_rng(seed)
    corrupted, adversaries = answers.copy(), np.zeros(masks.shape, dtype=bool)
    scale = 100.0 * np.abs(answers).max()
    for group, mask in enumerate(masks):
        chosen = rng.choice(np.flatnonzero(mask), count, replace=False)
        adversaries[group, chosen] = True
        corrupted[group, chosen] += scale * rng.normal(size=(count, answers.shape[2]))
    return corrupted, adversaries


ROBUST_NERCC = {
    "lam": lambda: RobustNeRCC(K, N, lam_enc=1e-4, lam_dec=1e-3),
    "df": lambda: RobustNeRCC(K, N, lam_enc=1e-4, df_dec=6.0),
}


@pytest.mark.parametrize("name", list(ROBUST_NERCC))
def test_without_adversaries_nothing_is_flagged_and_the_estimates_are_the_plain_ones(name):
    scheme = ROBUST_NERCC[name]()
    plain = NeRCC(K, N, **{k: v for k, v in scheme.params().items() if k != "screen"})
    masks = random_patterns(N, S, 12, seed=1)
    answers = linear_answers(scheme, 12, seed=2)
    estimates, params, flagged = scheme.decode_each_flagged(answers, masks)
    assert flagged.dtype == np.bool_ and flagged.shape == masks.shape and not flagged.any()
    reference, plain_params = plain.decode_each_with_params(answers, masks)
    np.testing.assert_array_equal(estimates, reference)
    for key, values in plain_params.items():
        np.testing.assert_array_equal(params[key], values)
    np.testing.assert_array_equal(params["screen"], 8.0)


def test_bacc_without_adversaries_flags_nothing():
    scheme = RobustBACC(K, N)
    masks = random_patterns(N, S, 12, seed=3)
    answers = constant_answers(12, seed=4)
    estimates, _, flagged = scheme.decode_each_flagged(answers, masks)
    assert not flagged.any()
    np.testing.assert_array_equal(estimates, BACC(K, N).decode_each(answers, masks))


@pytest.mark.parametrize("name", list(ROBUST_NERCC))
def test_gross_errors_are_flagged_exactly_and_the_honest_answers_decoded(name):
    scheme = ROBUST_NERCC[name]()
    masks = random_patterns(N, S, 20, seed=5)
    answers, adversaries = corrupt(linear_answers(scheme, 20, seed=6), masks, A, seed=7)
    estimates, _, flagged = scheme.decode_each_flagged(answers, masks)
    np.testing.assert_array_equal(flagged, adversaries)
    plain = NeRCC(K, N, **{k: v for k, v in scheme.params().items() if k != "screen"})
    honest = plain.decode_each(answers, masks & ~adversaries)
    np.testing.assert_allclose(estimates, honest, rtol=0, atol=1e-10)
    # the plain decoder is pulled far away; decode_each and decode_each_with_params screen too
    assert np.abs(plain.decode_each(answers, masks) - honest).max() > 1.0
    np.testing.assert_array_equal(scheme.decode_each(answers, masks), estimates)
    np.testing.assert_array_equal(scheme.decode_each_with_params(answers, masks)[0], estimates)


def test_bacc_locates_a_gross_error():
    scheme = RobustBACC(K, N)
    masks = random_patterns(N, S, 20, seed=8)
    answers, adversaries = corrupt(constant_answers(20, seed=9), masks, 1, seed=10)
    estimates, params, flagged = scheme.decode_each_flagged(answers, masks)
    np.testing.assert_array_equal(flagged, adversaries)
    honest = BACC(K, N).decode_each(answers, masks & ~adversaries)
    np.testing.assert_allclose(estimates, honest, rtol=0, atol=1e-10)
    assert list(params) == ["screen"]


def test_gcv_screens_with_each_patterns_lambda():
    """lam_dec='gcv' is accepted: each round uses the lambda GCV picks on the answers still in."""
    scheme = RobustNeRCC(K, N, lam_dec="gcv")
    masks = random_patterns(N, S, 10, seed=11)
    answers, adversaries = corrupt(linear_answers(scheme, 10, seed=12), masks, 1, seed=13)
    estimates, params, flagged = scheme.decode_each_flagged(answers, masks)
    np.testing.assert_array_equal(flagged, adversaries)
    honest, honest_params = NeRCC(K, N, lam_dec="gcv").decode_each_with_params(
        answers, masks & ~adversaries
    )
    np.testing.assert_allclose(estimates, honest, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(params["lam_dec"], honest_params["lam_dec"])
    with pytest.raises(ValueError, match="no decoder matrix"):
        scheme.decoder_matrix(masks[0])


def test_a_non_finite_answer_is_flagged():
    scheme = RobustNeRCC(K, N, lam_enc=1e-4, lam_dec=1e-3)
    masks = random_patterns(N, S, 2, seed=14)
    answers = linear_answers(scheme, 2, seed=15)
    worker = int(np.flatnonzero(masks[0])[4])
    answers[0, worker, 1] = np.nan
    estimates, _, flagged = scheme.decode_each_flagged(answers, masks)
    assert flagged[0].tolist() == [w == worker for w in range(N)] and not flagged[1].any()
    assert np.isfinite(estimates).all()


def test_torch_float32_in_torch_float32_out():
    scheme = RobustNeRCC(K, N, lam_enc=1e-4, lam_dec=1e-3)
    masks = random_patterns(N, S, 4, seed=16)
    answers, adversaries = corrupt(linear_answers(scheme, 4, seed=17), masks, A, seed=18)
    values = torch.as_tensor(answers, dtype=torch.float32)
    for robust in (scheme, RobustBACC(K, N)):
        estimates, _, flagged = robust.decode_each_flagged(values, torch.as_tensor(masks))
        assert isinstance(estimates, torch.Tensor) and estimates.dtype == torch.float32
        assert estimates.shape == (4, K, 4) and isinstance(flagged, np.ndarray)
    _, _, flagged = scheme.decode_each_flagged(values, masks)
    np.testing.assert_array_equal(flagged, adversaries)


def test_decode_of_one_set_of_outputs_screens_like_decode_each():
    scheme = RobustNeRCC(K, N, lam_enc=1e-4, lam_dec=1e-3)
    masks = random_patterns(N, S, 3, seed=19)
    answers, _ = corrupt(linear_answers(scheme, 1, seed=20), masks[:1], A, seed=21)
    together = scheme.decode_each(np.repeat(answers, 3, axis=0), masks)
    np.testing.assert_array_equal(scheme.decode(answers[0], masks[0]), together[0])
    np.testing.assert_array_equal(scheme.decode(answers[0], masks), together)
    single = scheme.decode(answers[0].reshape(N, 2, 2), masks[0])  # trailing axes kept
    np.testing.assert_array_equal(single.reshape(K, 4), together[0])


def test_the_decoder_matrix_is_the_plain_one():
    """What a pattern decodes with when nothing is flagged (an adversary aims with it)."""
    masks = random_patterns(N, S, 3, seed=22)
    robust, plain = RobustNeRCC(K, N, lam_dec=1e-3), NeRCC(K, N, lam_dec=1e-3)
    np.testing.assert_array_equal(robust.decoder_matrices(masks), plain.decoder_matrices(masks))
    np.testing.assert_array_equal(
        RobustBACC(K, N).decoder_matrix(masks[0]), BACC(K, N).decoder_matrix(masks[0])
    )


@pytest.mark.parametrize("bad", [0, -1.0, math.inf, math.nan, "4", None, True])
def test_a_bad_screen_is_refused(bad):
    for cls in (RobustNeRCC, RobustBACC):
        with pytest.raises(ValueError, match=r"screen must be a finite number > 0, got"):
            cls(K, N, screen=bad)


def test_the_declarations():
    assert RobustNeRCC.screens and RobustBACC.screens
    assert not any(cls.screens for cls in (NeRCC, BACC, Uncoded))
    assert RobustNeRCC.tunables[:-1] == NeRCC.tunables
    assert RobustBACC.tunables[:-1] == BACC.tunables
    screen = RobustNeRCC.tunable("screen")
    assert screen is RobustBACC.tunable("screen")
    assert (screen.side, screen.per_pattern, screen.grid) == ("decoder", "never", (5, 8, 15))
    assert screen.search == (3.0, 30.0) and not screen.auto and not screen.choices
    assert not screen.accepts(0.0) and screen.accepts(0.5) and not screen.accepts(math.inf)
    assert RobustNeRCC.reported == (*NeRCC.reported, "screen")
    assert RobustBACC.reported == ("screen",)
    assert SCHEMES["RobustNeRCC"] is RobustNeRCC and SCHEMES["RobustBACC"] is RobustBACC
    assert issubclass(RobustNeRCC, NeRCC) and issubclass(RobustBACC, BACC)


def test_params_describe_and_decoder_key():
    scheme = RobustNeRCC(K, N, lam_enc=1e-4, lam_dec=1e-3, screen=3.0)
    assert scheme.params() == {"lam_enc": 1e-4, "lam_dec": 1e-3, "screen": 3.0}
    assert RobustNeRCC(K, N, **scheme.params()).decoder_key() == scheme.decoder_key()
    assert "screen=3.0" in repr(scheme)
    # the encoder's settings stay in the key: other encoders' outputs never join the screening
    other = RobustNeRCC(K, N, lam_enc=1e-6, lam_dec=1e-3, screen=3.0)
    assert other.decoder_key() != scheme.decoder_key()
    assert (
        NeRCC(K, N, lam_enc=1e-6, lam_dec=1e-3).decoder_key()
        == NeRCC(K, N, lam_enc=1e-4, lam_dec=1e-3).decoder_key()
    )
    assert RobustBACC(K, N, screen=2.0).params() == {"screen": 2.0}
    again = pickle.loads(pickle.dumps(scheme))
    assert again.params() == scheme.params() and again.screens


@pytest.mark.parametrize("cls", [RobustNeRCC, RobustBACC])
def test_a_used_scheme_pickles_without_its_caches_and_screens_alike(cls):
    """The screening keeps each mask's eigenvalues (the same masks return for every A); the
    cache is left out of pickles (it holds a lock) and rebuilt, and decoding is unchanged."""
    scheme = cls(K, N)
    masks = random_patterns(N, S, 6, seed=26)
    answers, _ = corrupt(linear_answers(NeRCC(K, N), 6, seed=27), masks, A, seed=28)
    first = scheme.decode_each_flagged(answers, masks)
    again = pickle.loads(pickle.dumps(scheme))
    for one, other in zip(first, again.decode_each_flagged(answers, masks), strict=True):
        if isinstance(one, dict):
            assert one.keys() == other.keys()
        else:
            np.testing.assert_array_equal(one, other)
    np.testing.assert_array_equal(scheme.decode_each_flagged(answers, masks)[2], first[2])


def test_the_screening_decomposes_each_mask_once(monkeypatch):
    """Decoding the same patterns again (the next A of an evaluation) decomposes nothing."""
    scheme = RobustBACC(K, N)
    masks = random_patterns(N, S, 6, seed=29)
    answers, _ = corrupt(constant_answers(6, seed=30), masks, A, seed=31)
    scheme.decode_each_flagged(answers, masks)
    calls = []
    original = gcv.spectrum
    monkeypatch.setattr(gcv, "spectrum", lambda *a, **k: calls.append(1) or original(*a, **k))
    scheme.decode_each_flagged(answers, masks)
    assert calls == []
    RobustBACC(K, N).decode_each_flagged(answers, masks)  # a fresh scheme decomposes
    assert calls


def test_schemes_that_do_not_screen_flag_nothing():
    masks = random_patterns(N, S, 3, seed=23)
    answers, _ = corrupt(constant_answers(3, seed=24), masks, A, seed=25)
    for scheme in (NeRCC(K, N), BACC(K, N)):
        estimates, params, flagged = scheme.decode_each_flagged(answers, masks)
        assert isinstance(scheme, CodingScheme) and not flagged.any()
        assert flagged.shape == masks.shape and flagged.dtype == np.bool_
        reference, reference_params = scheme.decode_each_with_params(answers, masks)
        np.testing.assert_array_equal(estimates, reference)
        assert list(params) == list(reference_params)


@pytest.mark.parametrize("cls", [NeRCC, RobustNeRCC, RobustBACC])
def test_few_answers_warn_once_at_the_caller(cls):
    scheme = cls(K, N)
    masks = random_patterns(N, N - K + 1, 2, seed=26)  # K - 1 answers
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scheme.decode_each_flagged(constant_answers(2, seed=27), masks)
    few = [w for w in caught if issubclass(w.category, FewAnswersWarning)]
    assert len(few) == 1 and few[0].filename == __file__


@pytest.mark.parametrize("cls", [RobustNeRCC, RobustBACC])
def test_a_small_code_keeps_its_honest_answers(cls):
    """K=8, N=20, S=4 (16 answers, the ViT's code), answers of a small nonlinear model (tanh of a
    linear map) on coded inputs, 2 gross errors per pattern: every adversary is found, and at
    most one pattern in twenty loses an honest answer (4 % here at the default screen). A
    screening spline of too many degrees of freedom (1.5 K = 12 of the 16 answers: nearly
    interpolating) has tiny in-sample residuals and loses honest answers in 93 % of them."""
    k, n, groups = 8, 20, 200
    scheme = cls(k, n)
    rng = np.random.default_rng(0)
    masks = random_patterns(n, 4, groups, seed=1)
    coded = np.einsum("nk,gkd->gnd", scheme.encoder_matrix(), rng.normal(size=(groups, k, 6)))
    answers = np.tanh(coded @ rng.normal(size=(6, 10)) / 2)
    answers, adversaries = corrupt(answers, masks, 2, seed=2)
    _, _, flagged = scheme.decode_each_flagged(answers, masks)
    assert not (adversaries & ~flagged).any()
    assert (flagged & ~adversaries).any(axis=1).sum() <= groups // 20


@pytest.mark.parametrize(("k", "n"), [(2, 3), (1, 2), (3, 4)])
def test_a_pattern_that_may_drop_nothing_is_decoded_plainly(k, n):
    """Fewer than K + 2 answers may drop none (the cap (m - K) // 2 is 0): decoded as the plain
    scheme decodes them, never refused (K=2, N=3 once asked the spline for df = 2)."""
    answers = np.random.default_rng(3).standard_normal((3, n, 2))
    answers[:, 0] *= 1e3
    masks = np.ones((3, n), dtype=bool)
    estimates, _, flagged = RobustNeRCC(k, n).decode_each_flagged(answers, masks)
    assert not flagged.any()
    np.testing.assert_array_equal(estimates, NeRCC(k, n).decode_each(answers, masks))


@pytest.mark.parametrize("cls", [RobustNeRCC, RobustBACC])
@pytest.mark.parametrize("liar", [1, 3, 5, 8])
def test_one_gross_error_among_few_equal_answers_is_flagged(cls, liar):
    """K=4, N=12, workers 0-9 answer the same value (a group of one query padded to K, as
    served), one of them -100 times it: the stiff screening spline (3 df) started from equal
    weights follows the lie so far that the median residual hides it; the robust start (the
    weights of the distances to the median answer) finds it, and only it."""
    answers = np.repeat(np.random.default_rng(40).normal(size=(1, 1, 10)), 12, axis=1)
    answers[0, liar] *= -100.0
    mask = np.zeros((1, 12), dtype=bool)
    mask[0, :10] = True
    _, _, flagged = cls(4, 12).decode_each_flagged(answers, mask)
    assert np.flatnonzero(flagged[0]).tolist() == [liar]
