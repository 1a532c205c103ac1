"""Floater–Hormann interpolants and the FloaterHormann scheme (BACC with a tunable degree d).

References, each independent of the code under test: BACC's Berrut matrices (d = 0 must be BACC),
polynomials evaluated in closed form (an interpolant of degree d reproduces every polynomial of
degree <= d), the barycentric weights written out literally from Floater & Hormann (2007, eq. 18:
w_k = sum_{i in J_k} (-1)^i prod_{j=i, j != k}^{i+d} 1 / (x_k - x_j)), and Lagrange interpolation
through numpy's polyfit where the degree is clamped to the number of nodes less one.
"""

import math
import pickle
import warnings

import numpy as np
import pytest

from nercc.coding import (
    BACC,
    FewAnswersWarning,
    FloaterHormann,
    berrut_matrix,
    floater_hormann_matrix,
    floater_hormann_weights,
    make_points,
)
from tests.unit.coding.patterns import random_patterns


def textbook_weights(nodes, d):
    """Floater & Hormann (2007), eq. (18), literally: signed differences, (-1)^i per window."""
    n = len(nodes) - 1
    weights = []
    for k in range(n + 1):
        total = 0.0
        for i in range(max(0, k - d), min(k, n - d) + 1):  # J_k
            product = 1.0
            for j in range(i, i + d + 1):
                if j != k:
                    product *= 1.0 / (nodes[k] - nodes[j])
            total += (-1) ** i * product
        weights.append(total)
    return np.array(weights)


def polynomial(degree, seed):
    """A random polynomial of exactly ``degree`` and its closed-form values."""
    coefficients = np.random.default_rng(seed).normal(size=degree + 1)
    return lambda z: np.polynomial.polynomial.polyval(z, coefficients)


# -- the interpolant ------------------------------------------------------------------------------
@pytest.mark.parametrize("d", [0, 1, 2, 3, 4])
def test_weights_are_the_textbook_formula(d):
    nodes = np.sort(np.random.default_rng(d).uniform(-1, 1, 7))
    np.testing.assert_allclose(
        floater_hormann_weights(nodes, d), textbook_weights(nodes, d), rtol=1e-12, atol=0
    )


def test_small_case_by_hand():
    """Nodes 0, 1, 3 and d = 1: windows {0, 1} and {1, 2}; eq. (18) gives w = (-1, 3/2, -1/2)."""
    np.testing.assert_allclose(floater_hormann_weights([0.0, 1.0, 3.0], 1), [-1.0, 1.5, -0.5])
    np.testing.assert_array_equal(floater_hormann_weights([0.0, 1.0, 3.0], 0), [1.0, -1.0, 1.0])


