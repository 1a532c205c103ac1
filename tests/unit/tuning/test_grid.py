"""Scheme configs expanded into variants: grids, per-S tables, explicit values winning."""

import pytest
from omegaconf import OmegaConf

from nercc.coding import BACC, NeRCC
from nercc.tuning import ParamTable, expand_schemes

NERCC = {"_target_": "nercc.coding.NeRCC", "num_inputs": 4, "num_workers": 10}
BACC_NODE = {"_target_": "nercc.coding.BACC", "num_inputs": 4, "num_workers": 10}
CODE = {"num_inputs": 4, "num_workers": 10, "points": "chebyshev"}


def table(by_stragglers):
    return ParamTable("t.json", "nercc", "m", "d", CODE, by_stragglers)


def test_lambda_lists_expand_to_every_pair():
    node = OmegaConf.create(
        {"nercc": {**NERCC, "lam_enc": [0, 1e-3], "lam_dec": [0, 1e-2, 1]}, "bacc": BACC_NODE}
    )
    variants = expand_schemes(node)
    assert [(v.params["lam_enc"], v.params["lam_dec"]) for v in variants[:6]] == [
        (0, 0), (0, 1e-2), (0, 1), (1e-3, 0), (1e-3, 1e-2), (1e-3, 1),
    ]  # fmt: skip
    assert all(isinstance(v.scheme, NeRCC) for v in variants[:6])
    assert variants[4].scheme.lam_enc == 1e-3 and variants[4].scheme.lam_dec == 1e-2
    assert variants[4].label == "nercc(lam_enc=0.001,lam_dec=0.01)"
    assert isinstance(variants[6].scheme, BACC) and variants[6].label == "bacc"
    assert variants[6].params == {} and variants[6].runs_at(5)
    assert {v.source for v in variants} == {"config"}


def test_per_s_table_gives_one_variant_per_pair():
    by_s = {2: {"lam_enc": 1e-3, "lam_dec": 0.0}, 4: {"lam_enc": 1e-3, "lam_dec": 0.0}}
    by_s |= {6: {"lam_enc": 0.5, "lam_dec": 0.1}, 0: {"lam_enc": 0.0, "lam_dec": 0.0}}
    node = OmegaConf.create({"nercc": {**NERCC, "lam_enc": None, "lam_dec": None}})
    variants = expand_schemes(node, [0, 2, 4, 6, 8], {"nercc": table(by_s)})
    by_pair = {tuple(v.params.values()): sorted(v.stragglers) for v in variants}
    # S=8 is not in the table: the nearest tuned S (6) serves it
    assert by_pair == {(0.0, 0.0): [0], (1e-3, 0.0): [2, 4], (0.5, 0.1): [6, 8]}
    assert {v.label for v in variants} == {"nercc"}
    assert {v.source for v in variants} == {"table:t.json"}
    assert variants[1].runs_at(4) and not variants[1].runs_at(6)


def test_explicit_values_win_over_the_table():
    by_s = {0: {"lam_enc": 1e-3, "lam_dec": 1e-4}, 5: {"lam_enc": 1e-2, "lam_dec": 1e-1}}
    both = OmegaConf.create({"nercc": {**NERCC, "lam_enc": 1e-8, "lam_dec": 1e-9}})
    variants = expand_schemes(both, [0, 5], {"nercc": table(by_s)})
    assert len(variants) == 1 and variants[0].stragglers is None
    assert variants[0].params == {"lam_enc": 1e-8, "lam_dec": 1e-9}
    assert variants[0].source == "config"
    one = OmegaConf.create({"nercc": {**NERCC, "lam_enc": 1e-8, "lam_dec": None}})
    variants = expand_schemes(one, [0, 5], {"nercc": table(by_s)})
    assert [(v.params, sorted(v.stragglers)) for v in variants] == [
        ({"lam_enc": 1e-8, "lam_dec": 1e-4}, [0]),
        ({"lam_enc": 1e-8, "lam_dec": 1e-1}, [5]),
    ]
    assert variants[0].source == "config+table:t.json"


def test_without_a_table_null_parameters_take_the_defaults():
    node = OmegaConf.create({"nercc": {**NERCC, "lam_enc": None, "lam_dec": None}})
    (variant,) = expand_schemes(node, [0, 3], {"nercc": None})
    assert variant.params == {"lam_enc": 0.0, "lam_dec": 0.0} and variant.source == "default"


