"""Choices and tables of the auto calibration; its candidates are the scheme's declaration."""

import math

import pytest

from nercc.coding import FloaterHormann, NeRCC
from nercc.tuning.auto import auto_table, best_rows
from nercc.tuning.calibration import auto_params, placeholders


def chosen(rows, scheme, stragglers, params=("lam_enc",)):
    return {
        s: {p: float(row[p]) for p in params}
        for s, row in best_rows(rows, scheme, stragglers, params).items()
    }


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
    assert chosen(rows, "nercc", [0, 5]) == {0: {"lam_enc": 0.0}, 5: {"lam_enc": 1e-6}}
    assert best_rows(rows, "nercc", [5], ["lam_enc"])[5] is rows[3]  # the row itself
    with pytest.raises(ValueError, match=r"no finite mse at S=\[9\]"):
        best_rows(rows, "nercc", [0, 9], ["lam_enc"])


def test_the_table_says_where_the_choice_came_from():
    code = {"num_inputs": 8, "num_workers": 20, "points": "chebyshev"}
    choice = {0: {"lam_enc": 0.0}, 4: {"lam_enc": 1e-5}}
    reported = {0: {"df_enc": 8.0}, 4: {"df_enc": 6.5}}
    table = auto_table("nercc", choice, code, {"split": "val", "inputs": 64}, reported)
    assert str(table.path) == "auto(val, 64 images)"
    assert table.params_at(4) == ({"lam_enc": 1e-5}, 4)
    assert table.found_by["df_enc"] == {0: 8.0, 4: 6.5}
    assert "df_enc" not in auto_table("fh", {0: {"d": 1.0}}, code, {"inputs": 64}).found_by


def test_both_sides_are_chosen_together():
    rows = [
        {"scheme": "nercc", "num_stragglers": 3, "lam_enc": e, "lam_dec": d, "mse": m}
        for e, d, m in [(0.0, 0.0, 3.0), (0.0, 1e-6, 2.0), (1e-6, 0.0, 2.5), (1e-6, 1e-6, 1.0)]
    ]
    best = chosen(rows, "nercc", [3], ("lam_enc", "lam_dec"))
    assert best == {3: {"lam_enc": 1e-6, "lam_dec": 1e-6}}


def test_a_tie_on_the_mse_goes_to_the_smaller_lambdas_wherever_listed():
    rows = [
        {"scheme": "nercc", "num_stragglers": 2, "lam_enc": e, "lam_dec": d, "mse": m}
        for e, d, m in [(1e-5, 0.0, 1.0), (1e-6, 1e-7, 1.0), (1e-6, 1e-8, 1.0), (1e-4, 0.0, 9.0)]
    ]
    best = chosen(rows, "nercc", [2], ("lam_enc", "lam_dec"))
    assert best == {2: {"lam_enc": 1e-6, "lam_dec": 1e-8}}  # the smaller lam_enc, then lam_dec
    assert chosen(rows[::-1], "nercc", [2], ("lam_enc", "lam_dec")) == best


@pytest.mark.parametrize("bad", [math.nan, math.inf])
@pytest.mark.parametrize("at", [0, 1, 3])
def test_a_row_whose_mse_is_not_finite_is_never_chosen(bad, at):
    rows = [
        {"scheme": "nercc", "num_stragglers": 4, "lam_enc": e, "mse": m}
        for e, m in [(1e-6, 3.0), (1e-5, 2.0), (1e-4, 5.0)]
    ]
    rows.insert(at, {"scheme": "nercc", "num_stragglers": 4, "lam_enc": 0.0, "mse": bad})
    assert chosen(rows, "nercc", [4]) == {4: {"lam_enc": 1e-5}}
    with pytest.raises(ValueError, match=r"auto found no finite mse at S=\[4\]"):
        best_rows([rows[at]], "nercc", [4], ["lam_enc"])


def test_the_parameters_that_may_say_auto_are_the_declared_ones():
    nercc = {"_target_": "nercc.coding.NeRCC", "lam_enc": "auto", "lam_dec": "auto"}
    assert auto_params(nercc) == ["lam_enc", "lam_dec"]
    assert auto_params({**nercc, "df_enc": "auto", "lam_enc": 0.0}) == ["lam_dec"]  # not declared
    assert auto_params({"_target_": "nercc.coding.FloaterHormann", "d": "auto"}) == ["d"]
    assert auto_params({"_target_": "nercc.coding.BACC", "d": "auto"}) == []
    assert auto_params({"_target_": "no.such.Scheme", "lam_enc": "auto"}) == []
    # the values that stand in for auto while the config is checked: accepted by the scheme
    assert placeholders(nercc, ["lam_enc", "lam_dec"]) == {"lam_enc": 0.0, "lam_dec": 0.0}
    fh = placeholders({"_target_": "nercc.coding.FloaterHormann"}, ["d"])
    assert fh == {"d": 0.0} and FloaterHormann(4, 8, **fh).d == 0


def test_nercc_declares_the_candidates_the_calibration_tried_before():
    # the values auto tried when they were written in nercc.tuning.auto: kept by the declaration
    scheme = NeRCC(8, 20)
    assert scheme.auto_candidates("lam_dec") == [0.0, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3]
    assert NeRCC.AUTO_DF_FRACTIONS == (1.0, 0.995, 0.975, 0.92, 0.75, 0.55)
    assert len(scheme.auto_candidates("lam_enc")) == 6
