"""The search: grids, the best setting per S, TPE, and the objective of a run."""

import math

import pytest

from nercc.tuning import check_objective, objective_value
from nercc.tuning.search import best_by_stragglers, grid_values, log_grid, tpe_search

# A synthetic problem with a known best pair per S: the mse is a bowl in log10 lambda.
OPTIMA = {0: (-9.0, -7.0), 10: (-6.0, -8.0), 20: (-4.0, -9.0)}


def synthetic_rows(params):
    rows = []
    for s, (a, b) in OPTIMA.items():
        x = math.log10(params["lam_enc"]) if params["lam_enc"] > 0 else -12.0
        y = math.log10(params["lam_dec"]) if params["lam_dec"] > 0 else -12.0
        mse = 1.0 + (x - a) ** 2 + 0.5 * (y - b) ** 2
        rows.append(
            {"scheme": "nercc", "num_stragglers": s, **params, "mse": mse, "rel_acc": 1 / mse}
        )
    return rows


def test_log_grid():
    assert log_grid(1e-9, 1e-6, 4) == pytest.approx([0, 1e-9, 1e-8, 1e-7, 1e-6])
    assert grid_values("lam_enc", [0, 1e-3]) == [0.0, 1e-3]
    for bad in ((0, 1, 3), (1e-3, 1e-6, 3), (1e-3, 1e-2, 1)):
        with pytest.raises(ValueError, match="0 < low <= high"):
            log_grid(*bad)
    for bad in ([-1.0], [], "1e-3", [True], [float("inf")]):
        with pytest.raises(ValueError, match="tune.grid.lam_enc must be a list of values >= 0"):
            grid_values("lam_enc", bad)


@pytest.mark.parametrize("objective", ["mse", "rel_acc"])
def test_grid_finds_the_known_best_pair_per_s(objective):
    grid = [
        {"lam_enc": a, "lam_dec": b}
        for a in log_grid(1e-10, 1e-3, 8)
        for b in log_grid(1e-10, 1e-6, 5)
    ]
    rows = [row for params in grid for row in synthetic_rows(params)]
    rows.append(
        {
            "scheme": "nercc",
            "num_stragglers": 0,
            "lam_enc": 1.0,
            "lam_dec": 1.0,
            "mse": math.nan,
            "rel_acc": math.nan,
        }
    )
    rows.append(
        {
            "scheme": "bacc",
            "num_stragglers": 0,
            "lam_enc": None,
            "lam_dec": None,
            "mse": 0.0,
            "rel_acc": 2.0,
        }
    )
    best = best_by_stragglers(rows, "nercc", ["lam_enc", "lam_dec"], objective)
    assert {s: b["params"] for s, b in best.items()} == {
        s: {"lam_enc": pytest.approx(10**a), "lam_dec": pytest.approx(10**b)}
        for s, (a, b) in OPTIMA.items()
    }


def test_tpe_finds_the_known_best_pair_per_s():
    calls = []

    def evaluate(params):
        calls.append(params)
        return synthetic_rows(params)

    ranges = {"lam_enc": [1e-12, 1e-2], "lam_dec": [1e-12, 1e-5]}
    rows = tpe_search(evaluate, ranges, list(OPTIMA), "mse", n_trials=60, seed=0)
    assert len(calls) == 60 and len(rows) == 60 * 3
    best = best_by_stragglers(rows, "nercc", ["lam_enc", "lam_dec"], "mse")
    for s, (a, b) in OPTIMA.items():
        found = best[s]["params"]
        assert abs(math.log10(found["lam_enc"]) - a) < 1.0, (s, found)
        assert abs(math.log10(found["lam_dec"]) - b) < 1.5, (s, found)
    with pytest.raises(ValueError, match="tune.optuna.ranges.lam_enc"):
        tpe_search(evaluate, {"lam_enc": [0, 1]}, [0], "mse", 1, 0)


ROWS = [
    {"scheme": "nercc", "num_stragglers": 0, "mse": 1.0, "rel_acc": 1.0},
    {"scheme": "nercc", "num_stragglers": 5, "mse": 3.0, "rel_acc": 0.5},
    {"scheme": "bacc", "num_stragglers": 0, "mse": 7.0, "rel_acc": 0.9},
]


def test_objective_value():
    assert objective_value(ROWS, "coded/nercc/mse") == 2.0
    assert objective_value(ROWS, "coded/nercc/rel_acc", at=5) == 0.5
    assert objective_value(ROWS, "coded/bacc/mse") == 7.0
    with pytest.raises(ValueError, match="not finite at S=\\[5\\]"):
        objective_value([ROWS[0], {**ROWS[1], "mse": math.nan}], "coded/nercc/mse")
    with pytest.raises(ValueError, match="no rows of scheme 'x'"):
        objective_value(ROWS, "coded/x/mse")
    for bad in ("nercc/mse", "coded/nercc/loss", 3, "coded//mse"):
        with pytest.raises(ValueError, match="must be coded/<scheme>/<metric>"):
            objective_value(ROWS, bad)