@pytest.mark.parametrize("layout", ["chebyshev", "uniform"])
def test_degree_zero_is_berrut(layout):
    alphas, betas = make_points(7, 23, layout)
    np.testing.assert_allclose(
        floater_hormann_matrix(alphas, betas, 0), berrut_matrix(alphas, betas), rtol=0, atol=1e-12
    )
    np.testing.assert_allclose(
        floater_hormann_matrix(betas, alphas, 0), berrut_matrix(betas, alphas), rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("d", [0, 1, 2, 3, 5])
@pytest.mark.parametrize("extra", [4, 10])
def test_polynomials_of_degree_up_to_d_are_reproduced(d, extra):
    count = d + 1 + extra  # n - d = extra nodes beyond one window: even (see below)
    rng = np.random.default_rng(10 * d + count)
    nodes = np.sort(rng.uniform(-1, 1, count))
    targets = np.concatenate([rng.uniform(nodes[0], nodes[-1], 40), nodes[[0, 2]]])  # two hits
    matrix = floater_hormann_matrix(nodes, targets, d)
    for degree in range(d + 1):
        p = polynomial(degree, seed=degree)
        exact = p(targets)
        scale = np.max(np.abs(exact))
        np.testing.assert_allclose(matrix @ p(nodes), exact, rtol=0, atol=1e-10 * scale)
    # and not one degree more: with n - d even (n + 1 nodes), degree d + 1 is not reproduced
    # (with n - d odd it can be: Berrut on an even number of nodes reproduces lines)
    p = polynomial(d + 1, seed=99)
    assert np.max(np.abs(matrix @ p(nodes) - p(targets))) > 1e-6


def test_a_degree_beyond_the_nodes_is_clamped_to_polynomial_interpolation():
    nodes = np.array([-0.9, -0.2, 0.4, 0.8])
    targets = np.linspace(-1, 1, 9)
    values = np.random.default_rng(0).normal(size=4)
    lagrange = np.polynomial.polynomial.polyval(
        targets, np.polynomial.polynomial.polyfit(nodes, values, 3)
    )
    for d in (3, 4, 10):
        np.testing.assert_allclose(
            floater_hormann_matrix(nodes, targets, d) @ values, lagrange, rtol=0, atol=1e-12
        )


def test_rows_interpolate_and_sum_to_one():
    nodes = np.sort(np.random.default_rng(1).uniform(-1, 1, 9))
    matrix = floater_hormann_matrix(nodes, nodes, 3)
    np.testing.assert_array_equal(matrix, np.eye(9))
    rows = floater_hormann_matrix(nodes, np.linspace(-1, 1, 17), 3).sum(axis=1)
    np.testing.assert_allclose(rows, 1.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: floater_hormann_matrix([0.0, 1.0], [0.5], -1), "d must be an integer >= 0"),
        (lambda: floater_hormann_matrix([0.0, 1.0], [0.5], 1.5), "d must be an integer >= 0"),
        (lambda: floater_hormann_matrix([1.0, 0.0], [0.5], 1), "nodes must be strictly"),
        (lambda: floater_hormann_weights([0.0, 1.0], True), "d must be an integer >= 0"),
    ],
)
def test_bad_arguments_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# -- the scheme -----------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["chebyshev", "uniform"])
def test_the_scheme_of_degree_zero_is_bacc(layout):
    fh, bacc = FloaterHormann(8, 30, points=layout, d=0), BACC(8, 30, points=layout)
    np.testing.assert_allclose(fh.encoder_matrix(), bacc.encoder_matrix(), rtol=0, atol=1e-12)
    masks = np.concatenate([random_patterns(30, s, 4, seed=s) for s in (0, 3, 11, 25)])
    np.testing.assert_allclose(
        fh.decoder_matrices(masks), bacc.decoder_matrices(masks), rtol=0, atol=1e-12
    )
    assert FloaterHormann(8, 30).params() == {"d": 0.0}  # the default: BACC


@pytest.mark.parametrize("d", [1, 2, 3])
def test_the_matrices_are_the_interpolants_on_the_points(d):
    scheme = FloaterHormann(6, 20, d=d)
    np.testing.assert_allclose(
        scheme.encoder_matrix(), floater_hormann_matrix(scheme.alphas, scheme.betas, d)
    )
    mask = random_patterns(20, 5, 1, seed=d)[0]
    decoder = scheme.decoder_matrix(mask)
    np.testing.assert_array_equal(decoder[:, ~mask], 0.0)
    # the answering betas re-indexed in ascending order, as BACC's decoder does
    np.testing.assert_allclose(
        decoder[:, mask], floater_hormann_matrix(scheme.betas[mask], scheme.alphas, d)
    )


@pytest.mark.parametrize("layout", ["chebyshev", "uniform"])
@pytest.mark.parametrize("d", [0, 1, 2, 3, 4])
def test_decode_of_encoded_polynomials_is_exact_at_full_availability(layout, d):
    """Inputs on polynomials of degree <= d in alpha and an affine f: the encoder reproduces them
    at the betas, f keeps the degree, and the decoder reproduces f's outputs at the alphas."""
    scheme = FloaterHormann(9, 31, points=layout, d=d)
    columns = [polynomial(degree, seed=degree)(scheme.alphas) for degree in range(d + 1)]
    inputs = np.stack(columns, axis=1)  # (K, d + 1)
    weight, bias = np.random.default_rng(d).normal(size=(d + 1, 3)), 0.5
    f = lambda x: x @ weight + bias  # noqa: E731
    estimates = scheme.decode(f(scheme.encode(inputs)), np.ones(31, dtype=bool))
    expected = f(inputs)
    np.testing.assert_allclose(estimates, expected, rtol=0, atol=1e-10 * np.max(np.abs(expected)))


