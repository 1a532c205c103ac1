"""Candidates and choices of the lam_enc=auto calibration."""

import math

import numpy as np
import pytest

from nercc.coding import NeRCC, effective_df
from nercc.tuning.auto import DF_FRACTIONS, auto_candidates, auto_table, best_per_stragglers


@pytest.mark.parametrize(("k", "n"), [(20, 100), (8, 20)])
def test_candidates_have_the_asked_degrees_of_freedom(k, n):
    alphas = NeRCC(k, n).alphas
    lams = auto_candidates(alphas)
    assert lams[0] == 0.0 and lams == sorted(lams) and len(lams) == len(DF_FRACTIONS)
    dfs = [float(effective_df(alphas, lam)) for lam in lams]
    np.testing.assert_allclose(dfs, [f * k for f in sorted(DF_FRACTIONS, reverse=True)], rtol=1e-6)


def test_fractions_at_or_below_a_line_are_dropped():
    alphas = NeRCC(4, 10).alphas
    assert auto_candidates(alphas, (1.0, 0.75, 0.5, 0.4)) == auto_candidates(alphas, (1.0, 0.75))


def test_the_lowest_mse_wins_per_s_and_ties_go_to_the_smaller_lambda():
    rows = [
        {"scheme": "nercc", "num_stragglers": 0, "lam_enc": 0.0, "mse": 1.0},
        {"scheme": "nercc", "num_stragglers": 0, "lam_enc": 1e-6, "mse": 2.0},
        {"scheme": "nercc", "num_stragglers": 5, "lam_enc": 0.0, "mse": 3.0},
        {"scheme": "nercc", "num_stragglers": 5, "lam_enc": 1e-6, "mse": 1.5},
        {"scheme": "nercc", "num_stragglers": 5, "lam_enc": 1e-5, "mse": 1.5},
        {"scheme": "nercc", "num_stragglers": 5, "lam_enc": 1e-4, "mse": math.nan},
        {"scheme": "bacc", "num_stragglers": 5, "lam_enc": 0.0, "mse": 0.1},
    ]
    assert best_per_stragglers(rows, "nercc", [0, 5]) == {0: {"lam_enc": 0.0}, 5: {"lam_enc": 1e-6}}
    with pytest.raises(ValueError, match=r"no finite mse at S=\[9\]"):
        best_per_stragglers(rows, "nercc", [0, 9])


def test_the_table_says_where_the_choice_came_from():
    alphas = NeRCC(8, 20).alphas
    code = {"num_inputs": 8, "num_workers": 20, "points": "chebyshev"}
    chosen = {0: {"lam_enc": 0.0}, 4: {"lam_enc": 1e-5}}
    table = auto_table("nercc", chosen, alphas, code, {"split": "val", "inputs": 64})
    assert str(table.path) == "auto(val, 64 images)"
    assert table.params_at(4) == ({"lam_enc": 1e-5}, 4)
    assert table.found_by["df_enc"][0] == pytest.approx(8.0)


def test_both_sides_are_chosen_together():
    rows = [
        {"scheme": "nercc", "num_stragglers": 3, "lam_enc": e, "lam_dec": d, "mse": m}
        for e, d, m in [(0.0, 0.0, 3.0), (0.0, 1e-6, 2.0), (1e-6, 0.0, 2.5), (1e-6, 1e-6, 1.0)]
    ]
    best = best_per_stragglers(rows, "nercc", [3], ("lam_enc", "lam_dec"))
    assert best == {3: {"lam_enc": 1e-6, "lam_dec": 1e-6}}


def test_a_tie_on_the_mse_goes_to_the_smaller_lambdas_wherever_listed():
    rows = [
        {"scheme": "nercc", "num_stragglers": 2, "lam_enc": e, "lam_dec": d, "mse": m}
        for e, d, m in [(1e-5, 0.0, 1.0), (1e-6, 1e-7, 1.0), (1e-6, 1e-8, 1.0), (1e-4, 0.0, 9.0)]
    ]
    best = best_per_stragglers(rows, "nercc", [2], ("lam_enc", "lam_dec"))
    assert best == {2: {"lam_enc": 1e-6, "lam_dec": 1e-8}}  # the smaller lam_enc, then lam_dec
    assert best_per_stragglers(rows[::-1], "nercc", [2], ("lam_enc", "lam_dec")) == best


@pytest.mark.parametrize("bad", [math.nan, math.inf])
@pytest.mark.parametrize("at", [0, 1, 3])
def test_a_row_whose_mse_is_not_finite_is_never_chosen(bad, at):
    rows = [
        {"scheme": "nercc", "num_stragglers": 4, "lam_enc": e, "mse": m}
        for e, m in [(1e-6, 3.0), (1e-5, 2.0), (1e-4, 5.0)]
    ]
    rows.insert(at, {"scheme": "nercc", "num_stragglers": 4, "lam_enc": 0.0, "mse": bad})
    assert best_per_stragglers(rows, "nercc", [4]) == {4: {"lam_enc": 1e-5}}
    with pytest.raises(ValueError, match=r"auto found no finite mse at S=\[4\]"):
        best_per_stragglers([rows[at]], "nercc", [4])
