"""The tuning task's config check: the validation config it derives, and its refusals."""

from __future__ import annotations

import pytest

from nercc.tasks.tune import check_config, upper_half_ratio
from nercc.utils.errors import ConfigError

SMALL = ["data=synthetic", "coding.num_inputs=8", "coding.num_workers=20", "stragglers=[0,4,8]"]


def test_check_config_derives_the_validation_config(compose_config):
    cfg = compose_config(
        "tune", [*SMALL, "tune.grid.lam_enc=[0,1e-6]", "tune.grid.lam_dec=[1e-4]", "tune.limit=64"]
    )
    val, space = check_config(cfg)
    assert space == {"lam_enc": [0.0, 1e-6], "lam_dec": [1e-4]}
    assert set(val.scheme) == {cfg.tune.scheme, cfg.tune.baseline}
    node = val.scheme[cfg.tune.scheme]
    assert list(node.lam_enc) == [0.0, 1e-6] and node.lambdas == "none"
    assert val.eval.split == cfg.tune.split == "val" and val.eval.limit == 64
    assert val.optimized_metric is None
    assert cfg.eval.split == "test"  # the run's own config is left as it was


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["tune.split=test"], "tune.split"),
        (["tune.search=random"], "tune.search"),
        (["tune.scheme=bacc"], "tune.baseline"),
        (["tune.search=optuna", "tune.optuna.n_trials=0"], "tune.optuna.n_trials"),
    ],
)
def test_check_config_refuses(compose_config, overrides, key):
    cfg = compose_config("tune", [*SMALL, *overrides])
    with pytest.raises(ConfigError) as error:
        check_config(cfg)
    assert error.value.key == key


def test_upper_half_ratio():
    rows = [
        {"scheme": s, "num_stragglers": n, "mse": m}
        for s, n, m in [("a", 0, 1.0), ("a", 4, 1.0), ("a", 8, 3.0), ("b", 4, 2.0), ("b", 8, 6.0)]
    ]
    assert upper_half_ratio(rows, "a", "b", [0, 4, 8]) == pytest.approx(0.5)
    assert upper_half_ratio(rows, "a", None, [0, 4, 8]) is None
    assert upper_half_ratio(rows, "a", "b", [0]) is None  # b has no S=0