def test_a_table_for_another_code_is_refused():
    node = OmegaConf.create({"nercc": {**NERCC, "num_workers": 12, "lam_enc": None}})
    with pytest.raises(ValueError, match="tuned for num_workers=10, this run has num_workers=12"):
        expand_schemes(node, [0], {"nercc": table({0: {"lam_enc": 0.0, "lam_dec": 0.0}})})


@pytest.mark.parametrize(
    ("schemes", "message"),
    [
        ({}, "at least one scheme"),
        ({"nercc": {"num_inputs": 4}}, "scheme.nercc must be a config with a _target_"),
        ({"nercc": {**NERCC, "lam_dec": -1.0}}, "lam_dec must be a finite number >= 0, got -1.0"),
        ({"x": {"_target_": "builtins.dict"}}, "scheme.x must build a CodingScheme, got dict"),
        ({"a": NERCC, "b": {**BACC_NODE, "num_inputs": 5}}, r"the same num_inputs, got \[4, 5\]"),
    ],
)
def test_bad_scheme_configs(schemes, message):
    with pytest.raises(Exception, match=message):
        expand_schemes(OmegaConf.create(schemes), [0, 1])


def test_a_table_of_another_scheme_or_with_unknown_parameters_is_refused():
    node = OmegaConf.create({"nercc": {**NERCC, "lam_enc": None, "lam_dec": None}})
    other = ParamTable("t.json", "bacc", "m", "d", CODE, {0: {"lam_enc": 0.0, "lam_dec": 0.0}})
    with pytest.raises(ValueError, match="was tuned for scheme 'bacc', not 'nercc'"):
        expand_schemes(node, [0], {"nercc": other})
    with pytest.raises(ValueError, match="sets lam_foo, not parameters of scheme.nercc"):
        expand_schemes(node, [0], {"nercc": table({0: {"lam_foo": 1.0}})})


def test_published_other_takes_that_schemes_table_and_only_it():
    robust = {**NERCC, "_target_": "nercc.coding.RobustNeRCC", "lam_enc": None, "lam_dec": None}
    nercc = ParamTable("t.json", "nercc", "m", "d", CODE, {0: {"lam_enc": 1e-6, "lam_dec": 0.0}})
    node = OmegaConf.create({"nercc_robust": {**robust, "lambdas": "published:nercc"}})
    (variant,) = expand_schemes(node, [0], {"nercc_robust": nercc})
    assert variant.scheme.params() == {"lam_enc": 1e-6, "lam_dec": 0.0, "screen": 8.0}
    own = OmegaConf.create({"nercc_robust": {**robust, "lambdas": "published"}})
    with pytest.raises(ValueError, match="tuned for scheme 'nercc', not 'nercc_robust'"):
        expand_schemes(own, [0], {"nercc_robust": nercc})
    fh = OmegaConf.create({"nercc_robust": {**robust, "lambdas": "published:fh"}})
    with pytest.raises(ValueError, match="tuned for scheme 'nercc', not 'fh'"):
        expand_schemes(fh, [0], {"nercc_robust": nercc})


def test_the_table_code_is_checked_against_the_scheme_not_only_the_config():
    node = OmegaConf.create({"nercc": {**NERCC, "lam_enc": None, "lam_dec": None}})  # no points
    uniform = ParamTable(
        "u.json",
        "nercc",
        "m",
        "d",
        {**CODE, "points": "uniform"},
        {0: {"lam_enc": 0.0, "lam_dec": 0.0}},
    )
    with pytest.raises(ValueError, match="tuned for points=uniform, this run has points=chebyshev"):
        expand_schemes(node, [0], {"nercc": uniform})


def test_a_parameter_absent_from_the_config_is_not_called_given():
    node = OmegaConf.create({"nercc": {**NERCC, "lam_dec": None}})  # lam_enc not in the node
    by_s = {0: {"lam_enc": 1e-3, "lam_dec": 1e-4}}
    (variant,) = expand_schemes(node, [0], {"nercc": table(by_s)})
    assert variant.params == {"lam_enc": 0.0, "lam_dec": 1e-4} and variant.source == "table:t.json"


def test_gcv_is_one_value_and_lists_mix_it_with_numbers():
    node = OmegaConf.create({"nercc": {**NERCC, "lam_enc": 1e-6, "lam_dec": "gcv"}})
    (variant,) = expand_schemes(node)
    assert variant.scheme.lam_dec == "gcv" and variant.params == {"lam_enc": 1e-6}
    assert variant.label == "nercc" and variant.source == "config"
    grid = OmegaConf.create({"nercc": {**NERCC, "lam_dec": [0.0, "gcv"]}})
    variants = expand_schemes(grid)
    assert [v.scheme.lam_dec for v in variants] == [0.0, "gcv"]
    assert [v.label for v in variants] == ["nercc(lam_dec=0)", "nercc(lam_dec=gcv)"]


