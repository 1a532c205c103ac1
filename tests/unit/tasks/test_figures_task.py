"""The figures task called directly: configs that need no Hydra runtime, and make_figures runs
its evaluations in this process without touching Hydra's global state."""

from __future__ import annotations

import shutil

import pytest
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from nercc.figures.specs import FigureSpec, PlannedRun, RunSpec
from nercc.tasks.figures import (
    compose_task,
    label_rows,
    make_figures,
    task_config,
    without_hydra,
)


def test_task_config_replaces_every_hydra_interpolation(tmp_path):
    composed = compose_task("eval", ["experiment=paper/vit", "debug=quick"])
    cfg = task_config(composed, tmp_path / "run")
    assert "hydra" not in cfg and "hydra" in composed  # a copy
    assert "${hydra:" not in OmegaConf.to_yaml(cfg)  # unresolved text: none left
    assert cfg.model_name == "vit"  # ${hydra:runtime.choices.model}
    assert cfg.paths.output_dir == str(tmp_path / "run")  # ${hydra:runtime.output_dir}
    assert cfg.paths.checkpoint_dir == f"{tmp_path / 'run'}/published"  # debug/quick.yaml
    assert list(cfg.tags) == ["vit", "fashion_mnist"]  # what reads them resolves as before
    # another folder for the same composed config
    assert task_config(composed, tmp_path / "b").paths.checkpoint_dir.endswith("b/published")


def test_without_hydra_keeps_types_and_needs_the_hydra_node():
    cfg = OmegaConf.create(
        {"hydra": {"a": {"n": 3, "s": "x"}}, "n": "${hydra:a.n}", "l": ["${hydra:a.s}/y", 1]}
    )
    plain = without_hydra(cfg)
    assert plain.n == 3 and list(plain.l) == ["x/y", 1] and "hydra" not in plain
    with pytest.raises(ValueError, match="Hydra's node"):
        without_hydra(plain)


def _refuse(*args, **kwargs):
    raise AssertionError("a task swapped Hydra's global config")


def test_make_figures_leaves_hydra_state_alone(compose_config, checkpoints, tmp_path, monkeypatch):
    # the dry model's classifier already published (no training), no tuning: two tiny evaluations
    cfg = compose_config(
        "figures",
        ["figures.dry=true", "figure=[vs_stragglers]", "figures.switches.auto=false",
         "figures.dry_models.synthetic.tune=null"],
    )  # fmt: skip
    scratch = tmp_path / "outputs" / "figures" / "dry" / "scratch" / "checkpoints"
    scratch.mkdir(parents=True)
    shutil.copy(checkpoints / "lenet5_synthetic.ckpt", scratch)
    app = HydraConfig.instance().cfg
    monkeypatch.setattr(HydraConfig, "set_config", _refuse)
    metrics, _ = make_figures(cfg)
    assert HydraConfig.instance().cfg is app
    (data,) = metrics["figures"]
    assert [list(r["labels"].values()) for r in data["runs"]] == [
        ["NeRCC (0, 0)", "BACC"], ["replication (equal cost)"]
    ]  # fmt: skip
    assert data["file"] == "vs_stragglers_synthetic.png"
    # each run wrote in its own folder, the one its config named
    for run in data["runs"]:
        assert (tmp_path / "run" / "evals" / "vs_stragglers" / "synthetic").samefile(
            run["folder"].rsplit("/", 1)[0]
        )


def test_label_rows_puts_a_row_in_the_panel_of_every_exponent_whose_a_it_has():
    run_spec = RunSpec(("scheme=byzantine",), labels={"nercc_robust": "R", "nercc": "N"})
    figure = FigureSpec("byz", "adversary_convergence", "t", ("mse",), (run_spec,))
    extra = {"num_workers": 9, "num_stragglers": 2, "regime": "S = 2",
             "adversaries": {"0.3": 2, "0.5": 3, "0.4": 2}}  # fmt: skip
    run = PlannedRun("byz", "m", 0, run_spec, "", (), extra)
    rows = [
        {"scheme": "nercc_robust", "num_stragglers": 2, "num_adversaries": 2, "num_workers": 9},
        {"scheme": "nercc", "num_stragglers": 2, "num_adversaries": 3, "num_workers": 9},
        {"scheme": "nercc", "num_stragglers": 4, "num_adversaries": 3, "num_workers": 9},
        {"scheme": "bacc", "num_stragglers": 2, "num_adversaries": 3, "num_workers": 9},
    ]
    found = [(r["label"], r["panel"], r["panel_index"], r["exponent"])
             for r in label_rows(figure, run, rows)]  # fmt: skip
    assert found == [
        ("R", "A = round(N^0.3), S = 2", 0, 0.3),
        ("R", "A = round(N^0.4), S = 2", 2, 0.4),
        ("N", "A = round(N^0.5), S = 2", 1, 0.5),
    ]
