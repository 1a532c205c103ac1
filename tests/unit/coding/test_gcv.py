"""Effective degrees of freedom, lam_for_df, GCV and leave-one-out CV (nercc.coding.gcv).

References are independent of the eigen-decomposition route under test: the explicit smoother
``smoothing_spline_matrix(sites, sites, lam)`` of splines.py (banded Reinsch solves), its trace,
and brute-force refits without each point.
"""

import numpy as np
import pytest

from nercc.coding import (
    DEFAULT_LAM_GRID,
    choose_lam_gcv,
    effective_df,
    gcv_scores,
    lam_bound,
    lam_for_df,
    loo_scores,
    make_points,
    smoothing_spline_matrix,
)


def site_sets():
    rng = np.random.default_rng(7)
    irregular = np.sort(rng.uniform(-1, 1, 40))
    return {
        "chebyshev20": make_points(5, 20)[1],
        "chebyshev100": make_points(5, 100)[1],
        "chebyshev300": make_points(5, 300)[1],
        "uniform50": make_points(5, 50, "uniform")[1],
        "irregular40": irregular,
        "wide7": np.array([0.0, 3.0, 4.0, 10.0, 11.0, 30.0, 31.5]),
    }


SITES = site_sets()
LAMS = [0.0, 1e-12, 1e-8, 1e-6, 1e-4, 1e-2, 1.0, 1e4]


@pytest.mark.parametrize("name", list(SITES))
def test_df_is_the_trace_of_the_smoother_of_splines_py(name):
    """The penalty convention: df(lam) = tr smoothing_spline_matrix(sites, sites, lam), the
    mean-normalised data term's n * lam. Tolerance 1e-8 absolute: both sides are rounded (the
    explicit matrix itself gives df = 1.99999999996 < 2 at lam = 1e8 for 300 Chebyshev points);
    measured differences are <= 2e-9. The same comparison through eigh(Q R^-1 Q^T) instead of the
    SVD route misses by up to 5e-5 at 300 Chebyshev points."""
    sites = SITES[name]
    expected = [np.trace(smoothing_spline_matrix(sites, sites, lam)) for lam in LAMS]
    np.testing.assert_allclose(effective_df(sites, LAMS), expected, rtol=0, atol=1e-8)
    # A wrong convention (lam without the factor n) would be far off where df moves.
    n = sites.size
    middle = lam_for_df(sites, (n + 2) / 2)
    assert np.trace(smoothing_spline_matrix(sites, sites, middle)) == pytest.approx((n + 2) / 2)
    assert abs(effective_df(sites, middle / n) - (n + 2) / 2) > 0.5


def test_df_runs_from_n_to_two_monotonically():
    lams = np.concatenate([[0.0], np.logspace(-16, 8, 97), [np.inf]])
    for sites in SITES.values():
        n = sites.size
        df = effective_df(sites, lams)
        assert df[0] == n  # interpolation, exactly
        assert df[-1] == 2.0  # the line, exactly
        assert np.all(np.diff(df) <= 0)
        moving = (df[:-1] < n - 1e-9) & (df[:-1] > 2 + 1e-9)  # away from both flat ends
        assert np.all(np.diff(df)[moving] < 0)
        assert 2 < effective_df(sites, 1e12) < 2 + 1e-6


def test_df_batches_over_site_sets_and_lambda_shapes():
    rng = np.random.default_rng(1)
    rows = np.sort(rng.uniform(-1, 1, (4, 15)), axis=1)
    lams = np.array([[0.0, 1e-5], [1e-3, 1.0]])
    batched = effective_df(rows, lams)
    assert batched.shape == (4, 2, 2)
    for p in range(4):
        np.testing.assert_allclose(batched[p], effective_df(rows[p], lams), rtol=1e-13)
    assert isinstance(effective_df(rows[0], 1e-3), float)
    # fewer than three sites: a constant or a line, df = n whatever lambda
    assert effective_df([0.0, 1.0], [0.0, 5.0]).tolist() == [2.0, 2.0]
    assert effective_df([0.5], 1.0) == 1.0


@pytest.mark.parametrize("name", ["chebyshev20", "chebyshev100", "irregular40", "wide7"])
def test_lam_for_df_inverts_effective_df(name):
    sites = SITES[name]
    n = sites.size
    targets = np.array([2.001, 2.5, 3.0, 4.5, n / 2 + 1.3, n - 1, n - 1e-6])
    lams = lam_for_df(sites, targets)
    assert np.all(np.diff(lams) < 0) and np.all(lams > 0)
    np.testing.assert_allclose(effective_df(sites, lams), targets, rtol=1e-12, atol=0)
    assert lam_for_df(sites, n) == 0.0  # df = n: interpolation
    # and the other way round, where df moves with lambda
    back = np.array([1e-6, 1e-4, 1e-2]) if n > 10 else np.array([1e-2, 1.0, 10.0])
    np.testing.assert_allclose(lam_for_df(sites, effective_df(sites, back)), back, rtol=1e-8)