def test_check_objective():
    runs = {"nercc": [None], "bacc": [None]}
    assert check_objective("coded/nercc/mse", runs, [0, 5]) is None
    assert "no scheme 'x'" in check_objective("coded/x/mse", runs, [0, 5])
    grid = {"nercc": [None, None]}
    assert "2 variants of 'nercc' run at S=0" in check_objective("coded/nercc/mse", grid, [0, 5])
    per_s = {"nercc": [frozenset({0}), frozenset({5})]}
    assert check_objective("coded/nercc/mse", per_s, [0, 5]) is None
    with pytest.raises(ValueError, match="one S of stragglers"):
        check_objective("coded/nercc/mse", runs, [0, 5], at=3)


# --- the choice per S: its tie rules and its NaN filter, each pinned ---------------------------


def row(s, enc, dec, mse, rel_acc=None, scheme="nercc"):
    rel_acc = 1.0 / mse if rel_acc is None else rel_acc
    return {"scheme": scheme, "num_stragglers": s, "lam_enc": enc, "lam_dec": dec, "mse": mse,
            "rel_acc": rel_acc}  # fmt: skip


def chosen(rows, objective):
    best = best_by_stragglers(rows, "nercc", ["lam_enc", "lam_dec"], objective)
    return {s: (b["params"]["lam_enc"], b["params"]["lam_dec"]) for s, b in best.items()}


def test_a_tie_on_the_objective_goes_to_the_lower_mse():
    # rel_acc ties at 0.95 at every S; the lower mse wins wherever it is listed
    rows = [
        row(0, 1e-9, 0.0, 2.0, 0.95), row(0, 1e-8, 0.0, 1.0, 0.95),  # the later row: lower mse
        row(5, 1e-7, 0.0, 1.0, 0.95), row(5, 1e-6, 0.0, 2.0, 0.95),  # the earlier row
        row(9, 1e-5, 0.0, 3.0, 0.95), row(9, 1e-4, 0.0, 2.0, 0.95), row(9, 1e-3, 0.0, 2.5, 0.95),
        row(9, 0.0, 0.0, 0.5, 0.90),  # lowest mse, lower objective: never in the tie
    ]  # fmt: skip
    assert chosen(rows, "rel_acc") == {0: (1e-8, 0.0), 5: (1e-7, 0.0), 9: (1e-4, 0.0)}


def test_a_full_tie_goes_to_the_first_row():
    rows = [row(0, 1e-9, 0.0, 1.0, 0.9), row(0, 1e-8, 1e-9, 1.0, 0.9), row(0, 0.0, 0.0, 1.0, 0.9)]
    assert chosen(rows, "rel_acc") == {0: (1e-9, 0.0)}
    assert chosen(rows, "mse") == {0: (1e-9, 0.0)}


@pytest.mark.parametrize("objective", ["mse", "rel_acc"])
@pytest.mark.parametrize("bad", ["objective", "mse"])
def test_a_nan_row_never_wins(objective, bad):
    nan = {"mse": math.nan, "rel_acc": 0.99} if bad == "mse" else {objective: math.nan}
    nan_row = {**row(0, 1.0, 1.0, 0.5, 0.99), **nan}
    worse = [row(0, 1e-9, 0.0, 4.0, 0.2), row(0, 1e-8, 0.0, 3.0, 0.3)]
    assert chosen([nan_row, *worse], objective) == {0: (1e-8, 0.0)}  # first, others worse
    assert chosen([worse[0], nan_row, worse[1]], objective) == {0: (1e-8, 0.0)}  # between
    assert chosen([*worse, nan_row], objective) == {0: (1e-8, 0.0)}  # last
    # an S with nothing but NaN rows has no best: tune then names it
    assert chosen([nan_row, *worse, {**nan_row, "num_stragglers": 7}], objective) == {
        0: (1e-8, 0.0)
    }
    infinite = {**nan_row, bad if bad == "mse" else objective: math.inf}
    assert chosen([infinite, *worse], objective) == {0: (1e-8, 0.0)}


@pytest.mark.parametrize(
    ("stragglers", "upper"), [([0, 10, 20], [10, 20]), ([0, 10, 20, 30], [20, 30]), ([5], [5])]
)
def test_the_upper_half_of_s_holds_the_middle_s_of_an_odd_list(stragglers, upper):
    from nercc.tasks.tune import upper_half_ratio

    # the nercc/bacc mse ratio at S is 1 + S: the mean ratio tells which S were averaged
    rows = [
        {"scheme": scheme, "num_stragglers": s, "mse": 0.5 * (1 + s if scheme == "nercc" else 1)}
        for s in stragglers
        for scheme in ("nercc", "bacc")
    ]
    expected = sum(1 + s for s in upper) / len(upper)
    assert upper_half_ratio(rows, "nercc", "bacc", stragglers) == pytest.approx(expected)
    assert upper_half_ratio(rows, "nercc", None, stragglers) is None


