"""Points against the closed forms of method.md."""

import numpy as np
import pytest

from nercc.coding import make_points


@pytest.mark.parametrize(("k", "n"), [(1, 2), (2, 3), (7, 10), (20, 100), (8, 20)])
def test_chebyshev_points_match_closed_form(k, n):
    alphas, betas = make_points(k, n, "chebyshev")
    expected_alphas = np.sort(np.cos((2 * np.arange(k) + 1) * np.pi / (2 * k)))
    expected_betas = np.sort(np.cos(np.arange(n) * np.pi / (n - 1)))
    np.testing.assert_allclose(alphas, expected_alphas, rtol=0, atol=1e-15)
    np.testing.assert_allclose(betas, expected_betas, rtol=0, atol=1e-15)
    # Exactly symmetric, with the worker points hitting both ends.
    np.testing.assert_array_equal(alphas, -alphas[::-1])
    np.testing.assert_array_equal(betas, -betas[::-1])
    assert betas[0] == -1.0 and betas[-1] == 1.0
    assert np.all(np.diff(alphas) > 0) and np.all(np.diff(betas) > 0)


@pytest.mark.parametrize(("k", "n"), [(1, 2), (4, 9), (20, 100)])
def test_uniform_points_match_closed_form(k, n):
    alphas, betas = make_points(k, n, "uniform")
    np.testing.assert_allclose(alphas, [-1 + (2 * i + 1) / k for i in range(k)], atol=1e-15)
    np.testing.assert_allclose(betas, [-1 + 2 * i / (n - 1) for i in range(n)], atol=1e-15)
    assert alphas.dtype == betas.dtype == np.float64


def test_single_input_sits_at_zero():
    alphas, _ = make_points(1, 5)
    assert alphas.tolist() == [0.0]
