"""Figure configs are read with the config checks' readers: every bad key of ``figures.*`` and
``figure.*`` is one ``<key>: <what>, got <value>`` line, all of them at once, in config order."""

from __future__ import annotations

import copy

import pytest
from omegaconf import OmegaConf

from nercc.figures.specs import (
    FigureSpec,
    ModelSpec,
    RunSpec,
    adversary_convergence_point,
    check_figures,
    plan_runs,
)
from nercc.utils.errors import ConfigError

BASE = {
    "figures": {
        "dry": False,
        "tune_missing": False,
        "output_dir": "out",
        "switches": {"auto": True},
        "common": ["logger=none"],
        "models": {"m": {"overrides": ["model=lenet5"], "about": "LeNet5"}},
        "dry_models": {"d": {"overrides": ["data=synthetic"], "optional": True}},
        "only": None,
        "summary_figure": None,
    },
    "figure": {
        "curves": {
            "kind": "vs_stragglers",
            "metrics": ["mse", "acc"],
            "runs": [{"label": "A", "overrides": ["scheme=nercc"], "when": "auto"}],
        },
        "conv": {
            "kind": "convergence",
            "fraction": 0.2,
            "num_workers": [8, 16],
            "fixed_stragglers": 2,
            "runs": [{"labels": {"nercc": "N"}, "optional": True}],
        },
        "attacked": {
            "kind": "vs_adversaries",
            "metrics": ["mse", "rel_acc"],
            "panels": {"sign_flip": ["adversary=sign_flip"]},
            "notes": ["drawn at one S"],
            "runs": [{"labels": {"nercc": "N", "nercc_robust": "R"}}],
        },
        "byz": {
            "kind": "adversary_convergence",
            "exponents": [0.3, 0.5],
            "fraction": 0.2,
            "num_workers": [12, 16],
            "runs": [{"labels": {"nercc_robust": "R", "nercc": "N"}}],
        },
    },
}


def _config(*changes: tuple[tuple, object]):
    """BASE with each (path, value) set; a path is the keys and list indices down to the value."""
    node = copy.deepcopy(BASE)
    for path, value in changes:
        parent = node
        for part in path[:-1]:
            parent = parent[part]
        parent[path[-1]] = value
    return OmegaConf.create(node)


def test_a_good_config_reads_into_specs():
    errors, models, figures = check_figures(_config())
    assert errors == []
    assert models == {"m": ModelSpec("m", ("model=lenet5",), "LeNet5")}
    assert figures["curves"].runs == (RunSpec(("scheme=nercc",), "A", when="auto"),)
    conv = figures["conv"]
    assert isinstance(conv, FigureSpec) and conv.options == {
        "fraction": 0.2, "num_workers": [8, 16], "fixed_stragglers": 2,
    }  # fmt: skip
    assert conv.runs[0].optional is True
    attacked = figures["attacked"]
    assert attacked.notes == ("drawn at one S",)
    assert attacked.panels == {"sign_flip": ("adversary=sign_flip",)}
    assert figures["byz"].options == {"exponents": [0.3, 0.5], "fraction": 0.2,
                                      "num_workers": [12, 16]}  # fmt: skip
    _, dry, _ = check_figures(_config((("figures", "dry"), True)))
    assert list(dry) == ["d"] and dry["d"].optional is True


