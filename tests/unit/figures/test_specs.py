"""Figure configs are read with the config checks' readers: every bad key of ``figures.*`` and
``figure.*`` is one ``<key>: <what>, got <value>`` line, all of them at once, in config order."""

from __future__ import annotations

import copy

import pytest
from omegaconf import OmegaConf

from nercc.figures.specs import FigureSpec, ModelSpec, RunSpec, check_figures
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
     "figure.curves.kind: must be one of vs_stragglers, lambda_grid, convergence, got 'pie'"),
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
