"""Very large smoothing parameters: accepted up to ``lam_bound`` of the sites, refused beyond.

Reference: as lambda -> inf the smoothing spline tends to the weighted least-squares line, whose
operator ``Z (X^T W X)^-1 X^T W`` (X = [1, t] at the sites, Z = [1, z] at the targets) is built
here independently of the spline code. The bound's measurement is written down in
``nercc/coding/splines.py``; the last tests repeat its two failure points (overflow to NaN, and
silent underflow of small data) just past the ceiling, so that a looser bound would be noticed.
"""

import math

import numpy as np
import pytest

from nercc.coding import NeRCC, lam_bound, make_points, smoothing_spline_matrix
from nercc.coding.splines import smoothing_spline_matrices, smoothing_spline_values


def line_operator(sites, targets, weights=None):
    weights = np.ones_like(sites) if weights is None else np.asarray(weights)
    x = np.stack([np.ones_like(sites), sites], axis=1)
    z = np.stack([np.ones_like(targets), targets], axis=1)
    return z @ np.linalg.solve(x.T @ (weights[:, None] * x), (weights[:, None] * x).T)


def penalty_scale(sites, weights=None):
    """P of splines.py, written out: sum(w) / min(w) * max(1, max interior |Q|)^2."""
    weights = np.ones_like(sites) if weights is None else np.asarray(weights)
    h = np.diff(sites)
    return weights.sum() / weights.min() * max(1.0, np.max(1 / h[:-1] + 1 / h[1:])) ** 2


def test_bound_by_hand():
    # Three sites a unit apart: P = 3 * (1 + 1)^2 = 12, 1e150 / 12 = 8.3e148 -> 1e148.
    assert lam_bound([0.0, 1.0, 2.0]) == 1e148
    # Weights: P = 4 / 0.5 * 4 = 32 -> 1e150 / 32 = 3.1e148 -> 1e148; heavier spread -> 1e146.
    assert lam_bound([0.0, 1.0, 2.0], [0.5, 1.0, 2.5]) == 1e148
    assert lam_bound([0.0, 1.0, 2.0], [0.01, 1.0, 2.0]) == 1e146
    # Gaps of 1e-3: P = 3 * 2000^2 = 1.2e7 -> 1e142. Wide gaps: max(1, .) keeps P = 3.
    assert lam_bound([0.0, 1e-3, 2e-3]) == 1e142
    assert lam_bound([0.0, 1e3, 2e3]) == 1e149
    # Fewer than three sites: a constant or a line whatever lambda.
    assert lam_bound([0.3]) == math.inf and lam_bound([0.0, 1.0]) == math.inf


@pytest.mark.parametrize(("num_inputs", "num_workers"), [(8, 20), (20, 60), (20, 100)])
def test_nercc_bounds_follow_the_formula(num_inputs, num_workers):
    alphas, betas = make_points(num_inputs, num_workers, "chebyshev")
    for sites in (alphas, betas):
        bound = lam_bound(sites)
        exponent = math.floor(150 - math.log10(penalty_scale(sites)))
        assert bound == float(f"1e{exponent}")
        assert 1e130 < bound < 1e150  # far beyond the line limit (~1e13), far below overflow


def test_any_pattern_allows_at_least_the_full_set():
    """The decoder's bound uses all the betas: every subset of them allows as much or more."""
    _, betas = make_points(20, 100, "chebyshev")
    rng = np.random.default_rng(0)
    for _ in range(200):
        mask = rng.random(100) < rng.uniform(0.05, 1.0)
        if mask.sum() >= 3:
            assert lam_bound(betas[mask]) >= lam_bound(betas)
            assert penalty_scale(betas[mask]) <= penalty_scale(betas)


def test_nercc_at_its_bounds_is_the_least_squares_line():
    scheme = NeRCC(20, 100)
    lam_enc, lam_dec = lam_bound(scheme.alphas), lam_bound(scheme.betas)
    assert (lam_enc, lam_dec) == (1e145, 1e141)
    big = NeRCC(20, 100, lam_enc=lam_enc, lam_dec=lam_dec)
    encoder = big.encoder_matrix()
    assert np.all(np.isfinite(encoder))
    np.testing.assert_allclose(encoder, line_operator(big.alphas, big.betas), rtol=0, atol=1e-12)
    rng = np.random.default_rng(1)
    masks = rng.random((6, 100)) < 0.6
    decoders = big.decoder_matrices(masks)
    assert np.all(np.isfinite(decoders))
    for mask, decoder in zip(masks, decoders, strict=True):
        np.testing.assert_allclose(
            decoder[:, mask], line_operator(big.betas[mask], big.alphas), rtol=0, atol=1e-11
        )
        assert np.all(decoder[:, ~mask] == 0)
    # Fitting values directly (the evaluation's path), with data as small as 1e-100.
    outputs = rng.normal(size=(6, 100, 3)) * 1e-100
    estimates = big.decode_each(outputs, masks)
    reference = decoders @ outputs
    np.testing.assert_allclose(estimates, reference, rtol=0, atol=1e-110)