def test_df_lists_expand_and_null_df_means_not_used():
    node = OmegaConf.create(
        {"nercc": {**NERCC, "lam_enc": 1e-6, "lam_dec": None, "df_enc": None, "df_dec": [4, 6]}}
    )
    variants = expand_schemes(node, [0], {"nercc": None})
    assert [v.params for v in variants] == [
        {"lam_enc": 1e-6, "df_dec": 4.0}, {"lam_enc": 1e-6, "df_dec": 6.0},
    ]  # fmt: skip
    assert [v.label for v in variants] == ["nercc(df_dec=4)", "nercc(df_dec=6)"]
    # a null df beside a given lambda is not an open setting: the source stays "config"
    given = OmegaConf.create(
        {"nercc": {**NERCC, "lam_enc": 0.0, "lam_dec": 0.0, "df_enc": None, "df_dec": None}}
    )
    (variant,) = expand_schemes(given, [0], {"nercc": None})
    assert variant.source == "config" and variant.params == {"lam_enc": 0.0, "lam_dec": 0.0}


def test_a_side_given_by_df_or_gcv_wins_over_the_table_and_the_table_fills_the_other():
    by_s = {0: {"lam_enc": 1e-3, "lam_dec": 1e-4}, 5: {"lam_enc": 1e-2, "lam_dec": 1e-1}}
    nulls = {"lam_enc": None, "lam_dec": None, "df_enc": None, "df_dec": None}
    df_enc = OmegaConf.create({"nercc": {**NERCC, **nulls, "df_enc": 3.5}})
    variants = expand_schemes(df_enc, [0, 5], {"nercc": table(by_s)})
    assert [(v.params, sorted(v.stragglers)) for v in variants] == [
        ({"df_enc": 3.5, "lam_dec": 1e-4}, [0]),
        ({"df_enc": 3.5, "lam_dec": 1e-1}, [5]),
    ]
    assert {v.source for v in variants} == {"config+table:t.json"}
    gcv = OmegaConf.create({"nercc": {**NERCC, **nulls, "lam_dec": "gcv"}})
    variants = expand_schemes(gcv, [0, 5], {"nercc": table(by_s)})
    assert [(v.scheme.lam_enc, v.scheme.lam_dec) for v in variants] == [
        (1e-3, "gcv"), (1e-2, "gcv"),
    ]  # fmt: skip
    # both sides given (df_dec and lam_enc): the table is not used at all
    both = OmegaConf.create({"nercc": {**NERCC, **nulls, "lam_enc": 0.0, "df_dec": 6}})
    (variant,) = expand_schemes(both, [0, 5], {"nercc": table(by_s)})
    assert variant.params == {"lam_enc": 0.0, "df_dec": 6.0} and variant.source == "config"
    assert variant.stragglers is None


def test_a_table_with_df_fills_only_open_settings():
    by_s = {0: {"df_enc": 3.5, "lam_dec": 1e-4}}
    nulls = {"lam_enc": None, "lam_dec": None, "df_enc": None, "df_dec": None}
    node = OmegaConf.create({"nercc": {**NERCC, **nulls}})
    (variant,) = expand_schemes(node, [0], {"nercc": table(by_s)})
    assert variant.params == {"df_enc": 3.5, "lam_dec": 1e-4}
    node = OmegaConf.create({"nercc": {**NERCC, **nulls, "lam_enc": 1e-6}})
    (variant,) = expand_schemes(node, [0], {"nercc": table(by_s)})
    assert variant.params == {"lam_enc": 1e-6, "lam_dec": 1e-4}


def test_open_settings():
    from nercc.tuning.grid import open_settings

    nercc = {"_target_": "nercc.coding.NeRCC"}
    node = {**nercc, "lam_enc": None, "df_enc": None, "lam_dec": 1e-3, "df_dec": None}
    assert open_settings({**node, "points": None}) == ["lam_enc", "points"]
    assert open_settings({**nercc, "lam_enc": None, "df_enc": 5, "lam_dec": "gcv"}) == []
    # the alternatives are the scheme's declarations: a scheme without df_enc knows no such pair
    fh = {"_target_": "nercc.coding.FloaterHormann", "d": None, "df_enc": 5}
    assert open_settings(fh) == ["d"]
