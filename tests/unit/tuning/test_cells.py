"""Tables tuned per (S, A) cell: the lookup of a cell and its tie rules, loading and checking
``params_by_adversaries``, the choice per cell, TPE with one study per cell, the variants a table
gives per cell and the objective check of such variants."""

import json
import math
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from nercc.coding import NeRCC
from nercc.evaluation import SchemeVariant
from nercc.tuning import ParamTable, check_objective, expand_schemes, load_table, publish_table
from nercc.tuning.search import best_by_cells, best_by_stragglers, tpe_search

CODE = {"num_inputs": 4, "num_workers": 10, "points": "chebyshev"}


def cell_table(by_adversaries, by_stragglers=None):
    """A table tuned per (S, A); its per-S entries are the choices at the smallest A."""
    if by_stragglers is None:
        by_stragglers = {s: cells[min(cells)] for s, cells in by_adversaries.items()}
    return ParamTable(
        Path("t.json"), "nercc", "m", "d", CODE, by_stragglers, by_adversaries=by_adversaries
    )


def p(value):
    return {"lam_dec": float(value)}


# --- the lookup of a cell: the nearest S, then the nearest A at that S; smaller on ties ------


@pytest.mark.parametrize("order", [(0, 10, 20), (20, 0, 10), (10, 20, 0)])
def test_the_nearest_cell_takes_the_nearest_s_then_the_nearest_a_smaller_on_ties(order):
    # A tuned at S=0: 0, 4, 8; at S=10: 2, 6; at S=20: 5. The value is 100 S + A.
    tuned = {0: (0, 4, 8), 10: (2, 6), 20: (5,)}
    table = cell_table({s: {a: p(100 * s + a) for a in reversed(tuned[s])} for s in order})
    assert table.params_at_cell(0, 4) == (p(4), (0, 4))  # a tuned cell: itself
    assert table.params_at_cell(0, 2) == (p(0), (0, 0))  # A 0 and 4 both 2 away: the smaller
    assert table.params_at_cell(0, 3) == (p(4), (0, 4))
    assert table.params_at_cell(0, 6) == (p(4), (0, 4))  # A tie again: 4, not 8
    assert table.params_at_cell(0, 99) == (p(8), (0, 8))  # above every A: the largest
    assert table.params_at_cell(5, 0) == (p(0), (0, 0))  # S 0 and 10 both 5 away: S = 0
    assert table.params_at_cell(6, 0) == (p(1002), (10, 2))  # S = 10, below its smallest A
    assert table.params_at_cell(10, 4) == (p(1002), (10, 2))  # A tie at S = 10: 2, not 6
    assert table.params_at_cell(10, 5) == (p(1006), (10, 6))
    assert table.params_at_cell(15, 9) == (p(1006), (10, 6))  # S tie 10/20: 10
    assert table.params_at_cell(16, 0) == (p(2005), (20, 5))  # one A at S = 20 serves every A
    assert table.params_at_cell(99, 99) == (p(2005), (20, 5))
    # the answer is a copy: changing it leaves the table as it was
    table.params_at_cell(0, 0)[0]["lam_dec"] = -1.0
    assert table.params_at_cell(0, 0)[0] == p(0)


def test_a_table_without_per_a_entries_answers_per_s_at_a_zero():
    table = ParamTable(Path("t.json"), "nercc", "m", "d", CODE, {0: p(1), 10: p(2)})
    assert table.by_adversaries == {}
    assert table.params_at_cell(0, 7) == (p(1), (0, 0))
    assert table.params_at_cell(5, 3) == (p(1), (0, 0))  # the S tie: the smaller
    assert table.params_at_cell(8, 0) == (p(2), (10, 0))


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2", None])
def test_a_cell_must_be_counts(bad):
    table = cell_table({0: {0: p(1)}})
    with pytest.raises(ValueError, match=r"num_stragglers must be an integer >= 0, got"):
        table.params_at_cell(bad, 0)
    with pytest.raises(ValueError, match=r"num_adversaries must be an integer >= 0, got"):
        table.params_at_cell(0, bad)


# --- the file: params_by_adversaries round trip, v1 tables, and one clear line when wrong -----


def content(**changes):
    base = {
        "scheme": "nercc_robust",
        "model": "lenet5",
        "dataset": "fashion_mnist",
        "code": {"num_inputs": 20, "num_workers": 100, "points": "chebyshev"},
        "params_by_stragglers": {"20": {"screen": 8.0}, "40": {"screen": 5.0}},
        "params_by_adversaries": {
            "20": {"0": {"screen": 8.0}, "5": {"screen": 15.0}},
            "40": {"2": {"screen": 5.0}},
        },
        "found_by": {"split": "val", "adversary": {"kind": "sign_flip"}},
    }
    return {**base, **changes}


