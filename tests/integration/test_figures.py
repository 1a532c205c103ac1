"""The figures task: the dry mode draws every figure and writes summary.md, every figure's rows are
one `nercc.eval` command's, and bad figure configs give one line per bad key."""

import json
import math
import shlex

import numpy as np
import pytest
import wandb
from hydra.core.hydra_config import HydraConfig

from nercc.figures.plots import fit_slope
from nercc.figures.specs import (
    FigureSpec,
    ModelSpec,
    RunSpec,
    check_figures,
    merge_overrides,
    plan_runs,
)
from nercc.tasks.evaluate import evaluate
from nercc.tasks.figures import make_figures
from nercc.utils.errors import ConfigError

PNG = b"\x89PNG\r\n\x1a\n"
FIGURES = (
    "vs_stragglers", "lambdas", "convergence", "stragglers", "byzantine", "byzantine_convergence",
)  # fmt: skip


def _same(a, b) -> bool:
    """Rows equal value for value (NaN equal to NaN, as the JSON files write it)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _refuse(*args, **kwargs):
    raise AssertionError("a task swapped Hydra's global config")


def test_dry_mode_draws_every_figure_and_a_regenerable_summary(
    compose_config, tmp_path, monkeypatch
):
    cfg = compose_config("figures", ["figures.dry=true", "logger=wandb"])
    app = HydraConfig.instance().cfg
    with monkeypatch.context() as patch:  # train, tune and every evaluation on configs of their own
        patch.setattr(HydraConfig, "set_config", _refuse)
        metrics, _ = make_figures(cfg)
    assert HydraConfig.instance().cfg is app
    wandb.finish()  # as the CLI's task wrapper does: the run file is complete only then
    out = tmp_path / "outputs" / "figures" / "dry"
    assert metrics["summary"] == str(out / "summary.md")
    for name in FIGURES:
        assert (out / f"{name}_synthetic.png").read_bytes()[:8] == PNG
    summary = (out / "summary.md").read_text()
    for section in (
        "# Figures (dry mode", "## Files", "(`synthetic`)", "mse per S (vs_stragglers",
        "rel_acc per S", "Convergence slopes", "## Convergence", "## Commands",
        "### convergence / synthetic",
        # the command that draws one figure alone: this app's overrides, one figure, one model
        "`python -m nercc.figures figures.dry=true logger=wandb 'figure=[lambdas]' "
        "'figures.only=[synthetic]'`",
    ):  # fmt: skip
        assert section in summary, section
    # the curves: NeRCC tuned (its table tuned in the scratch folder), auto, (0, 0), BACC and
    # replication, with NeRCC's ratios to BACC
    assert (
        "| S | NeRCC tuned | NeRCC auto | NeRCC (0, 0) | BACC | replication (equal cost) |"
        in summary
    )
    assert "| NeRCC tuned / BACC | NeRCC auto / BACC | NeRCC (0, 0) / BACC |" in summary
    assert (out / "scratch" / "checkpoints" / "lenet5_synthetic.ckpt").is_file()
    # the slopes: NeRCC (0, 0) and BACC in both regimes, finite, and the same in summary.json
    slopes = [s for s in metrics["slopes"] if s["figure"] == "convergence"]
    assert {(s["panel"], s["label"]) for s in slopes} == {
        (p, label) for p in ("S = 0.2 N (fixed fraction)", "S = 2 (fixed)")
        for label in ("NeRCC (0, 0)", "BACC", "NeRCC auto")
    }  # fmt: skip
    assert all(math.isfinite(s["slope"]) and s["num_workers"] == [8, 12, 16, 24] for s in slopes)
    saved = json.loads((out / "summary.json").read_text())
    assert [s["slope"] for s in saved["slopes"]] == [s["slope"] for s in metrics["slopes"]]
    _check_byzantine(out, summary, metrics)
    # the lambda figure is on the validation split, with df axes where the rows give df
    grid = json.loads((out / "data" / "lambdas_synthetic.json").read_text())
    assert {r["split"] for r in grid["runs"]} == {"val"}
    assert len(grid["runs"][0]["rows"]) == 2 * (7 * 9 + 1)  # two S: the grid and BACC
    # one figure's rows are one printed command's: run it alone (with a cache of its own)
    data = json.loads((out / "data" / "vs_stragglers_synthetic.json").read_text())
    (run,) = [r for r in data["runs"] if "BACC" in r["labels"].values()]  # and NeRCC (0, 0)
    assert run["command"] in summary
    words = shlex.split(run["command"])
    assert words[:3] == ["python", "-m", "nercc.eval"]
    alone = compose_config("eval", [*words[3:], f"paths.cache_dir={tmp_path / 'fresh'}"])
    rows = evaluate(alone)[0]["rows"]
    assert _same(rows, run["rows"]) and {r["scheme"] for r in rows} == {"nercc", "bacc"}
    # the convergence rows: one run per N, at its own S = round(0.2 N) and S = 2
    conv = json.loads((out / "data" / "convergence_synthetic.json").read_text())
    assert [r["num_workers"] for r in conv["runs"]] == [8, 12, 16, 24] * 2  # (0, 0), then auto
    assert [sorted({row["num_stragglers"] for row in r["rows"]}) for r in conv["runs"]] == [
        [2], [2], [2, 3], [2, 5]
    ] * 2  # fmt: skip
    # W&B (offline): every figure as an image, the tables
    (run_dir,) = (tmp_path / "run" / "wandb").glob("offline-run-*")
    assert len(list(run_dir.rglob("*.png"))) >= len(FIGURES)
    assert list(run_dir.rglob("*.table.json"))


def _check_byzantine(out, summary, metrics):
    """The dry mode's Byzantine figures: mse and rel_acc against A at one S for plain and robust
    NeRCC and BACC; mse against N under A = round(N^a) with the fitted and the theory's slopes."""
    for section in (
        "mse per A (byzantine: adversary sign_flip, `adversary=sign_flip adversary.scale=20 "
        "adversary.placement=random`", "rel_acc per A (byzantine", "Detection per A (byzantine",
        "| A | NeRCC | NeRCC robust | BACC | BACC robust | replication (equal cost) | "
        "replication, majority vote | NeRCC robust / NeRCC | BACC robust / BACC |",
        "replication, majority vote precision | replication, majority vote recall |",
        "## Convergence under adversaries", "### byzantine_convergence / synthetic",
        "`python -m nercc.figures figures.dry=true logger=wandb 'figure=[byzantine]' "
        "'figures.only=[synthetic]'`",
    ):  # fmt: skip
        assert section in summary, section
    byz = json.loads((out / "data" / "byzantine_synthetic.json").read_text())
    rows = [row for run in byz["runs"] for row in run["rows"]]
    assert {(r["scheme"], r["num_stragglers"]) for r in rows} == {
        (s, 2)
        for s in ("nercc", "nercc_robust", "bacc", "bacc_robust", "replication", "replication_vote")
    }
    assert sorted(r["num_adversaries"] for r in rows) == sorted([0, 1, 2, 3] * 6)
    assert {r["adversary"] for r in rows if r["num_adversaries"]} == {"sign_flip"}
    # at A = 0 the screening flags nothing here: robust and plain decode the same
    at_zero = {r["scheme"]: r["mse"] for r in rows if r["num_adversaries"] == 0}
    assert at_zero["nercc_robust"] == pytest.approx(at_zero["nercc"], rel=1e-9)
    # one run per N at S = round(0.2 N), with A = round(N^0.3) and round(N^0.5) in one list
    conv = json.loads((out / "data" / "byzantine_convergence_synthetic.json").read_text())
    assert [(r["num_workers"], sorted({(row["num_stragglers"], row["num_adversaries"])
                                       for row in r["rows"]})) for r in conv["runs"]] == [
        (12, [(2, 2), (2, 3)]), (16, [(3, 2), (3, 4)]), (24, [(5, 3), (5, 5)]),
        (32, [(6, 3), (6, 6)]),
    ]  # fmt: skip
    attacked = [s for s in metrics["slopes"] if s["figure"] == "byzantine_convergence"]
    assert {(s["panel"], s["label"], round(s["theory"], 9)) for s in attacked} == {
        (f"A = round(N^{a}), S = 0.2 N", label, theory)
        for a, theory in (("0.3", -0.84), ("0.5", -0.6))
        for label in ("NeRCC robust (0, 0)", "NeRCC (0, 0)")
    }  # fmt: skip
    assert all(math.isfinite(s["slope"]) for s in attacked)
    line = next(s for s in attacked if s["panel"].startswith("A = round(N^0.5)"))
    assert line["num_adversaries"] == [3, 4, 5, 6] and line["num_workers"] == [12, 16, 24, 32]
    assert "| synthetic | A = round(N^0.5), S = 0.2 N | -0.6 | " in summary


