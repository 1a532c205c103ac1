"""Smoothing-spline operators against independent references.

References and tolerances:
- scipy.interpolate.make_smoothing_spline (unnormalised data term: its lam = ours * sum(weights)),
  inside the knot range: agreement to 1e-8 relative to the data scale (scipy solves its own banded
  system; differences are rounding, growing with lam's conditioning).
- scipy.interpolate.CubicSpline(bc_type="natural") for lam = 0, inside the range: 1e-10.
- np.polyfit (weighted least-squares line) for lam -> inf: 1e-6.
- Outside the knot range the natural spline is linear, continuing the end piece: compared with the
  value and slope of scipy's spline at the end knot (scipy itself extrapolates with the cubic).
"""

import numpy as np
import pytest
from scipy.interpolate import CubicSpline, make_smoothing_spline

from nercc.coding import smoothing_spline_matrix


def random_problem(n, seed):
    rng = np.random.default_rng(seed)
    sites = np.sort(rng.uniform(-1.0, 1.0, n))
    values = rng.normal(size=n)
    return sites, values


@pytest.mark.parametrize("n", [5, 6, 13, 40])
@pytest.mark.parametrize("lam", [1e-7, 1e-4, 1e-2, 1.0])
def test_matches_scipy_inside_range(n, lam):
    sites, values = random_problem(n, seed=n)
    targets = np.linspace(sites[0], sites[-1], 57)
    ours = smoothing_spline_matrix(sites, targets, lam) @ values
    reference = make_smoothing_spline(sites, values, lam=lam * n)(targets)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-8)


def test_lambda_convention_is_mean_normalised():
    """Using scipy's lam unscaled must disagree: the factor n is really there."""
    sites, values = random_problem(20, seed=3)
    targets = np.linspace(sites[0], sites[-1], 11)
    ours = smoothing_spline_matrix(sites, targets, 1e-3) @ values
    unscaled = make_smoothing_spline(sites, values, lam=1e-3)(targets)
    assert np.max(np.abs(ours - unscaled)) > 1e-2


@pytest.mark.parametrize("lam", [1e-5, 1e-3, 0.1])
def test_weights_match_scipy(lam):
    sites, values = random_problem(25, seed=7)
    weights = np.random.default_rng(8).uniform(0.2, 3.0, sites.size)
    targets = np.linspace(sites[0], sites[-1], 31)
    ours = smoothing_spline_matrix(sites, targets, lam, weights) @ values
    reference = make_smoothing_spline(sites, values, w=weights, lam=lam * weights.sum())(targets)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-8)


@pytest.mark.parametrize("lam", [0.0, 1e-5, 1e-2])
def test_linear_beyond_the_end_knots(lam):
    sites, values = random_problem(12, seed=11)
    spline = (
        CubicSpline(sites, values, bc_type="natural")
        if lam == 0
        else make_smoothing_spline(sites, values, lam=lam * sites.size)
    )
    slope = spline.derivative()
    below = sites[0] - np.array([0.05, 0.4, 1.5])
    above = sites[-1] + np.array([0.01, 0.3, 2.0])
    ours = smoothing_spline_matrix(sites, np.concatenate([below, above]), lam) @ values
    expected = np.concatenate(
        [
            spline(sites[0]) + (below - sites[0]) * slope(sites[0]),
            spline(sites[-1]) + (above - sites[-1]) * slope(sites[-1]),
        ]
    )
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-8)
    # scipy's own (cubic) extrapolation is not what NeRCC uses: the test would notice it.
    assert np.max(np.abs(spline(np.concatenate([below, above])) - expected)) > 1e-3


def test_zero_lambda_is_the_natural_interpolating_spline():
    sites, values = random_problem(15, seed=5)
    np.testing.assert_allclose(smoothing_spline_matrix(sites, sites, 0.0), np.eye(15), atol=1e-13)
    targets = np.linspace(sites[0], sites[-1], 101)
    reference = CubicSpline(sites, values, bc_type="natural")(targets)
    ours = smoothing_spline_matrix(sites, targets, 0.0) @ values
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-10)


def test_large_lambda_tends_to_least_squares_line():
    sites, values = random_problem(30, seed=9)
    weights = np.random.default_rng(1).uniform(0.5, 2.0, 30)
    targets = np.array([-3.0, -1.0, 0.0, 0.5, 1.0, 2.5])
    ours = smoothing_spline_matrix(sites, targets, 1e10, weights) @ values
    line = np.polyfit(sites, values, 1, w=np.sqrt(weights))
    np.testing.assert_allclose(ours, np.polyval(line, targets), rtol=0, atol=1e-6)


@pytest.mark.parametrize("lam", [0.0, 1e-6, 1e-2, 10.0])
@pytest.mark.parametrize("n", [1, 2, 3, 4, 9])
def test_rows_sum_to_one_and_lines_are_reproduced(n, lam):
    sites, _ = random_problem(n, seed=n + 100)
    targets = np.linspace(-2.0, 2.0, 23)
    matrix = smoothing_spline_matrix(sites, targets, lam)
    assert matrix.shape == (23, n) and matrix.dtype == np.float64
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-12)
    if n >= 2:
        np.testing.assert_allclose(matrix @ (0.3 - 2.0 * sites), 0.3 - 2.0 * targets, atol=1e-11)


