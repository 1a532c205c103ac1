"""The tuning task and the evaluation of its tables, end to end on a tiny synthetic setup."""

import csv
import json
import subprocess
import sys

import pytest
import wandb

from nercc.tasks.evaluate import evaluate
from nercc.tasks.tune import tune
from nercc.tuning import load_table, publish_table
from tests.wandb_offline import run_contents

SMALL = [
    "data=synthetic",
    "coding.num_inputs=8",
    "coding.num_workers=20",
    "stragglers=[0,4,8]",
    "eval.batch_size=64",
    "logger=none",
    "trainer.enable_progress_bar=false",
]
GRID = ["tune.grid={lam_enc:[0,1e-6,1e-3],lam_dec:[0,1e-4]}", "tune.limit=null"]


def test_tune_publishes_the_best_pair_per_s_and_tests_it(compose_config, checkpoints, tmp_path):
    cfg = compose_config(
        "tune", [*SMALL, *GRID, f"paths.checkpoint_dir={checkpoints}", "tune.num_patterns=2"]
    )
    assert cfg.task_name == "tune"
    metrics, _ = tune(cfg)
    run = tmp_path / "run"
    with open(run / "grid.csv") as handle:
        grid = list(csv.DictReader(handle))
    on_grid = [r for r in grid if r["variant"] != "nercc(refine)"]
    assert len(on_grid) == 3 * (6 + 1)  # 3 S x (6 NeRCC pairs + BACC)
    refined = [r for r in grid if r["variant"] == "nercc(refine)"]
    assert refined  # finer settings around each S's best, never one tried before at that S
    keys = [
        (r["num_stragglers"], r["lam_enc"], r["lam_dec"]) for r in grid if r["scheme"] == "nercc"
    ]
    assert len(keys) == len(set(keys))
    assert {r["split"] for r in [json.loads((run / "table.json").read_text())["found_by"]]} == {
        "val"
    }
    table = load_table(
        tmp_path / "outputs" / "lambdas" / "lenet5_synthetic_nercc_K8_N20_chebyshev.json"
    )
    for s in (0, 4, 8):
        rows = [r for r in grid if r["scheme"] == "nercc" and int(r["num_stragglers"]) == s]
        best = min(rows, key=lambda r: float(r["mse"]))
        assert table.by_stragglers[s] == {
            "lam_enc": float(best["lam_enc"]),
            "lam_dec": float(best["lam_dec"]),
        }
        assert int(best["num_inputs_evaluated"]) == 64  # the synthetic validation split
    assert table.checkpoint_sha256 and table.found_by["objective"] == "mse"
    tested = json.loads((run / "test" / "results.json").read_text())
    nercc = [r for r in tested["rows"] if r["scheme"] == "nercc"]
    assert [r["num_inputs_evaluated"] for r in nercc] == [256] * 3  # the test split
    for row in nercc:
        assert {"lam_enc": row["lam_enc"], "lam_dec": row["lam_dec"]} == table.by_stragglers[
            row["num_stragglers"]
        ]
        # the run's own table is tested: a concurrent tuner may replace the published one
        assert row["params_source"] == f"table:{run / 'table.json'}"
    assert metrics["table_path"] == str(run / "table.json")
    assert metrics["published_table"] == str(table.path)
    assert tested["objective"]["value"] == pytest.approx(metrics["coded/nercc/mse"])
    assert sorted(p.name for p in run.glob("heatmap_S*.png")) == [
        "heatmap_S0.png", "heatmap_S4.png", "heatmap_S8.png",
    ]  # fmt: skip


def test_an_interrupted_tune_keeps_the_rows_it_finished(
    compose_config, checkpoints, tmp_path, monkeypatch
):
    # grid.csv is rewritten after every evaluation round: the grid's rows survive a failure
    # (or a signal) in the first refine round
    import nercc.tasks.tune

    real, calls = nercc.tasks.tune.run_coded, []

    def second_round_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("the second round is interrupted")
        return real(*args, **kwargs)

    monkeypatch.setattr(nercc.tasks.tune, "run_coded", second_round_fails)
    cfg = compose_config(
        "tune", [*SMALL, *GRID, f"paths.checkpoint_dir={checkpoints}", "tune.num_patterns=2"]
    )
    with pytest.raises(KeyboardInterrupt):
        tune(cfg)
    with open(tmp_path / "run" / "grid.csv") as handle:
        grid = list(csv.DictReader(handle))
    assert len(grid) == 3 * (6 + 1) and not [r for r in grid if r["variant"] == "nercc(refine)"]
    assert not (tmp_path / "outputs" / "lambdas").exists()  # nothing published


def test_tune_refuses_the_test_split(compose_config, checkpoints):
    cfg = compose_config("tune", [*SMALL, "tune.split=test"])
    with pytest.raises(ValueError, match="tune.split: lambdas are never chosen on the test split"):
        tune(cfg)


def _table(tmp_path, params_by_stragglers, digest="00" * 32):
    content = {
        "scheme": "nercc",
        "model": "lenet5",
        "dataset": "synthetic",
        "code": {"num_inputs": 8, "num_workers": 20, "points": "chebyshev"},
        "checkpoint_sha256": digest,
        "params_by_stragglers": params_by_stragglers,
    }
    return publish_table(content, tmp_path / "outputs" / "lambdas")[0]