def test_few_nodes_clamp_the_degree_on_each_side():
    """K = 3 alphas with d = 5: the encoder is the quadratic through them; a pattern with two
    answers is decoded by the line through them."""
    scheme = FloaterHormann(3, 12, d=5)
    np.testing.assert_allclose(
        scheme.encoder_matrix(), floater_hormann_matrix(scheme.alphas, scheme.betas, 2)
    )
    mask = np.zeros(12, dtype=bool)
    mask[[2, 9]] = True
    decoder = scheme.decoder_matrix(mask)
    x0, x1 = scheme.betas[mask]
    line = np.stack([(x1 - scheme.alphas) / (x1 - x0), (scheme.alphas - x0) / (x1 - x0)], axis=1)
    np.testing.assert_allclose(decoder[:, mask], line, rtol=0, atol=1e-12)


def test_fewer_answers_than_inputs_warn_like_bacc():
    scheme = FloaterHormann(4, 10, d=2)
    outputs = np.random.default_rng(0).normal(size=(10, 3))
    few = np.zeros(10, dtype=bool)
    few[:3] = True
    with pytest.warns(FewAnswersWarning, match="only 3 of the N=10 workers answered"):
        scheme.decode(outputs, few)
    assert scheme.underdetermined(few) and not scheme.lost(few).any()
    enough = np.zeros(10, dtype=bool)
    enough[:4] = True
    with warnings.catch_warnings():
        warnings.simplefilter("error", FewAnswersWarning)
        scheme.decode(outputs, enough)


def test_pickling_keeps_the_scheme_and_starts_empty_caches():
    scheme = FloaterHormann(5, 14, points="uniform", d=3)
    masks = random_patterns(14, 4, 3)
    decoders = scheme.decoder_matrices(masks)
    other = pickle.loads(pickle.dumps(scheme))
    assert (
        repr(other)
        == repr(scheme)
        == ("FloaterHormann(num_inputs=5, num_workers=14, points='uniform', d=3)")
    )
    assert other.decoder_key() == scheme.decoder_key() and other.params() == {"d": 3.0}
    assert len(other.decoder_cache) == 0 and len(scheme.decoder_cache) == 3
    np.testing.assert_array_equal(other.decoder_matrices(masks), decoders)
    np.testing.assert_array_equal(other.encoder_matrix(), scheme.encoder_matrix())


def test_params_rebuild_the_scheme_and_the_degree_keys_the_decoder():
    scheme = FloaterHormann(6, 18, d=2)
    again = FloaterHormann(6, 18, **scheme.params())  # d = 2.0, as a table stores it
    assert again.d == 2 and type(again.d) is int and repr(again) == repr(scheme)
    keys = {FloaterHormann(6, 18, d=d).decoder_key() for d in range(4)}
    assert len(keys) == 4 and BACC(6, 18).decoder_key() not in keys
    outputs = np.random.default_rng(2).normal(size=(3, 18, 2))
    masks = random_patterns(18, 5, 3)
    _, params = scheme.decode_each_with_params(outputs, masks)
    assert list(params) == ["d"] and params["d"].tolist() == [2.0, 2.0, 2.0]


@pytest.mark.parametrize("bad", [-1, 1.5, math.nan, True, "2", None])
def test_a_bad_degree_is_refused_naming_it(bad):
    with pytest.raises(ValueError, match="d must be an integer >= 0"):
        FloaterHormann(4, 10, d=bad)


# -- the declaration ----------------------------------------------------------------------------
def test_the_degree_is_declared_as_a_tunable():
    (d,) = FloaterHormann.tunables
    assert (d.name, d.side, d.integer, d.log) == ("d", "both", True, False)
    assert (d.low, d.high, d.search, d.grid) == (0, math.inf, (0, 10), (0, 1, 2, 3, 4))
    assert d.per_pattern == "never" and d.alternative_of is None and d.choices == ()
    assert d.auto and FloaterHormann(6, 18).auto_candidates("d") == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert FloaterHormann.reported == ("d",) and not FloaterHormann.loses_inputs
    assert FloaterHormann.settings() == ("d",)


def test_the_degree_accepts_whole_numbers_only():
    d = FloaterHormann.tunable("d")
    assert all(d.accepts(v) for v in (0, 3, 2.0, 100))
    assert not any(d.accepts(v) for v in (-1, 1.5, math.nan, True, "2"))
    for value in (0, 3, 2.0):
        FloaterHormann(6, 18, d=value)
