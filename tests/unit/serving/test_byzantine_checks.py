"""The serving config's Byzantine workers (no Ray): indices, kinds a worker can apply alone, and
as many adversaries as a screening scheme can drop; the plan builds the adversary."""

from __future__ import annotations

import pytest
from omegaconf import open_dict

from nercc.adversaries import SignFlipAdversary
from nercc.runtime import checks
from nercc.serving.plan import serving_plan
from nercc.utils.errors import ConfigError

# K=2, N=8, S=1: a screening scheme decodes N - S = 7 answers, and drops at most (7 - 2) // 2 = 2
SMALL = [
    "data=synthetic",
    "coding.num_inputs=2",
    "coding.num_workers=8",
    "serving.num_stragglers=1",
    "delay=none",
]


def with_robust(cfg):
    """The config with a screening NeRCC (``nercc_robust``) beside the scheme=all ones."""
    with open_dict(cfg):
        cfg.scheme.nercc_robust = {
            "_target_": "nercc.coding.RobustNeRCC",
            "num_inputs": 2,
            "num_workers": 8,
            "screen": 4.0,
        }
    return cfg


def refusal(cfg, schemes=None) -> str:
    with pytest.raises(ConfigError) as refused:
        checks.check_serve(cfg, schemes)
    message = str(refused.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("overrides", "start", "got"),
    [
        (["serving.adversaries=[8]"], "serving.adversaries: must be a list of distinct worker "
         "indices in [0, 8) (N=8)", "got [8]"),
        (["serving.adversaries=[-1]"], "serving.adversaries: must be a list", "got [-1]"),
        (["serving.adversaries=3"], "serving.adversaries: must be a list", "got 3"),
        (["serving.adversaries=[true]"], "serving.adversaries: must be a list", "got [True]"),
        (["serving.adversaries=[1,1]", "adversary=sign_flip"],
         "serving.adversaries: must be a list of distinct worker indices in [0, 8) (N=8): no "
         "index twice", "got [1, 1]"),
        (["serving.adversaries=[1]"], "serving.adversaries: adversary=none cannot make workers "
         "[1] lie", "got [1]"),
        (["serving.adversaries=[1]", "adversary=targeted"], "adversary: targeted aims at a whole "
         "group's decoded estimate", "got 'targeted'"),
        (["serving.adversaries=[1]", "adversary=sign_flip", "adversary.placement=adversarial"],
         "adversary.placement: adversarial placement reads a whole group's decoder",
         "got 'adversarial'"),
        (["adversary=sign_flip", "adversary.scale=-1"], "adversary.scale: must be", "got -1"),
        (["serving.flag_fraction=1"], "serving.flag_fraction: must be", "got 1"),
        (["serving.flag_window=0"], "serving.flag_window: must be an integer >= 1", "got 0"),
        (["serving.exclude_groups=0"], "serving.exclude_groups: must be an integer >= 1",
         "got 0"),
    ],
)  # fmt: skip
def test_bad_byzantine_settings_are_refused_in_one_line(compose_config, overrides, start, got):
    message = refusal(compose_config("serve", [*SMALL, *overrides]))
    assert message.startswith(start) and message.endswith(got), message


def test_a_screening_scheme_takes_at_most_what_it_can_drop(compose_config):
    """nercc_robust drops at most (N - S - K) // 2 = 2 of 7 answers: 3 adversaries are refused
    when it is served, and allowed for plain schemes (which screen nothing, the comparison)."""
    lying = ["adversary=sign_flip", "serving.adversaries=[1,4,6]"]
    cfg = with_robust(compose_config("serve", [*SMALL, *lying]))
    message = refusal(cfg, ["nercc", "nercc_robust"])
    assert message == (
        "serving.adversaries: nercc_robust screens at most (N - S - K) // 2 = 2 adversarial "
        "answers of the N - S = 7 it decodes (K=2); use fewer, or a smaller S, got [1, 4, 6]"
    )
    checks.check_serve(cfg, ["uncoded", "nercc", "bacc"])
    cfg = with_robust(compose_config("serve", [*SMALL, "adversary=sign_flip",
                                               "serving.adversaries=[1,6]"]))  # fmt: skip
    checks.check_serve(cfg, ["nercc", "nercc_robust"])


def test_the_plan_builds_the_adversary_for_the_workers_named(compose_config):
    cfg = compose_config(
        "serve", [*SMALL, "adversary=sign_flip", "adversary.scale=5", "serving.adversaries=[3]"]
    )
    checks.check_serve(cfg)
    plan = serving_plan(cfg, ["nercc"])
    assert isinstance(plan.adversary, SignFlipAdversary) and plan.adversary.scale == 5.0
    assert plan.adversaries == [3]
    assert any("workers [3] answer adversarially" in note for note in plan.notes)
    options = plan.frontend_options(cfg, "nercc")
    assert options["flag_fraction"] == 0.5 and options["flag_window"] == 20
    honest = serving_plan(compose_config("serve", [*SMALL, "adversary=sign_flip"]), ["nercc"])
    assert honest.adversary is None and honest.adversaries == []