REFUSALS = [
    ((("figures", "dry"), "yes"), "figures.dry: must be true or false, got 'yes'"),
    ((("figures", "tune_missing"), 1), "figures.tune_missing: must be true or false, got 1"),
    ((("figures", "output_dir"), ""), "figures.output_dir: must be a folder path, got ''"),
    # and the run that names a switch of them then names an unknown one
    ((("figures", "switches"), {"auto": "on"}),
     ["figures.switches: must map names to true or false, got {'auto': 'on'}",
      "figure.curves.runs[0].when: must be null or a key of figures.switches (none), got 'auto'"]),
    ((("figures", "common"), ["nokey"]), "figures.common[0]: must be key=value (or ~key), got "
     "'nokey'"),
    ((("figures", "models", "m", "optional"), "no"),
     "figures.models.m.optional: must be true or false, got 'no'"),
    ((("figures", "models", "m", "about"), 3), "figures.models.m.about: must be a string, got 3"),
    ((("figures", "models", "m", "colour"), "red"),
     "figures.models.m.colour: unknown key (known: about, overrides, optional, train, tune), "
     "got 'red'"),
    ((("figures", "only"), ["x"]), "figures.only: must be null or a list of m, got ['x']"),
    ((("figures", "summary_figure"), 3), "figures.summary_figure: must be null or a figure name, "
     "got 3"),
    ((("figure", "curves", "kind"), "pie"),
     "figure.curves.kind: must be one of vs_stragglers, lambda_grid, convergence, "
     "vs_adversaries, adversary_convergence, got 'pie'"),
    ((("figure", "curves", "metrics"), ["loss"]),
     "figure.curves.metrics: must be a non-empty list of mse, rel_acc, acc, agreement, got "
     "['loss']"),
    ((("figure", "curves", "runs", 0, "optional"), "maybe"),
     "figure.curves.runs[0].optional: must be true or false, got 'maybe'"),
    ((("figure", "curves", "runs", 0, "when"), "nope"),
     "figure.curves.runs[0].when: must be null or a key of figures.switches (auto), got 'nope'"),
    ((("figure", "curves", "runs", 0, "overrides"), ["hydra.run.dir=x"]),
     "figure.curves.runs[0].overrides: must not set hydra.* (each run's folder is chosen here), "
     "got ['hydra.run.dir=x']"),
    ((("figure", "conv", "fixed_stragglers"), -1),
     "figure.conv.fixed_stragglers: must be null or an integer >= 0, got -1"),
    ((("figure", "conv", "fixed_stragglers"), 1.5),
     "figure.conv.fixed_stragglers: must be null or an integer >= 0, got 1.5"),
    ((("figure", "conv", "num_workers"), [16, 8]),
     "figure.conv.num_workers: must be an increasing list of at least two N, got [16, 8]"),
    ((("figure", "conv", "fraction"), 1),
     "figure.conv.fraction: must be a number in (0, 1): S = round(fraction x N) in the "
     "fixed-fraction panel, got 1"),
    ((("figure", "conv", "metrics"), ["acc"]),
     "figure.conv.metrics: a convergence figure draws mse only, got ['acc']"),
    ((("figure", "attacked", "notes"), "one line"),
     "figure.attacked.notes: must be a list of lines, got 'one line'"),
    ((("figure", "byz", "exponents"), [0.5, 1.0]),
     "figure.byz.exponents: must be a list of distinct exponents a in [0, 1) (A = round(N^a)), "
     "got [0.5, 1.0]"),
    ((("figure", "byz", "exponents"), [0.5, 0.5]),
     "figure.byz.exponents: must be a list of distinct exponents a in [0, 1) (A = round(N^a)), "
     "got [0.5, 0.5]"),
    ((("figure", "byz", "fraction"), 1.5),
     "figure.byz.fraction: must be null or a number in (0, 1): S = round(fraction x N), got 1.5"),
    ((("figure", "byz", "fixed_stragglers"), 2),
     "figure.byz.per_model.m.fraction: exactly one of fraction and fixed_stragglers must be set "
     "(the S of each N: round(fraction x N), or a fixed S)"),
    ((("figure", "byz", "fraction"), None),
     "figure.byz.per_model.m.fraction: exactly one of fraction and fixed_stragglers must be set "
     "(the S of each N: round(fraction x N), or a fixed S)"),
    ((("figure", "byz", "num_workers"), None),
     "figure.byz.per_model.m.num_workers: must be set (or the figure's num_workers)"),
    ((("figure", "byz", "panels"), {"p": ["a=1"]}),
     "figure.byz.panels: an adversary_convergence figure has its own panels, got {'p': ['a=1']}"),
    ((("figure", "byz", "metrics"), ["mse", "rel_acc"]),
     "figure.byz.metrics: an adversary_convergence figure draws mse only, got ['mse', 'rel_acc']"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "line"), REFUSALS)
