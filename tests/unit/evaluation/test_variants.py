"""Scheme configs expanded into variants."""

import pytest
from omegaconf import OmegaConf

from nercc.coding import BACC, NeRCC
from nercc.evaluation import expand_schemes

NERCC = {"_target_": "nercc.coding.NeRCC", "num_inputs": 4, "num_workers": 10}
BACC_NODE = {"_target_": "nercc.coding.BACC", "num_inputs": 4, "num_workers": 10}


def test_lambda_lists_expand_to_every_pair():
    node = OmegaConf.create(
        {"nercc": {**NERCC, "lam_enc": [0, 1e-3], "lam_dec": [0, 1e-2, 1]}, "bacc": BACC_NODE}
    )
    variants = expand_schemes(node)
    assert [(v.lam_enc, v.lam_dec) for v in variants[:6]] == [
        (0, 0), (0, 1e-2), (0, 1), (1e-3, 0), (1e-3, 1e-2), (1e-3, 1),
    ]  # fmt: skip
    assert all(isinstance(v.scheme, NeRCC) for v in variants[:6])
    assert variants[4].scheme.lam_enc == 1e-3 and variants[4].scheme.lam_dec == 1e-2
    assert variants[4].label == "nercc(enc=0.001,dec=0.01)"
    assert isinstance(variants[6].scheme, BACC) and variants[6].label == "bacc"
    assert variants[6].lam_enc is None and variants[6].runs_at(5)


def test_per_s_table_gives_one_variant_per_pair():
    table = {2: [1e-3, 0.0], "4": [1e-3, 0.0], 6: [0.5, 0.1]}
    node = OmegaConf.create(
        {"nercc": {**NERCC, "lam_enc": 0.0, "lam_dec": 0.0, "lams_by_stragglers": table}}
    )
    variants = expand_schemes(node, [0, 2, 4, 6, 8])
    by_pair = {(v.lam_enc, v.lam_dec): sorted(v.stragglers) for v in variants}
    assert by_pair == {(0.0, 0.0): [0, 8], (1e-3, 0.0): [2, 4], (0.5, 0.1): [6]}
    assert {v.label for v in variants} == {"nercc"}
    assert variants[0].runs_at(8) and not variants[0].runs_at(2)


@pytest.mark.parametrize(
    ("schemes", "message"),
    [
        ({}, "at least one scheme"),
        ({"nercc": {"num_inputs": 4}}, "scheme.nercc must be a config with a _target_"),
        ({"nercc": {**NERCC, "lam_dec": -1.0}}, "lam_dec must be a finite number >= 0, got -1.0"),
        ({"x": {"_target_": "builtins.dict"}}, "scheme.x must build a CodingScheme, got dict"),
        ({"a": NERCC, "b": {**BACC_NODE, "num_inputs": 5}}, r"the same num_inputs, got \[4, 5\]"),
        (
            {"nercc": {**NERCC, "lam_dec": [0, 1], "lams_by_stragglers": {1: [0, 0]}}},
            "lams_by_stragglers=null",
        ),
        (
            {"nercc": {**NERCC, "lams_by_stragglers": {1: [0]}}},
            r"lams_by_stragglers.1 must be \[lam_enc, lam_dec\]",
        ),
    ],
)
def test_bad_scheme_configs(schemes, message):
    with pytest.raises(Exception, match=message):
        expand_schemes(OmegaConf.create(schemes), [0, 1])