@pytest.mark.parametrize("lam", [1e13, 1e40, 1e100, "bound"])
def test_large_lambdas_on_random_sites_are_finite_and_linear(lam):
    rng = np.random.default_rng(5)
    sites = np.linspace(-1.0, 1.0, 40) + rng.uniform(-0.01, 0.01, 40)
    weights = rng.uniform(0.5, 2.0, 40)
    if lam == "bound":
        lam = lam_bound(sites, weights)
    targets = np.linspace(-1.5, 1.5, 13)
    matrix = smoothing_spline_matrix(sites, targets, lam, weights)
    assert np.all(np.isfinite(matrix))
    np.testing.assert_allclose(matrix, line_operator(sites, targets, weights), rtol=0, atol=1e-12)


def test_convergence_to_the_line_is_first_order_then_flat():
    """The distance to the line falls like 1/lambda, reaches rounding, and stays there."""
    alphas, betas = make_points(20, 60, "chebyshev")
    line = line_operator(betas, alphas)
    distance = {
        lam: np.abs(smoothing_spline_matrix(betas, alphas, lam) - line).max()
        for lam in (1e2, 1e4, 1e6, 1e14, 1e60, 1e142)
    }
    assert 80 < distance[1e2] / distance[1e4] < 120
    assert 80 < distance[1e4] / distance[1e6] < 120
    assert max(distance[1e14], distance[1e60], distance[1e142]) < 1e-12


BEYOND = [
    (lambda: NeRCC(20, 100, lam_dec=1e300), "lam_dec", "[0, 1e+141]", "got 1e+300"),
    (lambda: NeRCC(20, 100, lam_dec=1e142), "lam_dec", "[0, 1e+141]", "got 1e+142"),
    (lambda: NeRCC(20, 100, lam_enc=1e146), "lam_enc", "[0, 1e+145]", "got 1e+146"),
    (lambda: NeRCC(20, 100, lam_enc=math.inf), "lam_enc", "[0, 1e+145]", "got inf"),
    (lambda: NeRCC(20, 100, lam_dec=math.nan), "lam_dec", "[0, 1e+141]", "got nan"),
    # Negative values keep the plain message (they are not a question of range).
    (lambda: NeRCC(20, 100, lam_dec=-math.inf), "lam_dec", ">= 0", "got -inf"),
    (lambda: NeRCC(20, 100, lam_dec=-1.0), "lam_dec", ">= 0, got -1.0", "got -1.0"),
    (lambda: smoothing_spline_matrix([0, 1, 2], [0.5], 1e300), "lam", "[0, 1e+148]", "1e+300"),
    (lambda: smoothing_spline_matrix([0, 1, 2], [0.5], math.inf), "lam", "[0, 1e+148]", "inf"),
    (
        lambda: smoothing_spline_matrix([0, 1, 2], [0.5], 1e147, [0.01, 1, 2]),
        "lam",
        "[0, 1e+146]",
        "got 1e+147",
    ),
    # Two sites: any finite lambda is fine, a non-finite one still is not.
    (lambda: smoothing_spline_matrix([0, 1], [0.5], math.nan), "lam", ">= 0", "nan"),
    (lambda: NeRCC(2, 5, lam_enc=math.inf), "lam_enc", ">= 0", "inf"),
]


@pytest.mark.parametrize(("call", "argument", "allowed", "got"), BEYOND)
def test_beyond_the_bound_is_refused_with_the_range(call, argument, allowed, got):
    with pytest.raises(ValueError) as error:
        call()
    message = str(error.value)
    assert message.startswith(argument + " must be a finite number"), message
    assert allowed in message and got in message, message


def test_at_the_bound_is_accepted():
    assert NeRCC(20, 100, lam_enc=1e145, lam_dec=1e141).params() == {
        "lam_enc": 1e145,
        "lam_dec": 1e141,
    }
    assert NeRCC(2, 5, lam_enc=1e300).lam_enc == 1e300  # two alphas: a line whatever lambda
    smoothing_spline_matrix([0.0, 1.0, 2.0], [0.5], 1e148)


def test_past_the_ceiling_the_solve_really_fails():
    """Why the bound: NaN once lambda * P passes the largest double, and before that, silent
    garbage for small data (the second derivatives underflow). Both are avoided at the bound."""
    alphas, betas = make_points(20, 100, "chebyshev")
    p = penalty_scale(betas)
    with np.errstate(all="ignore"):
        # lam * P = 1e309, past the largest double
        overflowing = smoothing_spline_matrices(betas[None], alphas, 1e308 / p * 10)
    assert not np.all(np.isfinite(overflowing))
    rng = np.random.default_rng(2)
    values = rng.normal(size=(1, 100, 1)) * 1e-60
    line = line_operator(betas, alphas) @ values[0, :, 0]
    for scaled, good in ((1e280, False), (p * lam_bound(betas), True)):
        fitted = smoothing_spline_values(betas[None], values, alphas, scaled / p)[0, :, 0]
        assert np.all(np.isfinite(fitted))
        error = np.abs(fitted - line).max() / np.abs(values).max()
        assert (error < 1e-10) == good, (scaled, error)
