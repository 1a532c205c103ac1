"""A(N) = round(N^a), the theory's slope (6/5)(a - 1), and the check that rows can be drawn
against A, against values worked out by hand."""

from __future__ import annotations

import pytest

from nercc.figures.adversarial import adversaries_at, adversary_axis_problem, theory_slope


@pytest.mark.parametrize(
    ("n", "a", "expected"),
    [
        (100, 0.5, 10),  # 10 exactly
        (40, 0.5, 6),  # 6.32
        (240, 0.5, 15),  # 15.49
        (12, 0.5, 3),  # 3.46
        (30, 0.5, 5),  # 5.477
        (100, 0.3, 4),  # 3.98
        (240, 0.3, 5),  # 5.18
        (16, 0.3, 2),  # 2.30
        (24, 0.3, 3),  # 2.595
        (7, 0.0, 1),  # N^0
        (1, 0.9, 1),
    ],
)
def test_adversaries_at_rounds_n_to_the_a(n, a, expected):
    assert adversaries_at(n, a) == expected


def test_adversaries_at_takes_the_nearest_integer_on_either_side_of_a_half():
    assert adversaries_at(4, 0.5) == 2 and adversaries_at(9, 0.5) == 3  # exact squares
    assert adversaries_at(20, 0.5) == 4  # 4.472: down
    assert adversaries_at(21, 0.5) == 5  # 4.583: up


@pytest.mark.parametrize(("a", "slope"), [(0.3, -0.84), (0.5, -0.6), (0.0, -1.2), (0.9, -0.12)])
def test_theory_slope_is_six_fifths_of_a_minus_one(a, slope):
    assert theory_slope(a) == pytest.approx(slope, abs=1e-12)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: adversaries_at(0, 0.5), "n must be an integer >= 1, got 0"),
        (lambda: adversaries_at(10.0, 0.5), "n must be an integer >= 1, got 10.0"),
        (lambda: adversaries_at(10, 1.0), "a must be a number in [0, 1), got 1.0"),
        (lambda: adversaries_at(10, -0.1), "a must be a number in [0, 1), got -0.1"),
        (lambda: theory_slope(True), "a must be a number in [0, 1), got True"),
        (lambda: theory_slope("0.5"), "a must be a number in [0, 1), got '0.5'"),
    ],
)
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError) as error:
        call()
    assert str(error.value) == message


def test_rows_can_be_drawn_against_a_with_one_s_and_several_a():
    assert adversary_axis_problem([20], [0, 1, 2]) is None
    assert adversary_axis_problem([20, 40], [0, 1]) == (
        "a figure against A needs one S and at least two A (stragglers=[S], adversaries=[0,...]), "
        "got stragglers=[20, 40], adversaries=[0, 1]"
    )
    assert adversary_axis_problem([20], [0]) is not None
    assert adversary_axis_problem([20], [3, 3]) is not None