def test_refuses(change, line):
    errors, _, _ = check_figures(_config(change))
    assert [str(e) for e in errors] == (line if isinstance(line, list) else [line])
    assert all(isinstance(e, ConfigError) for e in errors)


def test_every_bad_key_is_named_at_once_in_config_order():
    errors, _, _ = check_figures(
        _config(
            (("figure", "conv", "fixed_stragglers"), -1),
            (("figures", "dry"), "yes"),
            (("figure", "curves", "kind"), "pie"),
        )
    )
    assert [e.key for e in errors] == ["figures.dry", "figure.curves.kind",
                                       "figure.conv.fixed_stragglers"]  # fmt: skip


def test_a_value_that_cannot_be_resolved_is_named():
    errors, _, _ = check_figures(_config((("figures", "output_dir"), "${nowhere}")))
    assert str(errors[0]).startswith("figures.output_dir: cannot be resolved (")
    assert "\n" not in str(errors[0])


def test_an_adversary_convergence_figure_runs_once_per_n_with_every_a_of_its_exponents():
    model = ModelSpec("m", ("model=lenet5", "stragglers=[0,2]"))
    run = RunSpec(("scheme=byzantine",), labels={"nercc_robust": "R", "nercc": "N"})
    figure = FigureSpec(
        "byz", "adversary_convergence", "t", ("mse",), (run,), ("adversary=sign_flip",),
        {"m": {"num_workers": [16, 100, 240]}},
        options={"exponents": [0.3, 0.5], "fraction": 0.2},
    )  # fmt: skip
    runs, notes = plan_runs(figure, model, common=("logger=none",))
    assert notes == [] and [r.extra["num_workers"] for r in runs] == [16, 100, 240]
    # N=16: S=round(3.2)=3, A=round(2.30)=2 and round(4)=4; N=100: S=20, A=4 and 10;
    # N=240: S=48, A=round(5.18)=5 and round(15.49)=15
    assert [r.overrides[-3:] for r in runs] == [
        ("coding.num_workers=16", "stragglers=[3]", "adversaries=[2,4]"),
        ("coding.num_workers=100", "stragglers=[20]", "adversaries=[4,10]"),
        ("coding.num_workers=240", "stragglers=[48]", "adversaries=[5,15]"),
    ]
    assert runs[0].overrides[:4] == ("logger=none", "model=lenet5", "adversary=sign_flip",
                                     "scheme=byzantine")  # fmt: skip
    assert runs[1].extra["adversaries"] == {"0.3": 4, "0.5": 10}
    assert runs[1].extra["regime"] == "S = 0.2 N" and runs[1].extra["num_stragglers"] == 20
    # a fixed S instead of the fraction; two exponents that give the same A: one A in the list
    fixed = FigureSpec("byz", "adversary_convergence", "t", ("mse",), (run,),
                       options={"exponents": [0.0, 0.1], "fixed_stragglers": 2,
                                "num_workers": [8, 9]})  # fmt: skip
    runs, _ = plan_runs(fixed, model)
    assert runs[0].overrides[-2:] == ("stragglers=[2]", "adversaries=[1]")
    assert runs[0].extra["adversaries"] == {"0": 1, "0.1": 1} and runs[0].extra["regime"] == "S = 2"


def test_adversary_convergence_point():
    assert adversary_convergence_point(100, [0.3, 0.5], 0.2, None) == (20, {0.3: 4, 0.5: 10})
    assert adversary_convergence_point(100, [0.5], 0.2, 7) == (7, {0.5: 10})  # fixed S wins
    assert adversary_convergence_point(12, [0.5], 0.125, None)[0] == 2  # 1.5: halves up
    with pytest.raises(ValueError, match="fraction or fixed must be given"):
        adversary_convergence_point(100, [0.5], None, None)