def test_eval_uses_the_published_table_unless_told_otherwise(
    compose_config, checkpoints, tmp_path, caplog
):
    caplog.set_level("INFO")
    by_s = {"0": {"lam_enc": 0.0, "lam_dec": 0.0}, "8": {"lam_enc": 1e-3, "lam_dec": 1e-4}}
    path = _table(tmp_path, by_s)
    cfg = compose_config("eval", [*SMALL, f"paths.checkpoint_dir={checkpoints}"])
    metrics, _ = evaluate(cfg)
    out = caplog.text  # notes and warnings go to the log (the console and the run's log file)
    assert "tuned on another checkpoint" in out  # the digest above is not the checkpoint's
    assert f"{path} has no S=4: nercc uses S=0's" in out
    rows = {r["num_stragglers"]: r for r in metrics["rows"] if r["scheme"] == "nercc"}
    assert [(rows[s]["lam_enc"], rows[s]["lam_dec"]) for s in (0, 4, 8)] == [
        (0.0, 0.0), (0.0, 0.0), (1e-3, 1e-4),
    ]  # fmt: skip
    assert {r["params_source"] for r in rows.values()} == {f"table:{path}"}
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["objective"] == {
        "name": "coded/nercc/mse",
        "at": None,
        "value": pytest.approx(sum(r["mse"] for r in rows.values()) / 3),
    }
    assert saved["objective"]["value"] == metrics["coded/nercc/mse"]

    # explicit lambdas win over the table, for every S
    cfg = compose_config(
        "eval",
        [*SMALL, f"paths.checkpoint_dir={checkpoints}", "scheme.nercc.lam_enc=1e-5",
         "scheme.nercc.lam_dec=0"],
    )  # fmt: skip
    rows = [r for r in evaluate(cfg)[0]["rows"] if r["scheme"] == "nercc"]
    assert {(r["lam_enc"], r["lam_dec"], r["params_source"]) for r in rows} == {
        (1e-5, 0.0, "config")
    }
    # and lambdas=none ignores it
    cfg = compose_config(
        "eval", [*SMALL, f"paths.checkpoint_dir={checkpoints}", "scheme.nercc.lambdas=none"]
    )
    rows = [r for r in evaluate(cfg)[0]["rows"] if r["scheme"] == "nercc"]
    assert {(r["lam_enc"], r["lam_dec"], r["params_source"]) for r in rows} == {
        (0.0, 0.0, "default")
    }


def test_eval_refuses_a_malformed_table_with_one_line(tmp_path):
    path = _table(tmp_path, {"0": {"lam_enc": 0.0, "lam_dec": 0.0}})
    path.write_text(path.read_text().replace('"lam_dec": 0.0', '"lam_dec": "zero"'))
    result = subprocess.run(
        [sys.executable, "-m", "nercc.eval", *SMALL, f"paths.log_dir={tmp_path / 'outputs'}",
         f"hydra.run.dir={tmp_path / 'bad'}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"error: scheme.nercc.lambdas: {path}: params_by_stragglers.0.lam_dec must be a number, "
        "got 'zero'; rebuild it with python -m nercc.tune"
    ], result.stderr
    assert not (tmp_path / "bad" / "results.json").exists()


def test_tune_with_optuna_logs_the_search_to_wandb(compose_config, checkpoints, tmp_path):
    cfg = compose_config(
        "tune",
        [*SMALL, f"paths.checkpoint_dir={checkpoints}", "tune.search=optuna",
         "tune.optuna.n_trials=4", "tune.publish=false", "tune.limit=null", "logger=wandb"],
    )  # fmt: skip
    metrics, _ = tune(cfg)
    wandb.finish()
    with open(tmp_path / "run" / "grid.csv") as handle:
        grid = list(csv.DictReader(handle))
    nercc = [r for r in grid if r["scheme"] == "nercc"]
    assert len(nercc) == 4 * 3 and len(grid) == 4 * 3 + 3  # 4 trials at 3 S, and BACC
    # not published: the run's own table is the one tested
    assert metrics["table_path"] == str(tmp_path / "run" / "table.json")
    assert not (tmp_path / "outputs" / "lambdas").exists()
    table = load_table(metrics["table_path"])
    tested = json.loads((tmp_path / "run" / "test" / "results.json").read_text())["rows"]
    assert {r["params_source"] for r in tested if r["scheme"] == "nercc"} == {f"table:{table.path}"}
    for s, params in table.by_stragglers.items():
        assert 1e-12 <= params["lam_enc"] <= 1e-3 and 1e-12 <= params["lam_dec"] <= 1e-5
        best = min(
            (r for r in nercc if int(r["num_stragglers"]) == s), key=lambda r: float(r["mse"])
        )
        assert params == {"lam_enc": float(best["lam_enc"]), "lam_dec": float(best["lam_dec"])}
    assert table.found_by["search"] == "optuna" and table.found_by["trials"] == 4
    (path,) = (tmp_path / "run" / "wandb").glob("offline-run-*/run-*.wandb")
    run = run_contents(path)
    assert run["summary"]["tune/grid._type"] == "table-file"
    assert run["summary"]["tune/best._type"] == "table-file"
    assert run["summary"]["tune/mse_S0._type"] == "images/separated"
    assert run["config"]["tune"]["search"] == "optuna"