# --- the space a scheme declares, and how the search moves each kind of parameter -------------


def test_the_space_is_each_settings_declared_default_unless_given():
    from nercc.coding import BACC, FloaterHormann, NeRCC
    from nercc.tuning.search import search_space

    # null: the declared grids, equal to the values conf/tune.yaml listed before it said null
    assert search_space(NeRCC, None, "grid") == {
        "lam_enc": log_grid(1e-10, 1e-3, 8), "lam_dec": log_grid(1e-11, 1e-4, 8)
    }  # fmt: skip
    assert search_space(NeRCC, None, "search") == {
        "lam_enc": [1e-12, 1e-3], "lam_dec": [1e-12, 1e-5]
    }  # fmt: skip
    assert search_space(FloaterHormann, None, "grid") == {"d": [0.0, 1.0, 2.0, 3.0, 4.0]}
    # a given parameter replaces its setting's default; the others keep theirs, in order
    given = search_space(NeRCC, {"lam_dec": [0, 1e-4]}, "grid")
    assert list(given) == ["lam_enc", "lam_dec"] and given["lam_dec"] == [0, 1e-4]
    assert list(search_space(NeRCC, {"df_enc": [4, 6]}, "grid")) == ["df_enc", "lam_dec"]
    with pytest.raises(ValueError, match=r"^tune.grid.foo: is not a tunable parameter of NeRCC"):
        search_space(NeRCC, {"foo": [1]}, "grid")
    with pytest.raises(ValueError, match="both give the setting lam_enc"):
        search_space(NeRCC, {"lam_enc": [0], "df_enc": [4]}, "grid")
    with pytest.raises(ValueError, match="^tune.optuna.ranges: BACC declares no parameter"):
        search_space(BACC, None, "search")


def test_grid_values_take_what_the_parameter_accepts():
    from nercc.coding import FloaterHormann

    d = FloaterHormann.tunable("d")
    assert grid_values("d", [0, 2, 3.0], d) == [0.0, 2.0, 3.0]
    for bad in ([1.5], [-1], ["auto"]):
        with pytest.raises(ValueError, match="tune.grid.d must be a list of values of d"):
            grid_values("d", bad, d)


def test_the_refinement_moves_each_parameter_as_it_is_declared():
    from nercc.coding import FloaterHormann, NeRCC, Tunable
    from nercc.tuning.search import neighbours, refine_step

    lam = NeRCC.tunable("lam_enc")
    step = refine_step(lam, [0.0, 1e-8, 1e-6, 1e-4])  # two decades apart: one decade
    assert step == pytest.approx(1.0)
    assert neighbours(lam, 1e-6, step, 0) == pytest.approx([1e-7, 1e-6, 1e-5])
    assert neighbours(lam, 1e-6, step, 1) == pytest.approx([10**-6.5, 1e-6, 10**-5.5])
    assert neighbours(lam, 0.0, step, 0) == [0.0]  # 0 stays 0
    d = FloaterHormann.tunable("d")
    assert refine_step(d, [0, 1, 2]) == 1.0
    assert neighbours(d, 2.0, 1.0, 0) == [1.0, 2.0, 3.0]
    assert neighbours(d, 2.0, 1.0, 3) == [1.0, 2.0, 3.0]  # an integer moves by 1 every round
    assert neighbours(d, 0.0, 1.0, 0) == [0.0, 1.0]  # within its range
    bounded = Tunable("t", "decoder", "an integer up to N", high="num_workers", integer=True)
    assert neighbours(bounded, 5.0, 1.0, 0, num_inputs=2, num_workers=5) == [4.0, 5.0]
    linear = Tunable("w", "encoder", "a weight in [0, 1]", low=0.0, high=1.0)
    assert refine_step(linear, [0.0, 0.5, 1.0]) == 0.25
    assert neighbours(linear, 0.5, 0.25, 1) == [0.375, 0.5, 0.625]
    assert neighbours(linear, 1.0, 0.25, 0) == [0.75, 1.0]
    assert neighbours(linear, 0.5, refine_step(linear, [0.5]), 0) == [0.5]  # one value: none


def test_tpe_draws_integers_for_an_integer_parameter():
    from nercc.coding import FloaterHormann

    drawn = []

    def evaluate(params):
        drawn.append(params["d"])
        return [{"scheme": "fh", "num_stragglers": 0, **params, "mse": (params["d"] - 3) ** 2}]

    tpe_search(evaluate, {"d": [0, 6]}, [0], "mse", 12, 0, {"d": FloaterHormann.tunable("d")})
    assert all(isinstance(d, int) and 0 <= d <= 6 for d in drawn) and len(set(drawn)) > 1
    with pytest.raises(ValueError, match=r"tune.optuna.ranges.d must be \[low, high\] of integ"):
        tpe_search(evaluate, {"d": [0, 2.5]}, [0], "mse", 1, 0, {"d": FloaterHormann.tunable("d")})
