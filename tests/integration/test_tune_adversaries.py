"""Tuning per (S, A) cell with adversarial workers, end to end on the tiny synthetic setup: the
choice per cell from the validation rows, the table that publishes it, and the test evaluation
that runs each cell with its own setting."""

import csv
import json

import pytest

from nercc.tasks.tune import check_config, tune
from nercc.tuning import load_table
from nercc.utils.errors import ConfigError

# N = 40 for K = 8: the screening needs answers to spare. Sign flips at scale 2: the honest cells
# choose a looser screening cut than the attacked ones.
SMALL = [
    "data=synthetic",
    "coding.num_inputs=8",
    "coding.num_workers=40",
    "stragglers=[0,5]",
    "eval.batch_size=64",
    "logger=none",
    "trainer.enable_progress_bar=false",
    "scheme=byzantine",
    "tune.scheme=nercc_robust",
    "tune.limit=null",
    "tune.num_patterns=2",
    "adversary=sign_flip",
    "adversary.scale=2",
]
#: The screening cut searched; the smoothing pinned by one-value lists.
GRID = ["tune.grid={screen:[1.5,3,8,30],lam_enc:[0],lam_dec:[0]}", "tune.refine=1"]
PARAMS = ("screen", "lam_enc", "lam_dec")


def _cells(grid, scheme="nercc_robust"):
    """The best validation row per (S, A) of grid.csv, recomputed here: the lowest mse, the
    first on a tie."""
    best = {}
    for r in grid:
        if r["scheme"] != scheme:
            continue
        cell = (int(r["num_stragglers"]), int(r["num_adversaries"]))
        if cell not in best or float(r["mse"]) < float(best[cell]["mse"]):
            best[cell] = r
    return {cell: {p: float(r[p]) for p in PARAMS} for cell, r in best.items()}


def test_tune_chooses_per_cell_publishes_and_tests_each_cell(compose_config, checkpoints, tmp_path):
    cfg = compose_config(
        "tune", [*SMALL, *GRID, "adversaries=[0,3]", f"paths.checkpoint_dir={checkpoints}"]
    )
    tune(cfg)
    run = tmp_path / "run"
    with open(run / "grid.csv") as handle:
        grid = list(csv.DictReader(handle))
    on_grid = [r for r in grid if r["scheme"] == "nercc_robust" and "refine" not in r["variant"]]
    assert len(on_grid) == 4 * 2 * 2  # every screen in every (S, A) cell
    assert {r["lam_enc"] for r in grid if r["scheme"] == "nercc_robust"} == {"0.0"}  # pinned
    best = _cells(grid)
    assert sorted(best) == [(0, 0), (0, 3), (5, 0), (5, 3)]
    table = load_table(
        tmp_path / "outputs" / "lambdas" / "lenet5_synthetic_nercc_robust_K8_N40_chebyshev.json"
    )
    assert table.by_adversaries == {s: {a: best[s, a] for a in (0, 3)} for s in (0, 5)}
    assert table.by_stragglers == {s: best[s, 0] for s in (0, 5)}  # A = 0: what serving reads
    # under attack the screening cuts harder than honest answers need
    assert all(best[s, 3]["screen"] < best[s, 0]["screen"] for s in (0, 5))
    assert table.found_by["adversaries"] == [0, 3]
    assert table.found_by["adversary"] == {
        "kind": "sign_flip", "settings": {"scale": 2}, "placement": "random"
    }  # fmt: skip
    document = json.loads((run / "table.json").read_text())
    assert document["format_version"] == 1
    assert document["validation_by_adversaries"]["5"]["3"]["screen"] == best[5, 3]["screen"]
    # the test split: each cell with its own setting, and the rows say which
    tested = json.loads((run / "test" / "results.json").read_text())["rows"]
    robust = [r for r in tested if r["scheme"] == "nercc_robust"]
    assert sorted((r["num_stragglers"], r["num_adversaries"]) for r in robust) == sorted(best)
    for r in robust:
        assert r["screen"] == best[r["num_stragglers"], r["num_adversaries"]]["screen"]
        assert r["params_source"] == f"table:{run / 'table.json'}"
        assert r["num_inputs_evaluated"] == 256  # the test split
    assert len([r for r in tested if r["scheme"] == "bacc"]) == 4


def test_a_table_tuned_only_under_attack_keeps_its_smallest_a_per_s(
    compose_config, checkpoints, tmp_path
):
    # Optuna: every trial is evaluated in every cell
    cfg = compose_config(
        "tune",
        [*SMALL, "adversaries=[3]", f"paths.checkpoint_dir={checkpoints}", "tune.publish=false",
         "tune.test=false", "tune.search=optuna", "tune.optuna.n_trials=3",
         "tune.optuna.ranges={screen:[2,30]}", "tune.baseline=null"],
    )  # fmt: skip
    metrics, _ = tune(cfg)
    with open(tmp_path / "run" / "grid.csv") as handle:
        grid = list(csv.DictReader(handle))
    assert len(grid) == 3 * 2  # 3 trials x 2 cells
    best = _cells(grid)
    content = metrics["table"]
    assert content["params_by_adversaries"] == {
        str(s): {"3": best[s, 3]} for s in (0, 5)
    }  # fmt: skip
    assert content["params_by_stragglers"] == {str(s): best[s, 3] for s in (0, 5)}
    assert not (tmp_path / "outputs" / "lambdas").exists()


def test_tuning_with_adversaries_needs_an_adversary(compose_config):
    cfg = compose_config("tune", [*SMALL[:-2], "adversaries=[0,2]"])
    with pytest.raises(ConfigError, match="adversaries") as caught:
        check_config(cfg)
    assert "adversary=none cannot place A=2" in str(caught.value)
