"""The evaluation task called directly: its plan, and rows that are the runner's rows."""

from __future__ import annotations

import json
import math

import pytest

from nercc.evaluation.runner import run_coded
from nercc.tasks.evaluate import Plan, check_config, evaluate
from nercc.utils.errors import ConfigError

SMALL = [
    "data=synthetic",
    "coding.num_inputs=8",
    "coding.num_workers=20",
    "stragglers=[0,5]",
    "eval.batch_size=64",
    "eval.limit=128",
    "eval.num_patterns=2",
    "logger=none",
    "trainer.enable_progress_bar=false",
]


def _same(a: dict, b: dict) -> bool:
    """Rows equal, NaN equal to NaN."""

    def norm(row):
        return {k: "nan" if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}

    return norm(a) == norm(b)


def test_evaluate_gives_the_runners_rows_and_writes_them(compose_config, checkpoints, tmp_path):
    cfg = compose_config("eval", [*SMALL, f"paths.checkpoint_dir={checkpoints}"])
    metrics, objects = evaluate(cfg)
    plan = objects["plan"]
    assert isinstance(plan, Plan) and [v.name for v in plan.variants] == ["nercc", "bacc"]
    again, _ = run_coded(
        cfg, plan.variants, plan.straggler_factory, objects["data"], objects["classifier"]
    )
    assert len(metrics["rows"]) == 2 * 2
    assert all(_same(a, b) for a, b in zip(metrics["rows"], again, strict=True))
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert [r["mse"] for r in saved["rows"]] == [r["mse"] for r in metrics["rows"]]
    # the default objective (coded/nercc/mse, averaged over S) is computed and returned
    nercc = [r["mse"] for r in metrics["rows"] if r["scheme"] == "nercc"]
    assert metrics[cfg.optimized_metric] == pytest.approx(sum(nercc) / 2)
    assert saved["objective"]["value"] == metrics[cfg.optimized_metric]


def test_check_config_notes_a_missing_table_and_leaves_auto_untabled(compose_config, tmp_path):
    cfg = compose_config("eval", [*SMALL, "scheme.nercc.lam_enc=auto"])
    plan = check_config(cfg)
    assert plan.auto == {"nercc": ["lam_enc"]}
    assert "nercc" not in plan.tables  # calibrated in the run, never from a table
    cfg = compose_config("eval", SMALL)
    plan = check_config(cfg)
    assert plan.tables == {"nercc": None} and plan.auto == {}
    (note,) = [n for n in plan.notes if n.startswith("no tuned table")]
    assert "K=8, N=20, chebyshev points" in note and "lam_enc, lam_dec" in note


def test_check_config_names_a_bad_table_setting(compose_config):
    cfg = compose_config("eval", [*SMALL, "scheme.nercc.lambdas=/no/such/table.json"])
    with pytest.raises(ConfigError) as error:
        check_config(cfg)
    assert error.value.key == "scheme.nercc.lambdas"