def test_lam_for_df_batches_and_caps_at_the_bound():
    rows = np.stack([make_points(5, 30)[1], make_points(5, 30, "uniform")[1]])
    result = lam_for_df(rows, [3.0, 10.0])
    assert result.shape == (2, 2)
    for p in range(2):
        np.testing.assert_array_equal(result[p], lam_for_df(rows[p], [3.0, 10.0]))
    # Sites 1e50 apart: lambda (units length^3) must pass lam_bound = 1e149 to leave less than
    # 0.78 df above the line's 2; such targets get the bound itself.
    wide = np.array([0.0, 1e50, 2e50, 3.5e50])
    assert lam_bound(wide) == 1e149
    assert 2.77 < effective_df(wide, 1e149) < 2.78
    np.testing.assert_array_equal(lam_for_df(wide, [2 + 1e-9, 2.5]), [1e149, 1e149])
    assert lam_for_df(wide, 3.9) < 1e149


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda: lam_for_df(SITES["chebyshev20"], 2.0), "df"),
        (lambda: lam_for_df(SITES["chebyshev20"], 1.5), "df"),
        (lambda: lam_for_df(SITES["chebyshev20"], 20.5), "df"),
        (lambda: lam_for_df(SITES["chebyshev20"], np.nan), "df"),
        (lambda: lam_for_df([0.0, 1.0], 2.0), "sites"),
        (lambda: lam_for_df([0.0, 2.0, 1.0], 2.5), "sites"),
        (lambda: effective_df(SITES["chebyshev20"], -1e-3), "lam"),
        (lambda: effective_df(SITES["chebyshev20"], np.nan), "lam"),
        (lambda: effective_df([[0.0, 1.0, np.inf]], 1.0), "sites"),
        (lambda: effective_df(np.zeros((2, 2, 2)), 1.0), "sites"),
        (lambda: gcv_scores(SITES["wide7"], np.ones(6)), "values"),
        (lambda: gcv_scores(SITES["wide7"], np.ones(7), [1.0, np.inf]), "lams"),
        (lambda: gcv_scores(SITES["wide7"], np.ones(7), [[1.0]]), "lams"),
        (lambda: choose_lam_gcv(SITES["wide7"], np.ones(7), []), "lams"),
        (lambda: loo_scores([0.0, 1.0], np.ones(2)), "sites"),
    ],
)
def test_bad_arguments_are_refused_by_name(call, argument):
    with pytest.raises(ValueError) as error:
        call()
    assert str(error.value).startswith(argument + " must"), str(error.value)


def brute_gcv(sites, values, lam):
    """GCV of method.md with the explicit smoother: (1/n) ||(I - A)Y||_F^2 / (1 - tr A / n)^2."""
    n = sites.size
    smoother = smoothing_spline_matrix(sites, sites, lam)
    residual = values - smoother @ values
    return np.sum(residual**2) / n / (1 - np.trace(smoother) / n) ** 2


def test_gcv_matches_the_formula_with_explicit_smoothers():
    rng = np.random.default_rng(3)
    sites = np.sort(rng.uniform(-1, 1, (2, 12)), axis=1)
    values = rng.normal(size=(2, 12, 3))
    lams = [1e-6, 1e-4, 1e-3, 1e-2, 1.0, 100.0]
    scores = gcv_scores(sites, values, lams)
    assert scores.shape == (2, 6)
    expected = [[brute_gcv(sites[p], values[p], lam) for lam in lams] for p in range(2)]
    np.testing.assert_allclose(scores, expected, rtol=1e-8)
    # one site set, one value column
    np.testing.assert_allclose(
        gcv_scores(sites[0], values[0, :, 0], lams),
        [brute_gcv(sites[0], values[0, :, :1], lam) for lam in lams],
        rtol=1e-8,
    )
    # lam = 0 (0/0 in the formula) scores the limit lam -> 0+
    limit = gcv_scores(sites, values, [0.0, 1e-13, 1e-11])
    np.testing.assert_allclose(limit[:, 0], limit[:, 1], rtol=1e-6)
    assert np.all(np.abs(limit[:, 0] - limit[:, 2]) > np.abs(limit[:, 0] - limit[:, 1]))


def brute_loo(sites, values, lam, keep_penalty=True):
    """Refit without point i, predict at t_i. The closed form assumes the unnormalised penalty
    n * lam stays fixed: on n - 1 sites that is lam * n / (n - 1) in our convention."""
    n = sites.size
    scale = n / (n - 1) if keep_penalty else 1.0
    total = 0.0
    for i in range(n):
        keep = np.arange(n) != i
        row = smoothing_spline_matrix(sites[keep], sites[i : i + 1], lam * scale)
        total += np.sum((values[i] - row @ values[keep]) ** 2)
    return total / n


