"""The tuning task's config check: the validation config it derives, and its refusals."""

from __future__ import annotations

import pytest

from nercc.tasks.tune import check_config, upper_half_ratio
from nercc.utils.errors import ConfigError

SMALL = ["data=synthetic", "coding.num_inputs=8", "coding.num_workers=20", "stragglers=[0,4,8]"]


def test_check_config_derives_the_validation_config(compose_config):
    cfg = compose_config(
        "tune", [*SMALL, "tune.grid={lam_enc:[0,1e-6],lam_dec:[1e-4]}", "tune.limit=64"]
    )
    val, space = check_config(cfg)
    assert space == {"lam_enc": [0.0, 1e-6], "lam_dec": [1e-4]}
    assert set(val.scheme) == {cfg.tune.scheme, cfg.tune.baseline}
    node = val.scheme[cfg.tune.scheme]
    assert list(node.lam_enc) == [0.0, 1e-6] and node.lambdas == "none"
    assert val.eval.split == cfg.tune.split == "val" and val.eval.limit == 64
    assert val.optimized_metric is None
    assert cfg.eval.split == "test"  # the run's own config is left as it was


def test_without_a_grid_the_scheme_declares_it(compose_config):
    from nercc.coding import NeRCC

    cfg = compose_config("tune", SMALL)
    assert cfg.tune.grid is None and cfg.tune.optuna.ranges is None
    _, space = check_config(cfg)
    assert space == {name: list(NeRCC.tunable(name).grid) for name in ("lam_enc", "lam_dec")}
    # one parameter given: the other setting keeps its declared grid (either override form)
    for given in ("+tune.grid.lam_enc=[0,1e-6]", "tune.grid={lam_enc:[0,1e-6]}"):
        _, space = check_config(compose_config("tune", [*SMALL, given]))
        assert space == {"lam_enc": [0.0, 1e-6], "lam_dec": list(NeRCC.tunable("lam_dec").grid)}
    _, space = check_config(compose_config("tune", [*SMALL, "tune.search=optuna"]))
    assert space == {"lam_enc": [1e-12, 1e-3], "lam_dec": [1e-12, 1e-5]}


def test_another_scheme_is_tuned_over_what_it_declares(compose_config):
    fh = [*SMALL, "scheme=floater_hormann", "tune.scheme=fh", "tune.baseline=null"]
    val, space = check_config(compose_config("tune", fh))
    assert space == {"d": [0.0, 1.0, 2.0, 3.0, 4.0]}
    assert list(val.scheme) == ["fh"] and list(val.scheme.fh.d) == space["d"]
    _, space = check_config(compose_config("tune", [*fh, "tune.grid={d:[1,2]}"]))
    assert space == {"d": [1.0, 2.0]}
    _, space = check_config(compose_config("tune", [*fh, "tune.search=optuna"]))
    assert space == {"d": [0.0, 10.0]}


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["tune.split=test"], "tune.split"),
        (["tune.search=random"], "tune.search"),
        (["tune.scheme=bacc"], "tune.baseline"),
        (["tune.search=optuna", "tune.optuna.n_trials=0"], "tune.optuna.n_trials"),
        (["tune.scheme=bacc", "tune.baseline=null"], "tune.scheme"),  # declares nothing
        (["tune.grid={lam_enc:[0],df_enc:[4]}"], "tune.grid.df_enc"),  # one setting, twice
        (
            [
                "scheme=floater_hormann",
                "tune.scheme=fh",
                "tune.baseline=null",
                "tune.grid={d:[0,1.5]}",
            ],
            "tune.grid.d",
        ),  # fmt: skip
        (
            [
                "scheme=floater_hormann",
                "tune.scheme=fh",
                "tune.baseline=null",
                "tune.grid={lam_enc:[0]}",
            ],
            "tune.grid.lam_enc",
        ),  # fmt: skip
        (
            ["tune.search=optuna", "tune.optuna.ranges={lam_enc:[0,1e-3]}"],
            "tune.optuna.ranges.lam_enc",
        ),  # fmt: skip
        (["tune.grid=[0,1]"], "tune.grid"),
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
