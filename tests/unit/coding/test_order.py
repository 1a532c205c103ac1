"""Orders and groupings of the inputs (nercc.coding.order): permutations that restore the inputs
exactly, deterministic, the best order recovered where it is known, and smoother curves."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from nercc.coding import NeRCC
from nercc.coding.order import (
    GROUPINGS,
    ORDERS,
    arrange,
    neighbour_cost,
    order_groups,
    principal_direction,
)


def curve_points(t: np.ndarray, dims: int = 12) -> np.ndarray:
    """Points c(t) on a smooth curve in ``dims`` dimensions, t in [0, 1]."""
    freqs = np.arange(1, dims + 1)[None, :] / dims
    return np.cos(np.pi * 0.9 * freqs * t[:, None]) + 2.0 * t[:, None]


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    t = rng.random(37)
    return t, curve_points(t)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("grouping", GROUPINGS)
def test_every_input_sits_in_exactly_one_real_slot_and_padding_copies_its_group(
    batch, order, grouping
):
    t, x = batch
    direction = principal_direction(x)
    take, real = arrange(x, 5, order, grouping, direction)
    assert take.shape == real.shape == (40,)  # 37 inputs: 8 groups of 5, 3 padding slots
    assert sorted(take[real]) == list(range(37))
    assert (~real).sum() == 3
    # the inverse permutation restores the inputs in their order exactly (an identity f)
    restored = np.empty_like(x)
    restored[take[real]] = x[take][real]
    np.testing.assert_array_equal(restored, x)
    if order == "none" and grouping == "arrival":
        return  # the evaluation's old padding: the batch's first inputs
    # padding copies an input of its own group
    groups = take.reshape(8, 5)
    for row, flags in zip(groups, real.reshape(8, 5), strict=True):
        assert set(row[~flags]) <= set(row[flags])


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("grouping", GROUPINGS)
def test_an_arrangement_is_a_function_of_the_inputs(batch, order, grouping):
    _, x = batch
    direction = principal_direction(x)
    first = arrange(x, 5, order, grouping, direction)
    again = arrange(x.copy(), 5, order, grouping, (direction[0].copy(), direction[1].copy()))
    np.testing.assert_array_equal(first.take, again.take)
    np.testing.assert_array_equal(first.real, again.real)


def test_none_and_arrival_is_the_evaluations_old_grouping():
    x = np.random.default_rng(1).random((23, 4))
    take, real = arrange(x, 5)
    np.testing.assert_array_equal(take, np.arange(25) % 23)
    np.testing.assert_array_equal(real, np.arange(25) < 23)


@pytest.mark.parametrize("order", ["pc1", "spectral", "path"])
def test_inputs_on_a_curve_come_back_in_curve_order(order):
    """Inputs at shuffled t on a smooth curve: each order recovers t's order (or its reverse,
    for the orders that have no direction), and the within-group roughness is the least."""
    rng = np.random.default_rng(2)
    t = rng.random((30, 8))  # 30 groups of 8
    x = np.stack([curve_points(row) for row in t])  # (30, 8, 12)
    direction = principal_direction(x.reshape(-1, 12))
    key = ((x - direction[0]) @ direction[1]) if order == "pc1" else None
    perm = order_groups(x, order, key)
    by_t = np.argsort(t, axis=1)
    for got, want in zip(perm, by_t, strict=True):
        assert list(got) == list(want) or list(got) == list(want[::-1])
    best = neighbour_cost(x, by_t)
    np.testing.assert_allclose(neighbour_cost(x, perm), best, rtol=1e-12)
    assert (neighbour_cost(x, np.broadcast_to(np.arange(8), (30, 8))) > best).all()


def test_path_is_the_shortest_open_path_on_small_groups():
    """Against brute force over every order of 6 random inputs (2-opt is a local search: on
    these it reaches the optimum in most groups, never worse than the spectral order)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 6, 3))
    path = neighbour_cost(x, order_groups(x, "path"))
    spectral = neighbour_cost(x, order_groups(x, "spectral"))
    every = np.array(list(itertools.permutations(range(6))))
    optimum = np.array([neighbour_cost(np.repeat(g[None], len(every), 0), every).min() for g in x])
    assert (path <= spectral + 1e-12).all()
    assert (path >= optimum - 1e-9).all()
    assert np.isclose(path, optimum).mean() >= 0.8
    assert path.sum() <= 1.05 * optimum.sum()


