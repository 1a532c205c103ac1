"""NeRCC with degrees of freedom (df_enc, df_dec) and GCV-chosen decoder lambdas, and the
per-pattern parameters of decode_each_with_params.

References: the fixed-lambda NeRCC and smoothing_spline_matrix (validated elsewhere against
scipy), with the lambdas from nercc.coding.gcv computed pattern by pattern in Python loops.
"""

import warnings

import numpy as np
import pytest
import torch

from nercc.coding import (
    BACC,
    FewAnswersWarning,
    NeRCC,
    Replication,
    choose_lam_gcv,
    effective_df,
    gcv,
    lam_for_df,
    smoothing_spline_matrix,
    spectrum_cache,
)
from nercc.coding import nercc as nercc_module

K, N = 8, 30


def patterns(sizes, seed=0, num_workers=N):
    """One mask per entry of ``sizes`` (the number of answering workers)."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((len(sizes), num_workers), dtype=bool)
    for row, size in zip(masks, sizes, strict=True):
        row[rng.choice(num_workers, size, replace=False)] = True
    return masks


def smooth_outputs(betas, count, seed=0, shape=(3,)):
    """Outputs of a smooth f on the betas, plus noise: (count, N, *shape)."""
    rng = np.random.default_rng(seed)
    width = int(np.prod(shape))
    phase = rng.uniform(0, np.pi, (count, 1, width))
    clean = np.sin(2.5 * betas[None, :, None] + phase)
    noisy = clean + 0.05 * rng.normal(size=clean.shape)
    return noisy.reshape(count, betas.size, *shape)


def make_betas():
    return NeRCC(K, N).betas


# -- df_enc and df_dec ------------------------------------------------------------------------
def test_df_enc_sets_the_encoder_lambda():
    scheme = NeRCC(K, N, df_enc=5.0)
    assert scheme.lam_enc == lam_for_df(scheme.alphas, 5.0)
    assert scheme.encoder_df() == pytest.approx(5.0, abs=1e-10)
    encoder = scheme.encoder_matrix()
    np.testing.assert_array_equal(encoder, NeRCC(K, N, lam_enc=scheme.lam_enc).encoder_matrix())
    # the df is the trace of the encoder's smoother on its own sites
    alphas = scheme.alphas
    assert np.trace(smoothing_spline_matrix(alphas, alphas, scheme.lam_enc)) == pytest.approx(5.0)
    # as many df as inputs (or more) interpolates; two inputs are a line whatever the df
    assert NeRCC(K, N, df_enc=K).lam_enc == 0.0
    assert NeRCC(K, N, df_enc=K + 3.5).lam_enc == 0.0
    assert NeRCC(2, N, df_enc=3.0).lam_enc == 0.0
    assert NeRCC(2, N, df_enc=3.0).encoder_df() == 2.0


def test_encoder_df_of_a_fixed_lambda():
    scheme = NeRCC(K, N, lam_enc=1e-3)
    assert scheme.encoder_df() == pytest.approx(effective_df(scheme.alphas, 1e-3), rel=1e-12)
    assert NeRCC(K, N).encoder_df() == float(K)


def test_df_dec_gives_each_pattern_its_own_lambda():
    scheme = NeRCC(K, N, df_dec=6.0)
    masks = patterns([25, 25, 18, 12, 5, 2])  # 5 and 2 answering: fewer sites than df
    decoders = scheme.decoder_matrices(masks)
    for p, mask in enumerate(masks):
        sites = scheme.betas[mask]
        lam = lam_for_df(sites, 6.0) if sites.size > 6 else 0.0
        np.testing.assert_allclose(
            decoders[p][:, mask],
            smoothing_spline_matrix(sites, scheme.alphas, lam),
            rtol=1e-9,
            atol=1e-12,
        )
        np.testing.assert_array_equal(decoders[p][:, ~mask], 0.0)
    np.testing.assert_allclose(scheme.decoder_df(masks), [6, 6, 6, 6, 5, 2], rtol=1e-10)
    assert scheme.decoder_df(masks[0]) == pytest.approx(6.0)
    # decode_each fits the splines directly: the same as the matrices
    outputs = smooth_outputs(scheme.betas, len(masks))
    with pytest.warns(FewAnswersWarning, match="2 of 6 patterns"):  # 5 and 2 answers < K = 8
        estimates = scheme.decode_each(outputs, masks)
    np.testing.assert_allclose(
        estimates, np.einsum("pkn,pnc->pkc", decoders, outputs), rtol=1e-9, atol=1e-12
    )
    with pytest.warns(FewAnswersWarning):
        _, params = scheme.decode_each_with_params(outputs, masks)
    np.testing.assert_allclose(params["df_dec"], [6, 6, 6, 6, 5, 2], rtol=1e-10)
    assert params["lam_dec"][-2:].tolist() == [0.0, 0.0]
    lams = [lam_for_df(scheme.betas[mask], 6.0) for mask in masks[:4]]
    np.testing.assert_allclose(params["lam_dec"][:4], lams, rtol=1e-12)


# -- GCV -------------------------------------------------------------------------------------
def reference_gcv(scheme, outputs, masks, grid=None):
    """Pattern by pattern: choose_lam_gcv on the answers, then a fixed-lambda NeRCC."""
    estimates, lams = [], []
    for output, mask in zip(outputs, masks, strict=True):
        sites = scheme.betas[mask]
        answers = output[mask].reshape(sites.size, -1)
        lam = choose_lam_gcv(sites, answers, grid) if sites.size >= 3 else 0.0
        fixed = NeRCC(scheme.num_inputs, scheme.num_workers, lam_enc=scheme.lam_enc, lam_dec=lam)
        with warnings.catch_warnings():  # the caller's test asserts the warning of its own call
            warnings.simplefilter("ignore", FewAnswersWarning)
            estimates.append(fixed.decode(output, mask))
        lams.append(lam)
    return np.stack(estimates), np.array(lams)


def test_gcv_decodes_each_pattern_at_its_chosen_lambda():
    scheme = NeRCC(K, N, lam_enc=1e-4, lam_dec="gcv")
    masks = patterns([28, 28, 20, 13, 9, 3, 2, 1], seed=1)
    outputs = smooth_outputs(scheme.betas, len(masks), seed=1, shape=(2, 3))  # m = 6 columns
    with pytest.warns(FewAnswersWarning, match="3 of 8 patterns"):  # 3, 2 and 1 answers < K
        estimates, params = scheme.decode_each_with_params(outputs, masks)
    expected, lams = reference_gcv(scheme, outputs, masks)
    assert estimates.shape == (len(masks), K, 2, 3)
    np.testing.assert_allclose(estimates, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(params["lam_dec"], lams)
    assert np.all(lams[:4] > 0)  # noisy smooth data: GCV smooths
    df = [effective_df(scheme.betas[m], lam) for m, lam in zip(masks, lams, strict=True)]
    np.testing.assert_allclose(params["df_dec"], df, rtol=1e-12)
    assert 2 < params["df_dec"][3] < 13
    # two answers are a line, one a constant, whatever lambda: reported as 0 with df = n
    assert params["df_dec"][-2:].tolist() == [2.0, 1.0]
    assert params["lam_dec"][-2:].tolist() == [0.0, 0.0]
    np.testing.assert_array_equal(params["lam_enc"], np.full(len(masks), 1e-4))
    np.testing.assert_allclose(params["df_enc"], scheme.encoder_df())
    with pytest.warns(FewAnswersWarning):
        np.testing.assert_array_equal(scheme.decode_each(outputs, masks), estimates)


def test_gcv_in_smaller_chunks_and_from_the_cache(monkeypatch):
    scheme = NeRCC(K, N, lam_dec="gcv")
    masks = patterns([20] * 7 + [15] * 3, seed=2)
    outputs = smooth_outputs(scheme.betas, len(masks), seed=2)
    first = scheme.decode_each(outputs, masks)
    calls = []
    real = gcv.spectrum
    monkeypatch.setattr(gcv, "spectrum", lambda *a, **k: calls.append(1) or real(*a, **k))
    np.testing.assert_array_equal(scheme.decode_each(outputs, masks), first)
    assert calls == []  # every mask's eigen-decomposition came from the cache
    monkeypatch.setattr(nercc_module, "SPECTRUM_CHUNK", 3)
    chunked = NeRCC(K, N, lam_dec="gcv")
    np.testing.assert_allclose(chunked.decode_each(outputs, masks), first, rtol=1e-12)
    assert len(calls) == 4  # 7 masks of 20 in chunks of 3, 3 masks of 15 in one


def test_spectrum_cache_stays_within_its_bytes(monkeypatch):
    one = 29 * 27 * 8 + 27 * 8  # eigenvectors (n, n-2) and eigenvalues of one mask, n = 29
    monkeypatch.setattr(spectrum_cache, "SPECTRUM_CACHE_BYTES", 3 * one)
    scheme = NeRCC(K, N, lam_dec="gcv")
    masks = np.ones((6, N), dtype=bool)
    masks[np.arange(6), np.arange(6)] = False  # six distinct masks of 29 answering
    outputs = smooth_outputs(scheme.betas, 6)
    scheme.decode_each(outputs, masks)
    assert 0 < scheme.spectrum_cache.nbytes <= 3 * one
    assert len(scheme.spectrum_cache) == 3


def test_gcv_grid_can_be_given():
    masks = patterns([25, 17], seed=3)
    outputs = smooth_outputs(make_betas(), 2, seed=3)
    single = NeRCC(K, N, lam_dec="gcv", lam_grid=[1e-3])
    np.testing.assert_allclose(
        single.decode_each(outputs, masks),
        NeRCC(K, N, lam_dec=1e-3).decode_each(outputs, masks),
        rtol=1e-12,
    )
    grid = [1e-2, 0.0, 1e-6, 1e-6]  # sorted and deduplicated
    scheme = NeRCC(K, N, lam_dec="gcv", lam_grid=grid)
    assert scheme.lam_grid.tolist() == [0.0, 1e-6, 1e-2]
    _, lams = reference_gcv(scheme, outputs, masks, grid)
    _, params = scheme.decode_each_with_params(outputs, masks)
    np.testing.assert_array_equal(params["lam_dec"], lams)


def test_gcv_decode_one_output_set_under_many_patterns():
    scheme = NeRCC(K, N, lam_dec="gcv")
    masks = patterns([26, 19, 11], seed=4)
    output = smooth_outputs(scheme.betas, 1, seed=4)[0]  # (N, 3)
    many = scheme.decode(output, masks)
    np.testing.assert_array_equal(many, scheme.decode_each(np.stack([output] * 3), masks))
    np.testing.assert_array_equal(scheme.decode(output, masks[1]), many[1])


def test_gcv_keeps_torch_and_ignores_straggler_rows():
    scheme = NeRCC(K, N, lam_dec="gcv")
    masks = patterns([24, 16], seed=5)
    outputs = smooth_outputs(scheme.betas, 2, seed=5)
    reference = scheme.decode_each(outputs, masks)
    poisoned = outputs.copy()
    poisoned[~masks] = np.nan
    np.testing.assert_array_equal(scheme.decode_each(poisoned, masks), reference)
    tensor = torch.as_tensor(outputs, dtype=torch.float32)
    result = scheme.decode_each(tensor, torch.as_tensor(masks))
    assert isinstance(result, torch.Tensor) and result.dtype == torch.float32
    np.testing.assert_allclose(result.numpy(), reference, rtol=1e-4, atol=1e-5)
    single = scheme.decode(tensor[0], masks[0])
    assert isinstance(single, torch.Tensor) and single.shape == (K, 3)


def test_gcv_has_no_decoder_matrix():
    scheme = NeRCC(K, N, lam_dec="gcv")
    mask = patterns([20])[0]
    for call in (scheme.decoder_matrix, scheme.decoder_matrices, scheme.decoder_df):
        with pytest.raises(ValueError, match="gcv"):
            call(mask)
    assert not scheme.lost(mask).any()


# -- decode_each_with_params, params, decoder_key -------------------------------------------
def test_fixed_lambdas_report_their_df_per_pattern():
    scheme = NeRCC(K, N, lam_enc=1e-3, lam_dec=1e-4)
    masks = patterns([30, 22, 10, 2], seed=6)
    outputs = smooth_outputs(scheme.betas, 4, seed=6)
    with pytest.warns(FewAnswersWarning, match="1 of 4 patterns"):  # 2 answers < K = 8
        estimates, params = scheme.decode_each_with_params(outputs, masks)
        np.testing.assert_array_equal(estimates, scheme.decode_each(outputs, masks))
    assert set(params) == {"lam_enc", "lam_dec", "df_enc", "df_dec"}
    assert all(v.shape == (4,) and v.dtype == np.float64 for v in params.values())
    np.testing.assert_array_equal(params["lam_dec"], np.full(4, 1e-4))
    np.testing.assert_array_equal(params["lam_enc"], np.full(4, 1e-3))
    df = [effective_df(scheme.betas[m], 1e-4) for m in masks]
    np.testing.assert_allclose(params["df_dec"], df, rtol=1e-12)
    np.testing.assert_allclose(scheme.decoder_df(masks), df, rtol=1e-12)
    assert params["df_dec"][-1] == 2.0
    np.testing.assert_allclose(params["df_enc"], effective_df(scheme.alphas, 1e-3), rtol=1e-12)


def test_a_fixed_lambda_reports_its_df_without_eigen_decompositions(monkeypatch):
    """The df of a fixed lam_dec comes from the banded smoother (smoothing_spline_df): the
    spectrum cache stays empty and no spectrum is computed; df_dec and GCV still need one."""

    def no_spectrum(*args, **kwargs):
        raise AssertionError("a fixed lam_dec computed a spectrum")

    masks = patterns([30, 22, 10, 3], seed=7)
    outputs = smooth_outputs(make_betas(), 4, seed=7)
    scheme = NeRCC(K, N, lam_enc=1e-3, lam_dec=1e-4)
    with monkeypatch.context() as patch:
        patch.setattr(nercc_module.SpectrumCache, "lookup", no_spectrum)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FewAnswersWarning)
            _, params = scheme.decode_each_with_params(outputs, masks)
            df = scheme.decoder_df(masks)
    assert len(scheme.spectrum_cache) == 0
    expected = [effective_df(make_betas()[m], 1e-4) for m in masks]
    np.testing.assert_allclose(params["df_dec"], expected, rtol=1e-12)
    np.testing.assert_allclose(df, expected, rtol=1e-12)
    for chosen in (NeRCC(K, N, df_dec=5.0), NeRCC(K, N, lam_dec="gcv")):
        chosen.decode_each_with_params(outputs[:2], masks[:2])
        assert len(chosen.spectrum_cache) == 2


def test_other_schemes_broadcast_their_fixed_params():
    masks = patterns([20, 25], seed=7)
    outputs = smooth_outputs(make_betas(), 2, seed=7)
    estimates, params = BACC(K, N).decode_each_with_params(outputs, masks)
    assert params == {}
    np.testing.assert_array_equal(estimates, BACC(K, N).decode_each(outputs, masks))
    replication = Replication(4, 3)
    _, params = replication.decode_each_with_params(np.ones((2, 12, 1)), np.ones((2, 12), bool))
    assert params == {}


def test_params_are_plain_floats_of_the_given_settings():
    fixed = NeRCC(K, N, lam_enc=1e-4, lam_dec=1e-3).params()
    assert fixed == {"lam_enc": 1e-4, "lam_dec": 1e-3}
    assert all(type(v) is float for v in fixed.values())
    assert NeRCC(K, N, lam_enc=1, lam_dec=0).params() == {"lam_enc": 1.0, "lam_dec": 0.0}
    by_df = NeRCC(K, N, df_enc=5, df_dec=7)
    assert by_df.params() == {"df_enc": 5.0, "df_dec": 7.0}
    assert all(type(v) is float for v in by_df.params().values())
    assert NeRCC(K, N, lam_enc=1e-4, lam_dec="gcv").params() == {"lam_enc": 1e-4}
    # the params rebuild the scheme
    for scheme in (by_df, NeRCC(K, N, df_enc=6.5, lam_dec=1e-2, points="uniform")):
        again = NeRCC(K, N, points=scheme.points, **scheme.params())
        assert repr(again) == repr(scheme)
        np.testing.assert_array_equal(again.encoder_matrix(), scheme.encoder_matrix())


def test_decoder_key():
    key = NeRCC(K, N, lam_enc=1e-3, lam_dec=1e-4).decoder_key()
    assert NeRCC(K, N, df_enc=5.0, lam_dec=1e-4).decoder_key() == key  # encoders don't count
    assert NeRCC(K, N, lam_dec=1e-3).decoder_key() != key
    by_df = NeRCC(K, N, df_dec=6.0).decoder_key()
    assert NeRCC(K, N, lam_enc=1.0, df_dec=6.0).decoder_key() == by_df != key
    hash(by_df)
    # GCV chooses from the outputs: decoding another encoder's outputs alongside would change
    # the choice, so GCV schemes with other encoders never share a decoding pass.
    gcv = NeRCC(K, N, lam_enc=1e-3, lam_dec="gcv")
    assert gcv.decoder_key() == NeRCC(K, N, lam_enc=1e-3, lam_dec="gcv").decoder_key()
    assert gcv.decoder_key() != NeRCC(K, N, lam_enc=1e-2, lam_dec="gcv").decoder_key()
    assert gcv.decoder_key() != NeRCC(K, N, lam_enc=1e-3, lam_dec="gcv", lam_grid=[0.0, 1.0])
    hash(NeRCC(K, N, lam_dec="gcv", lam_grid=[0.0, 1.0]).decoder_key())
    assert "lam_dec='gcv'" in repr(gcv)


@pytest.mark.parametrize(
    ("kwargs", "start"),
    [
        ({"df_enc": 5.0, "lam_enc": 1e-3}, "df_enc=5 and lam_enc=0.001"),
        ({"df_dec": 5.0, "lam_dec": 1e-3}, "df_dec=5 and lam_dec=0.001"),
        ({"df_dec": 5.0, "lam_dec": "gcv"}, "df_dec=5 and lam_dec='gcv'"),
        ({"df_enc": 2.0}, "df_enc must be a finite number > 2"),
        ({"df_dec": 1.0}, "df_dec must be a finite number > 2"),
        ({"df_dec": np.inf}, "df_dec must be a finite number > 2"),
        ({"df_enc": True}, "df_enc must be a finite number > 2"),
        ({"df_enc": "5"}, "df_enc must be a finite number > 2"),
        ({"lam_dec": "GCV"}, "lam_dec must be a finite number >= 0 or 'gcv'"),
        ({"lam_dec": -1.0}, "lam_dec must be a finite number >= 0"),
        ({"lam_grid": [0.0, 1.0]}, "lam_grid is only used with lam_dec='gcv'"),
        ({"lam_dec": "gcv", "lam_grid": []}, "lam_grid must be a non-empty 1-D array"),
        ({"lam_dec": "gcv", "lam_grid": [0.0, -1.0]}, "lam_grid must hold finite numbers"),
        ({"lam_dec": "gcv", "lam_grid": [1e200]}, "lam_grid must hold finite numbers"),
        ({"lam_dec": "gcv", "lam_grid": ["a"]}, "lam_grid must be an array of numbers"),
    ],
)
def test_bad_settings_are_refused(kwargs, start):
    with pytest.raises(ValueError) as error:
        NeRCC(K, N, **kwargs)
    assert str(error.value).startswith(start), str(error.value)


def test_a_config_sequence_is_a_grid():
    omegaconf = pytest.importorskip("omegaconf")
    grid = omegaconf.OmegaConf.create({"g": [0.0, 1e-4, 1e-2]}).g
    assert NeRCC(K, N, lam_dec="gcv", lam_grid=grid).lam_grid.tolist() == [0.0, 1e-4, 1e-2]


def test_per_fit_lambdas_in_the_batched_spline_code():
    """NeRCC hands splines.py one lambda per pattern: the same as fitting each alone."""
    from nercc.coding.splines import smoothing_spline_matrices, smoothing_spline_values

    rng = np.random.default_rng(8)
    sites = np.sort(rng.uniform(-1, 1, (3, 9)), axis=1)
    lams = np.array([0.0, 1e-4, 1e-1])
    targets = np.linspace(-1.2, 1.2, 5)
    matrices = smoothing_spline_matrices(sites, targets, lams)
    values = rng.normal(size=(3, 9, 2))
    fitted = smoothing_spline_values(sites, values, targets, lams)
    for p in range(3):
        alone = smoothing_spline_matrix(sites[p], targets, lams[p])
        np.testing.assert_allclose(matrices[p], alone, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(fitted[p], alone @ values[p], rtol=1e-10, atol=1e-13)