def test_loo_closed_form_equals_refits_without_each_point():
    """Validates the hat matrix A = (I + n lam K)^-1 (the diagonal enters the closed form): the
    end points included, whose refits extrapolate linearly, and lam = 0 (interpolation)."""
    rng = np.random.default_rng(4)
    sites = np.sort(rng.uniform(-1, 1, 10))
    values = rng.normal(size=(10, 2))
    lams = [0.0, 1e-6, 1e-4, 1e-3, 1e-2, 1.0]
    expected = [brute_loo(sites, values, lam) for lam in lams]
    np.testing.assert_allclose(loo_scores(sites, values, lams), expected, rtol=1e-8)
    # The refit at the same *normalised* lambda is another smoother: the closed form misses it.
    wrong = [brute_loo(sites, values, lam, keep_penalty=False) for lam in lams[1:]]
    misses = np.abs(loo_scores(sites, values, lams[1:]) / wrong - 1)
    assert misses.max() > 1e-3
    # batched rows agree with one-by-one
    rows = np.stack([sites, np.sort(rng.uniform(-2, 3, 10))])
    data = rng.normal(size=(2, 10, 2))
    batched = loo_scores(rows, data, lams)
    for p in range(2):
        np.testing.assert_allclose(batched[p], loo_scores(rows[p], data[p], lams), rtol=1e-12)


def test_gcv_choice_beats_interpolation_and_oversmoothing():
    """Noisy samples (sigma = 0.2, so noise variance 0.04) of five smooth columns at 60 of 100
    Chebyshev betas, ten seeds. Mean squared error against the noiseless values at the sites,
    averaged over the seeds (measured): lam = 0 0.0392 (the noise itself), GCV's choice 0.00665
    (lambdas 5.6e-6 .. 1e-5), 1000 x that lambda 0.210; the best lambda of the grid in hindsight
    0.00649."""
    betas = make_points(20, 100)[1]
    errors = {"zero": [], "gcv": [], "big": [], "oracle": []}
    for seed in range(10):
        rng = np.random.default_rng(seed)
        sites = betas[np.sort(rng.choice(100, 60, replace=False))]
        k = np.arange(1, 6)
        clean = np.sin(np.pi * k[None, :] * sites[:, None] / 2 + k[None, :])
        noisy = clean + 0.2 * rng.normal(size=clean.shape)
        lam = choose_lam_gcv(sites, noisy)

        def error(lam, sites=sites, noisy=noisy, clean=clean):
            return np.mean((smoothing_spline_matrix(sites, sites, lam) @ noisy - clean) ** 2)

        errors["zero"].append(error(0.0))
        errors["gcv"].append(error(lam))
        errors["big"].append(error(1000 * lam))
        errors["oracle"].append(min(error(x) for x in DEFAULT_LAM_GRID))
    mean = {name: np.mean(values) for name, values in errors.items()}
    assert mean["gcv"] < 0.5 * mean["zero"]
    assert mean["gcv"] < 0.1 * mean["big"]
    assert mean["gcv"] < 1.1 * mean["oracle"]
    assert 0.03 < mean["zero"] < 0.05  # the noise variance: lam = 0 interpolates the noise


def test_choose_lam_gcv_picks_the_grid_minimum():
    rng = np.random.default_rng(5)
    sites = np.sort(rng.uniform(-1, 1, (3, 25)), axis=1)
    values = np.sin(3 * sites)[..., None] + 0.1 * rng.normal(size=(3, 25, 4))
    grid = [1.0, 1e-6, 1e-4, 0.0, 1e-2]  # in any order
    chosen = choose_lam_gcv(sites, values, grid)
    scores = gcv_scores(sites, values, grid)
    np.testing.assert_array_equal(chosen, np.asarray(grid)[np.argmin(scores, axis=1)])
    assert isinstance(choose_lam_gcv(sites[0], values[0], grid), float)
    # exact data on a line: every lambda fits it, GCV is 0 everywhere; ties go to the smallest
    line = 2.0 * sites[0] - 1.0
    assert choose_lam_gcv(sites[0], line, [1e-2, 1e-4, 1.0]) == 1e-4


def test_default_grid():
    grid = DEFAULT_LAM_GRID
    assert grid[0] == 0.0 and grid.size == 74 and np.all(np.diff(grid) > 0)
    assert grid[1] == 1e-16 and grid[-1] == 1e2 and 1e-5 in grid  # whole decades exact
    assert not grid.flags.writeable
    # what it spans for betas in [-1, 1]: interpolation to the line, n up to a few hundred
    for n in (20, 100, 300):
        df = effective_df(make_points(5, n)[1], grid[[1, -1]])
        assert df[0] > n - 1 and df[1] < 2.001


def test_batched_bounds_equal_lam_bound_row_by_row():
    from nercc.coding.splines import lam_bounds

    rng = np.random.default_rng(9)
    for n, span in ((3, 1e-3), (5, 1.0), (50, 2.0), (300, 1e3)):
        rows = np.sort(rng.uniform(0, span, (6, n)), axis=1)
        assert lam_bounds(rows).tolist() == [lam_bound(row) for row in rows]
    assert lam_bounds(np.zeros((2, 2))).tolist() == [np.inf, np.inf]
