"""What a serving config serves (no Ray): NeRCC's lambdas at S from the published table for the
serving code, a note when there is none, a broken table named by its key, and the warning for a
table tuned on another checkpoint."""

from __future__ import annotations

import json

import pytest

from nercc.coding import NeRCC, Uncoded
from nercc.serving.plan import serving_plan, table_warnings
from nercc.tuning.tables import table_document, table_path
from nercc.utils.errors import ConfigError

SETTINGS = [
    "data=synthetic",
    "coding.num_inputs=2",
    "coding.num_workers=4",
    "serving.num_stragglers=1",
    "delay=none",
]


def publish(cfg, sha256=None):
    """A table for lenet5 on synthetic with K=2, N=4: S=1 and S=2 with different lambdas."""
    code = {"num_inputs": 2, "num_workers": 4, "points": "chebyshev"}
    path = table_path(cfg.paths.lambdas_dir, "lenet5", "synthetic", "nercc", code)
    path.parent.mkdir(parents=True, exist_ok=True)
    content = {
        "scheme": "nercc", "model": "lenet5", "dataset": "synthetic", "code": code,
        "params_by_stragglers": {
            "1": {"lam_enc": 0.001, "lam_dec": 0.002}, "2": {"lam_enc": 0.5, "lam_dec": 0.25},
        },
        "checkpoint_sha256": sha256,
    }  # fmt: skip
    path.write_text(json.dumps(table_document(content)))
    return path


def test_nercc_takes_the_published_lambdas_at_the_served_s(compose_config):
    cfg = compose_config("serve", SETTINGS)
    path = publish(cfg)
    plan = serving_plan(cfg, ["uncoded", "nercc"])
    assert list(plan.schemes) == ["uncoded", "nercc"]
    assert isinstance(plan.schemes["uncoded"], Uncoded) and plan.schemes["uncoded"].num_inputs == 2
    nercc = plan.schemes["nercc"]
    assert isinstance(nercc, NeRCC) and (nercc.num_inputs, nercc.num_workers) == (2, 4)
    assert nercc.params() == {"lam_enc": 0.001, "lam_dec": 0.002}  # S=1's row, not S=2's
    assert plan.tables["nercc"].path == path
    assert plan.policies["uncoded"].num_stragglers == 0
    assert plan.policies["nercc"].num_stragglers == 1
    assert plan.delays is None and plan.num_workers == 4
    assert plan.notes == [f"nercc: lam_enc 0.001, lam_dec 0.002 from {path} (S=1)"]


def test_a_value_in_the_config_wins_over_the_table(compose_config):
    cfg = compose_config("serve", [*SETTINGS, "scheme.nercc.lam_enc=0.1", "scheme.nercc.lam_dec=0"])
    publish(cfg)
    plan = serving_plan(cfg, ["nercc"])
    assert plan.schemes["nercc"].params() == {"lam_enc": 0.1, "lam_dec": 0.0}


def test_without_a_table_nercc_interpolates_and_says_how_to_tune(compose_config):
    cfg = compose_config("serve", SETTINGS)
    plan = serving_plan(cfg, ["nercc", "bacc"])
    assert plan.tables == {"nercc": None, "bacc": None}
    assert plan.schemes["nercc"].params() == {"lam_enc": 0.0, "lam_dec": 0.0}
    assert plan.notes == [
        "no tuned table for lenet5 on synthetic with K=2, N=4: nercc serves with its defaults "
        "(0: interpolation); tune with: python -m nercc.tune experiment=paper/lenet5 "
        "coding.num_inputs=2 coding.num_workers=4 stragglers=[1]"
    ]


def test_a_broken_table_is_named_by_its_key(compose_config, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    cfg = compose_config("serve", [*SETTINGS, f"scheme.nercc.lambdas={broken}"])
    with pytest.raises(ConfigError, match=r"^scheme\.nercc\.lambdas: .*broken\.json"):
        serving_plan(cfg, ["nercc"])


def test_a_table_tuned_on_another_checkpoint_is_warned_about(compose_config, tmp_path):
    cfg = compose_config("serve", SETTINGS)
    path = publish(cfg, sha256="0" * 64)
    plan = serving_plan(cfg, ["nercc"])
    checkpoint = tmp_path / "lenet5_synthetic.ckpt"
    assert table_warnings(plan, checkpoint, "0" * 64) == []
    assert table_warnings(plan, checkpoint, "1" * 64) == [
        f"warning: {path} was tuned on another checkpoint than {checkpoint} (content hash "
        "differs): retune with python -m nercc.tune"
    ]
