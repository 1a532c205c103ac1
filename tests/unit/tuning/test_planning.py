"""The one table lookup of evaluation and serving (nercc.tuning.planning)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from nercc.tuning import publish_table
from nercc.tuning.planning import code_key, scheme_tables, table_notes, untuned
from nercc.utils.errors import ConfigError

CODE = {"num_inputs": 8, "num_workers": 20, "points": "chebyshev"}


def config(tmp_path, **nercc):
    node = {"_target_": "nercc.coding.NeRCC", "num_inputs": 8, "num_workers": 20}
    node.update(lam_enc=None, lam_dec=None)
    return OmegaConf.create(
        {
            "model_name": "lenet5",
            "data": {"name": "synthetic"},
            "paths": {"lambdas_dir": str(tmp_path)},
            "stragglers": [0, 4],
            "scheme": {
                "nercc": {**node, "lambdas": "published", **nercc},
                "bacc": {"_target_": "nercc.coding.BACC", "num_inputs": 8, "num_workers": 20},
            },
        }
    )


def publish(tmp_path, code=CODE, stragglers=(0, 4)):
    content = {
        "scheme": "nercc", "model": "lenet5", "dataset": "synthetic", "code": code,
        "params_by_stragglers": {str(s): {"lam_enc": 1e-6, "lam_dec": 1e-4} for s in stragglers},
        "found_by": {"split": "val"},
    }  # fmt: skip
    return publish_table(content, tmp_path)[0]


def test_a_published_table_is_found_for_the_nodes_code(tmp_path):
    path = publish(tmp_path)
    cfg = config(tmp_path)
    tables = scheme_tables(cfg, ["nercc", "bacc"])
    assert tables["bacc"] is None  # it names no table
    assert tables["nercc"].path == path and tables["nercc"].by_stragglers[4]["lam_dec"] == 1e-4
    assert table_notes(cfg, "nercc", tables["nercc"]) == []
    assert code_key(cfg.scheme.nercc) == CODE | {"order": "none", "grouping": "arrival"}


def test_a_table_is_per_arrangement_and_one_tuned_for_another_is_refused(tmp_path):
    """Lambdas depend on how the inputs are ordered and grouped: the published table of an
    arrangement is its own file, found only by runs with it; a table given by path that was
    tuned for another arrangement is refused in one line naming both and the tune command."""
    default = publish(tmp_path)
    arranged = publish(tmp_path, CODE | {"order": "path", "grouping": "sorted"})
    assert arranged.name == "lenet5_synthetic_nercc_K8_N20_chebyshev_path_sorted.json"
    cfg = config(tmp_path)
    cfg.coding = {"order": "path", "grouping": "sorted"}
    assert scheme_tables(cfg, ["nercc"])["nercc"].path == arranged
    cfg.coding = {"order": "pc1", "grouping": "sorted"}
    assert scheme_tables(cfg, ["nercc"])["nercc"] is None  # none published for it
    (note,) = table_notes(cfg, "nercc", None)
    assert "inputs ordered pc1, grouped sorted" in note
    cfg.scheme.nercc.lambdas = str(default)
    with pytest.raises(ConfigError) as error:
        scheme_tables(cfg, ["nercc"])
    assert str(error.value) == (
        f"scheme.nercc.lambdas: {default} was tuned with the inputs ordered none, grouped "
        "arrival; this run orders them pc1, groups them sorted (lambdas depend on it): tune "
        "for it with python -m nercc.tune coding.order=pc1 coding.grouping=sorted"
    )
    cfg.coding = {"order": "none", "grouping": "arrival"}
    assert scheme_tables(cfg, ["nercc"])["nercc"].path == default


def test_a_given_code_wins_over_the_nodes(tmp_path):
    # serving passes its coding node: K and N from there, the points from the scheme
    path = publish(tmp_path, {**CODE, "num_inputs": 4, "num_workers": 12})
    cfg = config(tmp_path)
    assert scheme_tables(cfg, ["nercc"])["nercc"] is None
    given = scheme_tables(cfg, ["nercc"], code={"num_inputs": 4, "num_workers": 12})
    assert given["nercc"].path == path


def test_none_published_is_untuned_and_noted_when_settings_are_open(tmp_path):
    cfg = config(tmp_path)
    tables = scheme_tables(cfg, ["nercc"])
    assert tables == {"nercc": None} and untuned(cfg.scheme.nercc, None)
    (note,) = table_notes(cfg, "nercc", None)
    assert note.startswith("no tuned table for lenet5 on synthetic with K=8, N=20, chebyshev")
    assert "nercc runs with its defaults for lam_enc, lam_dec" in note
    given = config(tmp_path, lam_enc=1e-6, lam_dec=0.0)
    assert table_notes(given, "nercc", None) == []  # nothing left open: nothing to say
    assert not untuned(config(tmp_path, lambdas="none").scheme.nercc, None)


def test_notes_of_a_table_unused_or_short_of_an_s(tmp_path):
    publish(tmp_path, stragglers=(0,))
    cfg = config(tmp_path)
    table = scheme_tables(cfg, ["nercc"])["nercc"]
    assert table_notes(cfg, "nercc", table) == [f"{table.path} has no S=4: nercc uses S=0's"]
    given = config(tmp_path, lam_enc=1e-6, lam_dec=0.0)
    (note,) = table_notes(given, "nercc", table)
    assert note == f"nercc: parameters given in the config; the table {table.path} is unused"


@pytest.mark.parametrize("setting", ["", "/no/such/table.json", 3])
def test_a_bad_setting_names_the_schemes_key(tmp_path, setting):
    cfg = config(tmp_path, lambdas=setting)
    with pytest.raises(ConfigError) as error:
        scheme_tables(cfg, ["nercc"])
    assert error.value.key == "scheme.nercc.lambdas"
