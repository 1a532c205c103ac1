"""The evaluation task: results files and plots, one process against two, bad configs."""

import json
import subprocess
import sys

import pytest
import wandb

from nercc.tasks.evaluate import evaluate
from tests.eval_settings import SMALL
from tests.wandb_offline import run_contents

COLUMNS = [
    "scheme", "variant", "num_inputs", "num_workers", "order", "grouping", "num_stragglers",
    "stragglers_mean",
    "stragglers_max", "few_answers", "num_adversaries", "adversary", "adversary_placement",
    "lam_enc", "lam_dec", "df_enc", "df_dec", "df_dec_min", "df_dec_max", "params_source", "mse",
    "mse_se", "mse_lo", "mse_hi", "acc", "base_acc", "rel_acc", "rel_acc_se", "rel_acc_lo",
    "rel_acc_hi", "agreement", "detection_precision", "detection_recall", "flagged_mean",
    "num_inputs_evaluated", "num_patterns",
]  # fmt: skip


def test_evaluate_writes_results_and_plots(compose_config, checkpoints, tmp_path):
    cfg = compose_config(
        "eval",
        [
            *SMALL,
            f"paths.checkpoint_dir={checkpoints}",
            "scheme.nercc.lam_dec=[0.0,1e-3]",
        ],
    )
    metrics, objects = evaluate(cfg)
    rows = metrics["rows"]
    assert len(rows) == 3 * 3  # nercc with two lam_dec, bacc; three S
    run = tmp_path / "run"
    saved = json.loads((run / "results.json").read_text())
    assert saved["rows"] == rows and list(saved["rows"][0]) == COLUMNS
    # a grid of NeRCC variants has no single objective: noted, not guessed
    assert saved["objective"]["value"] is None and "coded/nercc/mse" not in metrics
    assert (run / "results.csv").read_text().splitlines()[0] == ",".join(COLUMNS)
    for name in ("mse_vs_stragglers.png", "rel_acc_vs_stragglers.png"):
        assert (run / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for row in rows:
        assert row["num_inputs_evaluated"] == 256 and row["num_patterns"] == 2 * 32
        if row["scheme"] == "nercc":  # interpolation: df = K at the encoder, N - S answers
            assert row["df_enc"] == 8.0 and row["lam_enc"] == 0.0
            if row["lam_dec"] == 0.0:
                assert (
                    row["df_dec"]
                    == row["df_dec_min"]
                    == row["df_dec_max"]
                    == 20 - row["num_stragglers"]
                )
            else:
                assert 2 < row["df_dec_min"] <= row["df_dec"] <= row["df_dec_max"] < 8
        else:
            assert row["df_dec"] is None and row["lam_enc"] is None
        assert 0 <= row["agreement"] <= 1 and row["base_acc"] > 0.8
        # 64 draws: an interval around the value (of width 0 where every draw is all correct)
        assert row["mse_se"] > 0 and row["rel_acc_se"] >= 0
        for metric in ("mse", "rel_acc"):
            assert row[f"{metric}_lo"] <= row[metric] <= row[f"{metric}_hi"]
    for first, last in zip(rows[0::3], rows[2::3], strict=True):  # more stragglers, more error
        assert (first["num_stragglers"], last["num_stragglers"]) == (0, 10)
        assert first["mse"] < last["mse"]
    csv_log = run / "csv" / "metrics.csv"
    assert "coded/bacc/mse" in csv_log.read_text().splitlines()[0]


def test_wandb_offline_gets_table_plots_params_and_objective(compose_config, checkpoints, tmp_path):
    overrides = [*SMALL, f"paths.checkpoint_dir={checkpoints}", "logger=wandb"]
    cfg = compose_config(
        "eval", [*overrides, "scheme.nercc.lam_enc=1e-6", "scheme.nercc.lam_dec=0"]
    )
    metrics, _ = evaluate(cfg)
    wandb.finish()  # as the CLI's task wrapper does: the run file is complete only then
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    media = list(runs[0].rglob("*.png")) + list(runs[0].rglob("*.table.json"))
    assert len(media) >= 3
    (path,) = runs[0].glob("run-*.wandb")
    run = run_contents(path)
    assert run["group"] == "eval"
    assert run["config"]["scheme"]["nercc"]["lam_enc"] == 1e-6
    assert run["config"]["params"] == {"nercc": {"lam_enc": 1e-6, "lam_dec": 0.0}}
    assert run["summary"]["objective"] == pytest.approx(metrics["coded/nercc/mse"])
    assert run["summary"]["optimized_metric"] == "coded/nercc/mse"
    assert run["summary"]["coded/results._type"] == "table-file"
    assert {"coded/nercc/mse", "coded/nercc/lam_enc", "coded/bacc/rel_acc"} <= run["history"]


def run_cli(args, tmp_path, name):
    return subprocess.run(
        [sys.executable, "-m", "nercc.eval", *args, f"hydra.run.dir={tmp_path / name}"],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_gcv_and_df_from_the_command_line(checkpoints, tmp_path):
    args = [
        *SMALL,
        f"paths.checkpoint_dir={checkpoints}",
        "logger=none",
        "trainer.enable_progress_bar=false",
        "scheme.nercc.lam_dec=gcv",
        "scheme.nercc.df_enc=6",
    ]
    result = run_cli(args, tmp_path, "gcv")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads((tmp_path / "gcv" / "results.json").read_text())["rows"]
    nercc = [r for r in rows if r["scheme"] == "nercc"]
    assert len(nercc) == 3 and {r["params_source"] for r in nercc} == {"config"}
    for row in nercc:
        assert row["df_enc"] == pytest.approx(6.0, rel=1e-9)
        assert row["lam_dec_min"] <= row["lam_dec"] <= row["lam_dec_max"]
        assert row["df_dec_min"] <= row["df_dec"] <= row["df_dec_max"] <= 20 - row["num_stragglers"]
    bacc = [r for r in rows if r["scheme"] == "bacc"]
    assert all(r["lam_dec_min"] is None and r["df_enc"] is None for r in bacc)
    assert "lam_dec (df)" in result.stdout and "lam_enc (df)" in result.stdout


def test_two_processes_give_the_one_process_numbers(checkpoints, tmp_path):
    args = [
        *SMALL,
        f"paths.checkpoint_dir={checkpoints}",
        "logger=none",
        "trainer.enable_progress_bar=false",
        "scheme.nercc.lam_dec=[0.0,gcv]",  # the medians and spreads of GCV's lambdas too
    ]
    single = run_cli(args, tmp_path, "one")
    assert single.returncode == 0, single.stderr[-3000:]
    double = run_cli([*args, "trainer=ddp_cpu"], tmp_path, "two")
    assert double.returncode == 0, double.stderr[-3000:]
    one = json.loads((tmp_path / "one" / "results.json").read_text())["rows"]
    two = json.loads((tmp_path / "two" / "results.json").read_text())["rows"]
    assert len(one) == len(two) == 9
    assert {r["variant"] for r in one} == {"nercc(lam_dec=0)", "nercc(lam_dec=gcv)", "bacc"}
    assert all(r["lam_dec_min"] is not None for r in one if r["variant"] == "nercc(lam_dec=gcv)")
    for a, b in zip(one, two, strict=True):
        assert a.keys() == b.keys()
        for key, value in a.items():
            if isinstance(value, float):
                assert b[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
            else:
                assert b[key] == value, key


def test_a_tampered_cache_entry_is_discarded_and_the_numbers_stay_right(
    compose_config, checkpoints, tmp_path, caplog
):
    import logging

    import numpy as np

    cfg = compose_config("eval", [*SMALL, f"paths.checkpoint_dir={checkpoints}", "logger=none"])
    cold, _ = evaluate(cfg)  # a cold cache: every output computed
    cache = tmp_path / "outputs" / "cache"
    (entry, *_) = sorted(cache.rglob("*.npy"))
    original = np.load(entry)
    np.save(entry, original[::-1] * 10 + 1)  # same shape and dtype, other values
    with caplog.at_level(logging.WARNING, logger="nercc.evaluation.cache"):
        tampered, _ = evaluate(cfg)
    warnings = [r.getMessage() for r in caplog.records if r.name == "nercc.evaluation.cache"]
    assert len(warnings) == 1 and str(entry) in warnings[0], warnings
    assert tampered["rows"] == cold["rows"]
    np.testing.assert_array_equal(np.load(entry), original)  # recomputed and rewritten


def test_a_cache_that_cannot_be_written_warns_once_per_process_and_changes_nothing(
    compose_config, checkpoints, tmp_path, caplog, monkeypatch
):
    import errno
    import logging

    from nercc.evaluation import cache as cache_module

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    overrides = [*SMALL, f"paths.checkpoint_dir={checkpoints}", "logger=none"]
    plain, _ = evaluate(compose_config("eval", [*overrides, "eval.cache=false"]))
    monkeypatch.setattr(cache_module, "write_bytes_atomic", full)
    cfg = compose_config("eval", [*overrides, f"paths.cache_dir={tmp_path / 'full'}"])
    with caplog.at_level(logging.WARNING, logger="nercc.evaluation.cache"):
        first, _ = evaluate(cfg)
        second, _ = evaluate(cfg)  # the same run's cache: already off
    warnings = [r.getMessage() for r in caplog.records if r.name == "nercc.evaluation.cache"]
    assert len(warnings) == 1 and str(tmp_path / "full") in warnings[0], warnings
    assert first["rows"] == second["rows"] == plain["rows"]


def test_a_classifier_with_non_finite_outputs_fails_in_one_line(checkpoints, tmp_path):
    # Finite weights, so large that every logit overflows: a diverged model that loads.
    import torch

    (source,) = checkpoints.glob("lenet5_synthetic.ckpt")
    payload = torch.load(source, map_location="cpu", weights_only=True)
    payload["state_dict"] = {
        name: value * 1e12 if value.is_floating_point() else value
        for name, value in payload["state_dict"].items()
    }
    assert all(torch.isfinite(v).all() for v in payload["state_dict"].values())
    broken = tmp_path / "broken"
    broken.mkdir()
    torch.save(payload, broken / source.name)
    args = [
        *SMALL,
        f"paths.checkpoint_dir={broken}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        "logger=none",
        "trainer.enable_progress_bar=false",
        "optimized_metric=coded/nercc/agreement",
        "scheme.nercc.lambdas=none",
    ]
    result = run_cli(args, tmp_path, "nan")
    assert result.returncode == 1, result.stderr[-3000:]
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert line.startswith(
        f"error: model: the classifier {broken / source.name} returned non-finite outputs"
    )
    assert "retrain it (python -m nercc.train" in line and "Traceback" not in result.stderr
    assert not (tmp_path / "nan" / "results.json").exists()
    assert list((tmp_path / "cache").rglob("*.npy")) == []  # nothing cached


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("eval.batch_size=4", "error: eval.batch_size: must be an integer >= K=8, got 4"),
        ("stragglers=[0,20]", "stragglers: must be a non-empty list of integers >= 0 and <= N - 1"),
        ("scheme.nercc.lam_dec=-1.0", "scheme.nercc.lam_dec: must be null, a finite number >= 0"),
        ("scheme.nercc.lam_enc=gcv", "scheme.nercc.lam_enc: gcv is a word of lam_dec"),
        ("scheme.bacc._target_=builtins.dict", "scheme.bacc must build a CodingScheme, got dict"),
        ("scheme=does_not_exist", "Could not find 'scheme/does_not_exist'"),
        ("scheme.nercc.lambdas=/no/such.json", "scheme.nercc.lambdas: /no/such.json: no such file"),
        ("stragglers=[0,10.5]", "stragglers: must be a non-empty list of integers >= 0 and <="),
        ("coding.num_workers=6", "coding.num_workers: must be an integer >= coding.num_inputs K=8"),
        ("optimized_metric=coded/nercc/loss", "optimized_metric: must be coded/<scheme>/<metric>"),
        ("optimized_at=3", "optimized_at: must be null or one S of stragglers=[0, 5, 10]"),
        ("coding.order=tsp",
         "error: coding.order: must be one of none, pc1, spectral, path, proxy, got 'tsp'"),
        ("coding.grouping=kmeans",
         "error: coding.grouping: must be one of arrival, sorted, clustered, got 'kmeans'"),
        ("coding.order=proxy",
         "error: coding.proxy: coding.order=proxy orders by the logits of linear, not trained "
         "for mnist at"),
    ],
)  # fmt: skip
def test_bad_config_fails_before_any_work(tmp_path, override, message):
    # The data folder does not exist: a config error must come first.
    args = [*SMALL, "data=mnist", f"paths.data_dir={tmp_path / 'none'}", override]
    result = run_cli(args, tmp_path, "bad")
    assert result.returncode != 0
    assert message in result.stderr, result.stderr[-2000:]
    assert "not found" not in result.stderr.replace(message, "")
    assert not (tmp_path / "bad" / "results.json").exists()
    if "Could not find" not in message:  # ours: one line, no traceback
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