def test_sorted_and_clustered_groups_hold_near_inputs():
    """Two well separated clouds of 10: grouped by arrival (interleaved) the groups mix them;
    sorted and clustered put each cloud in its own groups of 5."""
    rng = np.random.default_rng(4)
    a = rng.normal(size=(10, 3))
    b = rng.normal(size=(10, 3)) + 20.0
    x = np.empty((20, 3))
    x[0::2], x[1::2] = a, b
    direction = principal_direction(x)
    for grouping in ("sorted", "clustered"):
        take, _ = arrange(x, 5, "none", grouping, direction)
        for row in take.reshape(4, 5):
            assert len({i % 2 for i in row}) == 1, (grouping, row)
    take, _ = arrange(x, 5, "none", "arrival", direction)
    assert all(len({i % 2 for i in row}) == 2 for row in take.reshape(4, 5))


def test_clustered_never_has_more_within_group_spread_than_sorted():
    x = np.random.default_rng(5).normal(size=(60, 6))
    direction = principal_direction(x)

    def spread(take):
        groups = x[take].reshape(-1, 6, 6)
        return float(((groups - groups.mean(axis=1, keepdims=True)) ** 2).sum())

    sorted_take, _ = arrange(x, 6, "none", "sorted", direction)
    clustered_take, _ = arrange(x, 6, "none", "clustered", direction)
    assert spread(clustered_take) < spread(sorted_take)


def test_ordered_groups_decode_with_smaller_error_for_a_smooth_model():
    """A smooth f of inputs on a curve: NeRCC's error over the groups is smaller with the
    inputs in curve order than as they came (the point of ordering), at every straggler
    pattern of S = 2."""
    rng = np.random.default_rng(6)
    t = rng.random((50, 8))
    x = np.stack([curve_points(row, 6) for row in t])  # (50, 8, 6)

    def f(inputs):
        return np.sin(inputs @ np.linspace(0.2, 1.0, 6))[..., None] * np.array([1.0, -0.5])

    scheme = NeRCC(8, 16, lam_enc=1e-6, lam_dec=1e-6)
    errors = {}
    for name in ("none", "path"):
        perm = order_groups(x, name)
        ordered = np.take_along_axis(x, perm[:, :, None], axis=1)
        coded = np.einsum("nk,gkd->gnd", scheme.encoder_matrix(), ordered)
        available = np.ones(16, dtype=bool)
        available[[3, 11]] = False
        estimates = np.stack([scheme.decode(f(c), available) for c in coded])
        errors[name] = float(((estimates - f(ordered)) ** 2).mean())
    assert errors["path"] < 0.5 * errors["none"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"order": "tsp"}, "order must be one of none, pc1, spectral, path, proxy, got 'tsp'"),
        ({"grouping": "random"}, "grouping must be one of arrival, sorted, clustered"),
        ({"order": "pc1"}, "direction must be .* for pc1, sorted and clustered, got None"),
        ({"num_inputs": 0}, "num_inputs must be an integer >= 1, got 0"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    x = np.zeros((4, 2))
    args = {"features": x, "num_inputs": 2} | kwargs
    with pytest.raises(ValueError, match=message):
        arrange(**args)


def test_features_must_be_finite_and_two_dimensional():
    with pytest.raises(ValueError, match=r"features must have shape \(B, D\)"):
        arrange(np.zeros(4), 2)
    with pytest.raises(ValueError, match="features must be finite, got 1 non-finite"):
        arrange(np.array([[0.0], [np.nan]]), 2)
    with pytest.raises(ValueError, match="direction must be two vectors of length D=2"):
        arrange(np.zeros((4, 2)), 2, "pc1", direction=(np.zeros(3), np.zeros(3)))


def test_the_principal_direction_is_the_top_variance_axis_with_a_fixed_sign():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(500, 3)) * np.array([0.1, 3.0, 0.5]) + 7.0
    mean, direction = principal_direction(x)
    np.testing.assert_allclose(mean, x.mean(axis=0))
    assert abs(direction[1]) > 0.99 and direction[1] > 0
    _, flipped = principal_direction(-x)
    np.testing.assert_allclose(flipped, direction, atol=1e-12)  # the sign rule, not the data's
