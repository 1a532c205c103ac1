"""The serving config's hedge settings (no Ray): refused in one line naming the key and the
value; the plan builds the hedged scheme from them."""

from __future__ import annotations

import pytest

from nercc.runtime import checks
from nercc.serving.hedging import Hedged
from nercc.serving.plan import serving_plan
from nercc.utils.errors import ConfigError

SMALL = [
    "data=synthetic",
    "coding.num_inputs=2",
    "coding.num_workers=4",
    "serving.num_stragglers=1",
    "delay=none",
]


@pytest.mark.parametrize(
    ("config", "overrides", "message"),
    [
        ("serve", ["serving.hedge_after_ms=0"], "serving.hedge_after_ms: must be a finite number "
         "> 0 (milliseconds) or auto, got 0"),
        ("serve", ["serving.hedge_after_ms=-5"], "serving.hedge_after_ms: must be a finite "
         "number > 0 (milliseconds) or auto, got -5"),
        ("serve", ["serving.hedge_after_ms=fast"], "serving.hedge_after_ms: must be a finite "
         "number > 0 (milliseconds) or auto, got 'fast'"),
        ("serve", ["serving.hedge_after_ms=true"], "serving.hedge_after_ms: must be a finite "
         "number > 0 (milliseconds) or auto, got True"),
        ("serve", ["serving.hedge_after_ms=null"], "serving.hedge_after_ms: must be a finite "
         "number > 0 (milliseconds) or auto, got None"),
        ("serve", ["serving.hedge_percentile=100"], "serving.hedge_percentile: must be a finite "
         "number in (0, 100), got 100"),
        ("serve", ["serving.hedge_percentile=0"], "serving.hedge_percentile: must be a finite "
         "number in (0, 100), got 0"),
        ("serve", ["serving.hedge_percentile=auto"], "serving.hedge_percentile: must be a finite "
         "number in (0, 100), got 'auto'"),
        ("serve", ["serving.scheme=hedged", "coding.num_workers=2"], "coding.num_workers: hedged "
         "needs a spare to hedge to: N > K=2 (K primaries, N - K spares), got 2"),
        ("loadtest", ["loadtest.schemes=[uncoded,hedged]", "coding.num_workers=2"],
         "coding.num_workers: hedged needs a spare to hedge to: N > K=2 (K primaries, N - K "
         "spares), got 2"),
    ],
)  # fmt: skip
def test_bad_hedge_settings_are_refused_in_one_line(compose_config, config, overrides, message):
    cfg = compose_config(config, [*SMALL, *overrides])
    check = checks.check_loadtest if config == "loadtest" else checks.check_serve
    with pytest.raises(ConfigError) as refused:
        check(cfg)
    assert str(refused.value) == message


def test_hedged_is_served_by_name_beside_uncoded(compose_config):
    """``hedged`` needs no scheme node: serve and load-test configs take it (the settings'
    defaults: auto at p95), and a fixed delay; without hedged served, N = K is fine."""
    checks.check_serve(compose_config("serve", [*SMALL, "serving.scheme=hedged"]))
    cfg = compose_config(
        "loadtest", [*SMALL, "loadtest.schemes=[uncoded,hedged,nercc]", "loadtest.num_queries=50"]
    )
    checks.check_loadtest(cfg)
    assert (cfg.serving.hedge_after_ms, cfg.serving.hedge_percentile) == ("auto", 95)
    checks.check_serve(compose_config("serve", [*SMALL, "serving.hedge_after_ms=12.5"]))
    checks.check_serve(compose_config("serve", [*SMALL, "coding.num_workers=2",
                                                "serving.scheme=uncoded"]))  # fmt: skip


def test_the_plan_builds_hedged_requests_from_the_settings(compose_config):
    cfg = compose_config("loadtest", [*SMALL, "loadtest.schemes=[uncoded,hedged]"])
    plan = serving_plan(cfg, ["uncoded", "hedged"])
    scheme = plan.schemes["hedged"]
    assert isinstance(scheme, Hedged)
    assert (scheme.num_inputs, scheme.num_workers) == (2, 4)
    assert (scheme.after_ms, scheme.percentile, scheme.window) == ("auto", 95.0, 1000)
    assert plan.policies["hedged"].num_stragglers == 0
    assert plan.notes == [
        "hedged: 2 primaries, 2 spares; an unanswered input is hedged after the p95 of the "
        "last 1000 answers' latencies (no hedge on time before 20 answers)"
    ]
    fixed = compose_config("serve", [*SMALL, "serving.hedge_after_ms=30"])
    plan = serving_plan(fixed, ["hedged"])
    assert plan.schemes["hedged"].after_ms == 30.0
    assert plan.notes == [
        "hedged: 2 primaries, 2 spares; an unanswered input is hedged after 30 ms"
    ]