def test_degenerate_sizes():
    np.testing.assert_array_equal(smoothing_spline_matrix([0.2], [-1.0, 0.0, 3.0], 1.0), [[1]] * 3)
    # Two sites: the straight line through them, whatever lam.
    matrix = smoothing_spline_matrix([-0.5, 0.5], [-1.0, 0.0, 1.5], 5.0)
    np.testing.assert_allclose(matrix @ [1.0, 3.0], [0.0, 2.0, 5.0], atol=1e-14)


def test_banded_solve_scales_to_many_sites():
    """A large problem still agrees with scipy (no dense n x n inverse is formed). The sites are a
    jittered grid: uniform random sites of this size come closer than 1e-6 and make every
    solver, scipy's included, lose digits."""
    rng = np.random.default_rng(12)
    sites = np.linspace(-1.0, 1.0, 2000) + rng.uniform(-2e-4, 2e-4, 2000)
    values = np.sin(3 * sites) + rng.normal(scale=0.1, size=2000)
    targets = np.linspace(sites[0], sites[-1], 40)
    ours = smoothing_spline_matrix(sites, targets, 1e-5) @ values
    reference = make_smoothing_spline(sites, values, lam=1e-5 * sites.size)(targets)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-8)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 30])
@pytest.mark.parametrize("lam", [0.0, 1e-4, 1.0])
def test_fitting_values_equals_applying_the_operator(n, lam):
    from nercc.coding.splines import smoothing_spline_matrices, smoothing_spline_values

    rng = np.random.default_rng(n)
    sites = np.sort(rng.uniform(-1, 1, (4, n)), axis=1)
    values = rng.normal(size=(4, n, 3))
    weights = rng.uniform(0.5, 2.0, (4, n))
    targets = np.linspace(-1.5, 1.5, 9)
    operators = smoothing_spline_matrices(sites, targets, lam, weights)
    fitted = smoothing_spline_values(sites, values, targets, lam, weights)
    np.testing.assert_allclose(fitted, operators @ values, rtol=0, atol=1e-10)


def scipy_df(sites, lam, weights=None):
    """The trace of the hat matrix from scipy, one unit vector at a time: sum_i u_i(t_i), u_i the
    smoothing spline through e_i (an independent reference)."""
    w = np.ones_like(sites) if weights is None else weights
    eye = np.eye(sites.size)
    return sum(
        make_smoothing_spline(sites, eye[i], w=w, lam=lam * w.sum())(sites[i])
        for i in range(sites.size)
    )


@pytest.mark.parametrize("n", [5, 6, 11, 40])
@pytest.mark.parametrize("lam", [1e-7, 1e-4, 1e-2, 1.0])
def test_degrees_of_freedom_match_scipys_hat_matrix(n, lam):
    """smoothing_spline_df (a banded factor) against scipy's fits of the n unit vectors (scipy
    needs n >= 5; 3 and 4 sites are checked against the spectrum in test_nercc_df_gcv): 1e-7
    absolute (scipy's own solves lose digits with lam's conditioning), with and without
    weights; it also equals the trace of our dense operator to 1e-9 (random sites as close as these
    cost both banded solves digits)."""
    from nercc.coding.splines import smoothing_spline_df, smoothing_spline_matrices

    rng = np.random.default_rng(n)
    sites = np.sort(rng.uniform(-1.0, 1.0, (3, n)), axis=1)
    weights = rng.uniform(0.3, 3.0, (3, n))
    ours = smoothing_spline_df(sites, lam)
    weighted = smoothing_spline_df(sites, np.array([lam, 2 * lam, 3 * lam]), weights)
    for row in range(3):
        assert ours[row] == pytest.approx(scipy_df(sites[row], lam), rel=0, abs=1e-7)
        reference = scipy_df(sites[row], (row + 1) * lam, weights[row])
        assert weighted[row] == pytest.approx(reference, rel=0, abs=1e-7)
    dense = np.trace(smoothing_spline_matrices(sites, sites, lam), axis1=1, axis2=2)
    np.testing.assert_allclose(ours, dense, rtol=0, atol=1e-9)
    assert np.all((2.0 < ours) & (ours < n))


def test_degrees_of_freedom_at_the_ends_and_per_fit():
    """lam = 0 and n <= 2 give n exactly; large lambdas tend to 2 (the line); fits batched with
    a lambda each give what each gives alone."""
    from nercc.coding import splines

    rng = np.random.default_rng(5)
    sites = np.sort(rng.uniform(-1.0, 1.0, (7, 9)), axis=1)
    np.testing.assert_array_equal(splines.smoothing_spline_df(sites, 0.0), np.full(7, 9.0))
    np.testing.assert_array_equal(splines.smoothing_spline_df(sites[:, :2], 5.0), np.full(7, 2.0))
    np.testing.assert_allclose(splines.smoothing_spline_df(sites, 1e12), 2.0, atol=1e-9)
    lams = np.geomspace(1e-6, 1e2, 7)
    batched = splines.smoothing_spline_df(sites, lams)
    alone = [splines.smoothing_spline_df(sites[i : i + 1], lams[i])[0] for i in range(7)]
    np.testing.assert_allclose(batched, alone, rtol=1e-14)
    assert np.all(np.diff(batched[np.argsort(lams)]) != 0)
