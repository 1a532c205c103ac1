"""Berrut's interpolant against a direct scalar evaluation of its formula."""

import numpy as np
import pytest

from nercc.coding import berrut_matrix


def berrut_reference(nodes, values, z):
    """r(z) = sum_j (-1)^j v_j / (z - p_j) / sum_j (-1)^j / (z - p_j), one point at a time."""
    for j, p in enumerate(nodes):
        if z == p:
            return values[j]
    pairs = enumerate(zip(nodes, values, strict=True))
    numerator = sum((-1) ** j * v / (z - p) for j, (p, v) in pairs)
    denominator = sum((-1) ** j / (z - p) for j, p in enumerate(nodes))
    return numerator / denominator


@pytest.mark.parametrize("m", [1, 2, 5, 16, 33])
def test_matches_scalar_formula(m):
    rng = np.random.default_rng(m)
    nodes = np.sort(rng.uniform(-1, 1, m))
    values = rng.normal(size=m)
    targets = np.concatenate([rng.uniform(-1.5, 1.5, 40), nodes[: min(m, 3)]])
    expected = [berrut_reference(nodes, values, z) for z in targets]
    np.testing.assert_allclose(
        berrut_matrix(nodes, targets) @ values, expected, rtol=1e-12, atol=1e-12
    )


def test_exact_at_nodes_and_rows_sum_to_one():
    nodes = np.sort(np.random.default_rng(0).uniform(-1, 1, 12))
    np.testing.assert_array_equal(berrut_matrix(nodes, nodes), np.eye(12))
    rows = berrut_matrix(nodes, np.linspace(-2, 2, 50))
    np.testing.assert_allclose(rows.sum(axis=1), 1.0, atol=1e-12)


def test_sign_alternates_by_position():
    """Hand-computed: nodes (-1, 0, 1), z = 0.5 gives weights (-1/3, 2, 2) / (11/3)."""
    z = 0.5
    terms = np.array([1 / (z + 1), -1 / z, 1 / (z - 1)])
    np.testing.assert_allclose(berrut_matrix([-1.0, 0.0, 1.0], [z])[0], terms / terms.sum())


def test_lines_reproduced_only_for_an_even_number_of_nodes():
    """sum_j w_j(z) p_j = z - sum_j (-1)^j / sum_j (-1)^j/(z-p_j): exact iff the signs cancel."""
    rng = np.random.default_rng(4)
    targets = np.linspace(-0.9, 0.9, 9)
    even = np.sort(rng.uniform(-1, 1, 10))
    odd = np.sort(rng.uniform(-1, 1, 11))
    np.testing.assert_allclose(berrut_matrix(even, targets) @ even, targets, atol=1e-12)
    assert np.max(np.abs(berrut_matrix(odd, targets) @ odd - targets)) > 1e-3