def test_a_table_per_cell_round_trips_and_keeps_format_version_1(tmp_path):
    path, _, _ = publish_table(content(), tmp_path)
    assert json.loads(path.read_text())["format_version"] == 1
    table = load_table(path)
    assert table.by_adversaries == {
        20: {0: {"screen": 8.0}, 5: {"screen": 15.0}},
        40: {2: {"screen": 5.0}},
    }
    assert table.by_stragglers == {20: {"screen": 8.0}, 40: {"screen": 5.0}}
    assert table.params_at_cell(20, 4) == ({"screen": 15.0}, (20, 5))
    assert table.params_at(20) == ({"screen": 8.0}, 20)  # serving's lookup: per S
    # a table without the field (every table before it) loads as before
    without = content()
    del without["params_by_adversaries"]
    old = load_table(publish_table(without, tmp_path / "v1")[0])
    assert old.by_adversaries == {} and old.by_stragglers == table.by_stragglers


def _write(tmp_path, **changes):
    path = tmp_path / "t.json"
    doc = {**content(**changes), "format": "nercc-param-table", "format_version": 1}
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"params_by_adversaries": []}, "params_by_adversaries must map S to A to parameters"),
        ({"params_by_adversaries": {}}, "params_by_adversaries must map S to A to parameters"),
        (
            {"params_by_adversaries": {"x": {"0": {"screen": 8.0}}}},
            "params_by_adversaries: S must be an integer >= 0, got 'x'",
        ),
        (
            {"params_by_adversaries": {"20": {"0": {"screen": 8.0}}, "40": {}}},
            "params_by_adversaries.40 must map A to parameters",
        ),
        (
            {"params_by_adversaries": {"20": {"-1": {"screen": 8.0}}, "40": {"0": {"screen": 5}}}},
            "params_by_adversaries.20: A must be an integer >= 0, got '-1'",
        ),
        (
            {"params_by_adversaries": {"20": {"05": {"screen": 8.0}}, "40": {"0": {"screen": 5}}}},
            "params_by_adversaries.20: A must be an integer >= 0, got '05'",
        ),
        (
            {"params_by_adversaries": {"20": {"0": {"screen": 8.0}, "5": {"lam_dec": 1.0}}}},
            "params_by_adversaries.20.5 must set the same parameters as params_by_stragglers "
            "\\(screen\\), got lam_dec",
        ),
        (
            {"params_by_adversaries": {"20": {"0": {"screen": "x"}}, "40": {"0": {"screen": 5}}}},
            "params_by_adversaries.20.0.screen must be a number, got 'x'",
        ),
        (
            {"params_by_adversaries": {"20": {"0": {"screen": -1}}, "40": {"0": {"screen": 5}}}},
            "params_by_adversaries.20.0.screen must be finite and >= 0, got -1",
        ),
        (
            {"params_by_adversaries": {"20": {"0": {"screen": 8.0}}}},
            "params_by_adversaries must tune the S of params_by_stragglers \\(20, 40\\), got 20",
        ),
        (
            {
                "params_by_adversaries": {
                    "20": {"0": {"screen": 8.0}},
                    "40": {"2": {"screen": 9.0}, "7": {"screen": 5.0}},
                }
            },
            "params_by_stragglers.40 must be the choice at the smallest A tuned "
            "\\(params_by_adversaries.40.2",
        ),
    ],
)
def test_a_bad_per_cell_field_gets_one_line_naming_the_file_and_the_field(
    tmp_path, changes, message
):
    path = _write(tmp_path, **changes)
    with pytest.raises(ValueError, match=message) as caught:
        load_table(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert "\n" not in str(caught.value)


# --- the choice per cell ----------------------------------------------------------------------


def row(s, a, dec, mse, rel_acc=None, scheme="nercc"):
    rel_acc = 1.0 / mse if rel_acc is None else rel_acc
    return {"scheme": scheme, "num_stragglers": s, "num_adversaries": a, "lam_dec": dec,
            "mse": mse, "rel_acc": rel_acc}  # fmt: skip


def choices(rows, objective="mse"):
    return {c: b["params"]["lam_dec"] for c, b in best_by_cells(rows, "nercc", ["lam_dec"],
                                                                objective).items()}  # fmt: skip


def test_the_best_setting_is_chosen_in_each_cell_with_the_tie_rules_of_s():
    rows = [
        row(0, 0, 1.0, 2.0), row(0, 0, 2.0, 1.0), row(0, 3, 1.0, 0.5), row(0, 3, 2.0, 9.0),
        row(5, 0, 1.0, 1.0, 0.9), row(5, 0, 2.0, 2.0, 0.9),  # rel_acc tie: the lower mse
        row(5, 3, 1.0, 4.0, 0.9), row(5, 3, 2.0, 4.0, 0.9),  # full tie: the first
        row(5, 3, 3.0, math.nan, 0.99),  # never wins
        row(5, 3, 4.0, 0.1, math.nan),  # never wins on rel_acc; wins on mse
        row(0, 0, 0.0, 0.0, 2.0, scheme="bacc"),  # another scheme
    ]  # fmt: skip
    assert choices(rows, "mse") == {(0, 0): 2.0, (0, 3): 1.0, (5, 0): 1.0, (5, 3): 4.0}
    assert choices(rows, "rel_acc") == {(0, 0): 2.0, (0, 3): 1.0, (5, 0): 1.0, (5, 3): 1.0}
    assert list(best_by_cells(rows[::-1], "nercc", ["lam_dec"], "mse")) == [
        (0, 0),
        (0, 3),
        (5, 0),
        (5, 3),
    ]  # sorted by S, then A
    # A = 0 alone: the choice per S, as before; a row without num_adversaries is at A = 0
    honest = [r for r in rows if r["num_adversaries"] == 0]
    by_s = best_by_stragglers(honest, "nercc", ["lam_dec"], "mse")
    unmarked = [{k: v for k, v in r.items() if k != "num_adversaries"} for r in honest]
    by_cell = best_by_cells(unmarked, "nercc", ["lam_dec"], "mse")
    assert {(s, 0): b["params"] for s, b in by_s.items()} == {
        c: b["params"] for c, b in by_cell.items()
    }
    with pytest.raises(ValueError, match="tune.objective must be one of"):
        best_by_cells(rows, "nercc", ["lam_dec"], "acc")


# --- TPE: one study per cell, every trial evaluated in every cell -----------------------------

#: The best log10 lam_dec of each (S, A) cell of a synthetic bowl.
OPTIMA = {(0, 0): -9.0, (0, 4): -4.0, (10, 0): -7.0, (10, 4): -3.0}


def bowl(params):
    y = math.log10(params["lam_dec"])
    return [
        {"scheme": "nercc", "num_stragglers": s, "num_adversaries": a, **params,
         "mse": 1.0 + (y - best) ** 2, "rel_acc": 0.5}
        for (s, a), best in OPTIMA.items()
    ]  # fmt: skip


def test_tpe_keeps_one_study_per_cell_and_finds_each_cells_best():
    calls = []

    def evaluate(params):
        calls.append(params)
        return bowl(params)

    rows = tpe_search(evaluate, {"lam_dec": [1e-11, 1e-1]}, [0, 10], "mse", 60, 0, None, [0, 4])
    assert len(calls) == 60 and len(rows) == 60 * 4
    for cell, b in best_by_cells(rows, "nercc", ["lam_dec"], "mse").items():
        assert abs(math.log10(b["params"]["lam_dec"]) - OPTIMA[cell]) < 0.5, cell


def test_tpe_with_a_zero_only_is_the_search_per_s():
    def search(**adversaries):
        drawn = []

        def evaluate(params):
            drawn.append(params["lam_dec"])
            return [r for r in bowl(params) if r["num_adversaries"] == 0]

        tpe_search(evaluate, {"lam_dec": [1e-11, 1e-1]}, [0, 10], "mse", 12, 3, **adversaries)
        return drawn

    assert search() == search(adversaries=[0])


# --- the variants of a table per cell ---------------------------------------------------------

NERCC = {"_target_": "nercc.coding.NeRCC", "num_inputs": 4, "num_workers": 10}


def test_a_table_per_cell_gives_one_variant_per_setting_running_in_its_cells():
    table = cell_table({0: {0: p(0.0), 5: p(1e-3)}, 6: {0: p(1e-3), 5: p(0.5)}}, None)
    node = OmegaConf.create({"nercc": {**NERCC, "lam_enc": 0.0, "lam_dec": None}})
    variants = expand_schemes(node, [0, 6, 8], {"nercc": table}, [0, 2, 5])
    cells = {v.params["lam_dec"]: sorted(v.stragglers) for v in variants}
    # (S=8 is served by S=6; A=2 by A=0, the nearest; A 0 and 5 are not tied at 2)
    assert cells == {
        0.0: [(0, 0), (0, 2)],
        1e-3: [(0, 5), (6, 0), (6, 2), (8, 0), (8, 2)],
        0.5: [(6, 5), (8, 5)],
    }
    assert {v.source for v in variants} == {"table:t.json"}
    middle = next(v for v in variants if v.params["lam_dec"] == 1e-3)
    assert middle.runs_at(0) and middle.runs_in(0, 5) and not middle.runs_in(0, 0)
    assert not middle.runs_in(6, 5) and middle.runs_in(8, 2)
    # without the A list (serving), or for a table without per-A entries: one variant per S
    per_s = expand_schemes(node, [0, 6, 8], {"nercc": table})
    assert {v.params["lam_dec"]: sorted(v.stragglers) for v in per_s} == {0.0: [0], 1e-3: [6, 8]}
    plain = ParamTable(Path("t.json"), "nercc", "m", "d", CODE, {0: p(0.0), 6: p(1e-3)})
    per_s = expand_schemes(node, [0, 6, 8], {"nercc": plain}, [0, 2, 5])
    assert {v.params["lam_dec"]: sorted(v.stragglers) for v in per_s} == {0.0: [0], 1e-3: [6, 8]}
    assert per_s[0].runs_in(0, 5) and not per_s[0].runs_in(6, 0)


def test_scheme_variants_run_at_every_a_of_their_s_or_only_in_their_cells():
    scheme = NeRCC(4, 10)
    everywhere = SchemeVariant("nercc", scheme)
    assert everywhere.runs_at(3) and everywhere.runs_in(3, 9)
    per_s = SchemeVariant("nercc", scheme, stragglers=frozenset({0, 5}))
    assert per_s.runs_in(5, 7) and not per_s.runs_in(4, 0) and not per_s.runs_at(4)
    per_cell = SchemeVariant("nercc", scheme, stragglers=frozenset({(0, 2), (5, 0)}))
    assert per_cell.runs_at(0) and per_cell.runs_at(5) and not per_cell.runs_at(2)
    assert per_cell.runs_in(0, 2) and not per_cell.runs_in(0, 0) and not per_cell.runs_in(2, 0)


def test_the_objective_check_counts_variants_per_cell():
    cells = {"nercc": [frozenset({(0, 0), (5, 3)}), frozenset({(0, 3), (5, 0)})]}
    assert check_objective("coded/nercc/mse", cells, [0, 5]) is None
    clash = {"nercc": [frozenset({(0, 0), (0, 3)}), frozenset({(0, 3)})]}
    assert "2 variants of 'nercc' run at S=0" in check_objective("coded/nercc/mse", clash, [0, 5])
    beside = {"nercc": [frozenset({(0, 0)}), None]}  # a variant at every A meets the cells
    assert "2 variants" in check_objective("coded/nercc/mse", beside, [0, 5])
    assert check_objective("coded/nercc/mse", beside, [0, 5], at=0) is not None


def test_the_evaluation_notes_the_a_a_table_lacks():
    from nercc.tuning.planning import table_notes

    node = {**NERCC, "lam_enc": 0.0, "lam_dec": None, "lambdas": "t.json"}
    cfg = OmegaConf.create(
        {"scheme": {"nercc": node}, "stragglers": [0, 8], "adversaries": [0, 2, 5],
         "model_name": "m", "data": {"name": "d"}, "paths": {"lambdas_dir": "x"}}
    )  # fmt: skip
    table = cell_table({0: {0: p(0.0), 5: p(1e-3)}, 6: {0: p(1e-3), 4: p(0.5)}})
    assert table_notes(cfg, "nercc", table) == [
        "t.json has no S=8: nercc uses S=6's",
        "t.json has no A=2 at S=0: nercc uses A=0's",
        "t.json has no A=2 at S=6: nercc uses A=0's",  # A 0 and 4 are tied: the smaller
        "t.json has no A=5 at S=6: nercc uses A=4's",
    ]
    per_s = ParamTable(Path("t.json"), "nercc", "m", "d", CODE, {0: p(0.0), 8: p(1e-3)})
    assert table_notes(cfg, "nercc", per_s) == [
        "t.json was tuned per S only: nercc takes its choice per S at every A"
    ]


@pytest.mark.parametrize("name", ["nercc_robust", "bacc_robust"])
def test_the_shipped_robust_configs_take_a_tables_screen_per_cell(compose_config, name):
    """conf/scheme/<robust>.yaml leaves screen null: a table tuned per (S, A) sets it in each
    cell (a value in the config would override the table), and without a table it is 8."""
    cfg = compose_config("eval", ["scheme=byzantine", "coding.num_inputs=4",
                                  "coding.num_workers=10"])  # fmt: skip
    node = OmegaConf.create({name: OmegaConf.to_container(cfg.scheme[name], resolve=True)})
    assert node[name].screen is None
    tuned = {0: {0: {"screen": 8.0}, 2: {"screen": 15.0}}}
    table = ParamTable(Path("t.json"), name, "m", "d", CODE, {0: {"screen": 8.0}},
                       by_adversaries=tuned)  # fmt: skip
    node[name].lambdas = "published"
    variants = expand_schemes(node, [0], {name: table}, [0, 2])
    assert {v.params["screen"]: sorted(v.stragglers) for v in variants} == {
        8.0: [(0, 0)],
        15.0: [(0, 2)],
    }
    node[name].lambdas = "none"
    (plain,) = expand_schemes(node, [0], {}, [0, 2])
    assert plain.params["screen"] == 8.0