def test_a_figure_against_a_with_several_s_is_refused_before_any_work(compose_config, tmp_path):
    cfg = compose_config(
        "figures",
        ["figures.dry=true", "figure=[byzantine]",
         "figure.byzantine.per_model.synthetic.overrides=['stragglers=[2,4]']"],
    )  # fmt: skip
    with pytest.raises(ConfigError) as error:
        make_figures(cfg)
    assert str(error.value) == (
        "figure.byzantine.runs[2] (synthetic): a figure against A needs one S and at least two A "
        "(stragglers=[S], adversaries=[0,...]), got stragglers=[2, 4], adversaries=[0]"
    )
    assert not (tmp_path / "outputs" / "figures" / "dry" / "scratch").exists()  # nothing trained


def test_a_switched_off_curve_is_left_out_with_a_note(compose_config, tmp_path):
    cfg = compose_config(
        "figures", ["figures.dry=true", "figures.switches.auto=false", "figure=[vs_stragglers]"]
    )
    metrics, _ = make_figures(cfg)
    (data,) = metrics["figures"]
    assert [list(r["labels"].values()) for r in data["runs"]] == [
        ["NeRCC tuned"], ["NeRCC (0, 0)", "BACC"], ["replication (equal cost)"]
    ]  # fmt: skip
    assert data["notes"] == [
        "NeRCC auto: switched off (figures.switches.auto=false); switch it on with "
        "figures.switches.auto=true"
    ]
    summary = (tmp_path / "outputs" / "figures" / "dry" / "summary.md").read_text()
    assert "- vs_stragglers: NeRCC auto: switched off" in summary


