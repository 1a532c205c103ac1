"""The demo task called directly: its rows, its straggler model, and its refusals (one row each)."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from nercc.paths import CONFIG_DIR
from nercc.stragglers import Availability, FixedStragglers, StragglerModel
from nercc.tasks.demo import check_config, coding_demo, demo
from nercc.utils.errors import ConfigError

SMALL = dict(num_inputs=8, num_workers=30, stragglers=[0, 10], trials=5, features=6, logits=3)


def _config(overrides: list[str], output_dir) -> object:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("demo", [f"output_dir={output_dir}", *overrides])


def test_rows_and_reproducibility():
    rows = coding_demo(**SMALL, nercc_lams=[(0.0, 0.0)], seed=3)
    assert [(r["scheme"], r["num_stragglers"]) for r in rows] == [
        ("bacc", 0),
        ("nercc(0, 0)", 0),
        ("bacc", 10),
        ("nercc(0, 0)", 10),
    ]
    assert rows == coding_demo(**SMALL, nercc_lams=[(0.0, 0.0)], seed=3)
    assert rows != coding_demo(**SMALL, nercc_lams=[(0.0, 0.0)], seed=4)
    # the default model is the paper's: exactly S of N at random
    assert rows == coding_demo(**SMALL, nercc_lams=[(0.0, 0.0)], seed=3, straggler=FixedStragglers)
    mse = {(r["scheme"], r["num_stragglers"]): r["mse"] for r in rows}
    # Cubic splines approximate a smooth f far better than Berrut with every worker answering.
    assert mse[("nercc(0, 0)", 0)] < 0.5 * mse[("bacc", 0)]
    assert mse[("bacc", 10)] > mse[("bacc", 0)]


class _NobodyStraggles(StragglerModel):
    """A model whose patterns keep every worker whatever S: the rows must not depend on S."""

    def _draw(self, p, n, generator, scheme):
        return Availability(torch.ones(p, n, dtype=torch.bool))


def test_the_straggler_model_draws_the_patterns():
    kept = coding_demo(**SMALL, nercc_lams=[(0.0, 0.0)], straggler=_NobodyStraggles)
    mse = {(r["scheme"], r["num_stragglers"]): r["mse"] for r in kept}
    assert mse[("bacc", 10)] == mse[("bacc", 0)]
    assert mse[("nercc(0, 0)", 10)] == mse[("nercc(0, 0)", 0)]
    fixed = coding_demo(**SMALL, nercc_lams=[(0.0, 0.0)])
    assert fixed[2]["mse"] > kept[2]["mse"]  # bacc at S = 10: stragglers cost accuracy


def test_impossible_stragglers_are_refused():
    with pytest.raises(ValueError, match="stragglers.*30"):
        coding_demo(**{**SMALL, "stragglers": [30]}, nercc_lams=[])


def test_task_writes_its_rows(tmp_path):
    cfg = _config(["trials=2", "stragglers=[0,3]", "coding.num_workers=12",
                   "coding.num_inputs=4", "straggler=bernoulli"], tmp_path)  # fmt: skip
    metrics, _ = demo(cfg)
    assert len(metrics["rows"]) == 2 * 3
    assert (tmp_path / "results.json").is_file() and (tmp_path / "results.csv").is_file()


# (overrides, key, what the one-line error must contain)
REFUSALS = [
    (["trials=0"], "trials", "got 0"),
    (["trials=abc"], "trials", "got 'abc'"),
    (["coding.num_workers=5"], "coding.num_workers", "got 5"),
    (["coding.num_inputs=0"], "coding.num_inputs", "got 0"),
    (["stragglers=[100]"], "stragglers", "coding.num_workers - 1 = 99, got [100]"),
    (["stragglers=[2.5]"], "stragglers", "got [2.5]"),
    (["stragglers=[]"], "stragglers", "got []"),
    (["nercc_lams=[[1]]"], "nercc_lams", "got [[1]]"),
    (["nercc_lams=[[0,-1]]"], "nercc_lams", "got [[0, -1]]"),
    (["nercc_lams=[]"], "nercc_lams", "got []"),
    (["nercc_lams=[[1e300,0]]"], "nercc_lams", "1e+300"),
    (["coding.points=random"], "coding.points", "got 'random'"),
    (["features=0"], "features", "got 0"),
    (["logits=-1"], "logits", "got -1"),
    (["seed=x"], "seed", "got 'x'"),
    # the straggler model: its own settings, a setting it does not take, S it ignores
    (["straggler=worst_case", "straggler.placement=middle"], "straggler.placement",
     "got 'middle'"),
    (["straggler=bernoulli", "straggler.p=1.5"], "straggler.p", "got 1.5"),
    (["+straggler.p=0.5"], "straggler.p", "is not a setting of FixedStragglers"),
    (["straggler=bernoulli", "straggler.p=0.2"], "straggler.p", "ignores S"),
    (["straggler=latency", "+straggler.deadline=2.0"], "straggler.deadline", "ignores S"),
    (["straggler._target_=nercc.stragglers.FixedStragglers", "+straggler.q=1"], "straggler.q",
     "is not a setting"),
    (["straggler._target_=nercc.stragglers.Availability"], "straggler", "'num_stragglers'"),
    (["output_dir=/proc/nercc-demo"], "output_dir", "/proc/nercc-demo"),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "key", "what"), REFUSALS)
def test_check_refuses(tmp_path, overrides, key, what):
    cfg = _config(overrides, tmp_path)
    with pytest.raises(ConfigError) as error:
        check_config(cfg)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{key}: ") and what in message, message


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["coding.num_inputs=6", "coding.num_workers=6", "stragglers=[0,5]"],
        ["straggler=bernoulli"],
        ["straggler=bernoulli", "straggler.p=0.2", "stragglers=[20]"],
        ["straggler=worst_case", "straggler.placement=random"],
        ["straggler=latency", "+straggler.deadline=2.0", "stragglers=[0]"],
        ["coding.points=uniform"],
    ],
)
def test_check_accepts(tmp_path, overrides):
    factory = check_config(_config(overrides, tmp_path))
    assert isinstance(factory(num_stragglers=0), StragglerModel)