def test_bad_figure_settings_give_one_line_per_key(compose_config, capsys):
    cfg = compose_config(
        "figures",
        ["figure.convergence.fraction=2", "+figure.lambdas.colour=red",
         "figures.only=[nope]", "figure.vs_stragglers.runs.2.labels=null"],
    )  # fmt: skip
    errors, _, _ = check_figures(cfg)
    lines = [str(e) for e in errors]
    assert lines == [
        "figures.only: must be null or a list of lenet5, repvgg, vit, lenet5_mnist, got ['nope']",
        "figure.vs_stragglers.runs[2]: must give exactly one of label and labels, got "
        "{'label': None, 'labels': None}",
        "figure.lambdas.colour: unknown key (known: kind, title, metrics, overrides, per_model, "
        "panels, runs, models, notes), got 'red'",
        "figure.convergence.fraction: must be a number in (0, 1): S = round(fraction x N) in the "
        "fixed-fraction panel, got 2",
    ]
    with pytest.raises(ConfigError, match="figure.convergence.fraction"):
        make_figures(cfg)
    printed = capsys.readouterr().err.splitlines()
    assert printed == [f"error: {line}" for line in lines[:-1]]


def test_a_run_the_eval_checks_refuse_is_named_before_any_work(compose_config, tmp_path):
    cfg = compose_config(
        "figures", ["figures.dry=true", "figure.lambdas.overrides=['eval.split=train']"]
    )
    with pytest.raises(ConfigError) as error:
        make_figures(cfg)
    assert str(error.value) == (
        "figure.lambdas.runs[0] (synthetic): eval.split: must be one of test, val, got 'train'"
    )
    assert not (tmp_path / "outputs" / "figures" / "dry" / "scratch").exists()  # nothing trained


def test_runs_merge_overrides_in_order_and_convergence_runs_one_per_n():
    assert merge_overrides(["a=1", "b=2"], ["a=3", "~c"], ["+c=4"]) == ("b=2", "a=3", "+c=4")
    model = ModelSpec("m", ("experiment=paper/lenet5", "eval.limit=100", "stragglers=[0,10]"))
    run = RunSpec(("scheme=nercc_vs_bacc",), labels={"nercc": "NeRCC", "bacc": "BACC"})
    figure = FigureSpec(
        "conv", "convergence", "t", ("mse",), (run,), ("eval.limit=50",),
        {"m": {"num_workers": [40, 50], "fixed_stragglers": 10}}, options={"fraction": 0.2},
    )  # fmt: skip
    runs, notes = plan_runs(figure, model, common=("logger=none",))
    assert notes == [] and [r.extra["num_workers"] for r in runs] == [40, 50]
    assert runs[1].overrides == (
        "logger=none", "experiment=paper/lenet5", "eval.limit=50", "scheme=nercc_vs_bacc",
        "coding.num_workers=50", "stragglers=[10]",
    )  # fmt: skip
    assert runs[0].command.endswith("coding.num_workers=40 'stragglers=[8,10]'")
    switched = FigureSpec("f", "vs_stragglers", "t", ("mse",),
                          (RunSpec(("scheme=nercc",), label="auto", when="auto"),))  # fmt: skip
    runs, notes = plan_runs(switched, model, switches={"auto": False})
    assert runs == [] and "figures.switches.auto=true" in notes[0]


def test_fit_slope_recovers_a_power_law():
    ns = np.array([40.0, 60, 100, 160, 240])
    assert fit_slope(ns, 3.0 * ns**-2.5) == pytest.approx(-2.5)
    assert fit_slope(ns, 3.0 * ns**-1.0 * np.exp([0.1, -0.1, 0.1, -0.1, 0.1])) == pytest.approx(
        np.polyfit(np.log(ns), np.log(3.0 / ns) + [0.1, -0.1, 0.1, -0.1, 0.1], 1)[0]
    )
    assert math.isnan(fit_slope([10, 10], [1.0, 2.0]))
    assert fit_slope([1, 2, 4], [0, 1, 4]) == pytest.approx(2)  # the zero is left out
