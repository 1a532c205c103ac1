"""Published parameter tables: round trip, backups, and one clear line for a bad file."""

import json
import os
from pathlib import Path

import pytest

from nercc.tuning import ParamTable, load_table, publish_table, resolve_table, table_path

CODE = {"num_inputs": 20, "num_workers": 100, "points": "chebyshev"}


def content(**changes):
    base = {
        "scheme": "nercc",
        "model": "lenet5",
        "dataset": "fashion_mnist",
        "code": CODE,
        "checkpoint_sha256": "ab" * 32,
        "params_by_stragglers": {
            "0": {"lam_enc": 0.0, "lam_dec": 0.0},
            "40": {"lam_enc": 1e-8, "lam_dec": 1e-9},
        },
        "found_by": {"split": "val"},
    }
    return {**base, **changes}


def _doc(**changes):
    return json.dumps({**content(**changes), "format": "nercc-param-table", "format_version": 1})


def test_publish_and_load_round_trip_with_a_backup(tmp_path):
    path, backup, _ = publish_table(content(), tmp_path)
    assert path == tmp_path / "lenet5_fashion_mnist_nercc_K20_N100_chebyshev.json"
    assert backup is None and oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    table = load_table(path)
    assert table.by_stragglers == {
        0: {"lam_enc": 0.0, "lam_dec": 0.0},
        40: {"lam_enc": 1e-8, "lam_dec": 1e-9},
    }
    # a table that records no arrangement was tuned with the inputs as they came
    assert table.code == CODE | {"order": "none", "grouping": "arrival"}
    assert table.checkpoint_sha256 == "ab" * 32
    assert table.params_at(30) == ({"lam_enc": 1e-8, "lam_dec": 1e-9}, 40)
    assert table.params_at(20) == ({"lam_enc": 0.0, "lam_dec": 0.0}, 0)  # a tie: the smaller S
    first = path.read_bytes()
    path2, backup, _ = publish_table(content(found_by={"split": "val", "run": 2}), tmp_path)
    assert path2 == path and backup.read_bytes() == first
    assert json.loads(path.read_text())["found_by"]["run"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".publish.lock",  # the publishing lock (fcntl), left for the next publisher
        "lenet5_fashion_mnist_nercc_K20_N100_chebyshev.json",
        "lenet5_fashion_mnist_nercc_K20_N100_chebyshev.previous.json",
    ]


@pytest.mark.parametrize("order", [(0, 40, 10), (40, 10, 0), (10, 40, 0)])
def test_the_nearest_tuned_s_on_a_tie_is_the_smaller_one(order):
    # in whatever order the table lists its S (a table built in memory need not sort them)
    table = ParamTable(
        path=Path("t.json"), scheme="nercc", model="lenet5", dataset="fashion_mnist", code=CODE,
        by_stragglers={s: {"lam_enc": float(s)} for s in order},
    )  # fmt: skip
    assert table.params_at(5) == ({"lam_enc": 0.0}, 0)  # 0 and 10 are both 5 away
    assert table.params_at(25) == ({"lam_enc": 10.0}, 10)  # 10 and 40 are 15 away
    assert table.params_at(26) == ({"lam_enc": 40.0}, 40)
    assert table.params_at(40) == ({"lam_enc": 40.0}, 40)
    assert table.params_at(99) == ({"lam_enc": 40.0}, 40)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_publishing_over_a_table_written_after_the_run_started_says_so(tmp_path):
    # two sequential publishes: the second run started (since) before the first wrote its
    # table, so it replaces another run's table and is told when that one was written
    import time

    started = time.time() - 60  # the second run started before the first publish
    first, _, replaced = publish_table(content(found_by={"run": 1}), tmp_path, since=started)
    assert replaced is None  # nothing there before
    written = first.stat().st_mtime
    path, backup, replaced = publish_table(content(found_by={"run": 2}), tmp_path, since=started)
    assert replaced is not None and replaced.timestamp() == pytest.approx(written)
    assert json.loads(backup.read_text())["found_by"] == {"run": 1}
    # a table written before the run started is the one it saw: no note
    _, backup, replaced = publish_table(content(), tmp_path, since=time.time() + 60)
    assert backup is not None and replaced is None
    _, _, replaced = publish_table(content(), tmp_path)  # no since: nothing is compared
    assert replaced is None


def test_a_malformed_table_is_never_published(tmp_path):
    publish_table(content(), tmp_path)
    before = sorted(p.read_bytes() for p in tmp_path.iterdir())
    with pytest.raises(ValueError, match="must be a number"):
        publish_table(content(params_by_stragglers={"0": {"lam_enc": "x"}}), tmp_path)
    assert sorted(p.read_bytes() for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not a readable JSON table"),
        ("[]", "not a parameter table"),
        (
            json.dumps({**content(), "format": "nercc-param-table", "format_version": 9}),
            "format_version must be 1",
        ),
        (
            json.dumps({**content(model=""), "format": "nercc-param-table", "format_version": 1}),
            "model must be a non-empty string",
        ),
        (
            json.dumps(
                {
                    **content(code={"num_inputs": 20}),
                    "format": "nercc-param-table",
                    "format_version": 1,
                }
            ),
            "code must hold",
        ),
        (
            json.dumps(
                {
                    **content(params_by_stragglers={}),
                    "format": "nercc-param-table",
                    "format_version": 1,
                }
            ),
            "params_by_stragglers must map S",
        ),
        (
            json.dumps(
                {
                    **content(params_by_stragglers={"x": {"lam_enc": 0}}),
                    "format": "nercc-param-table",
                    "format_version": 1,
                }
            ),
            "S must be an integer >= 0, got 'x'",
        ),
        (
            json.dumps(
                {
                    **content(params_by_stragglers={"-1": {"lam_enc": 0}}),
                    "format": "nercc-param-table",
                    "format_version": 1,
                }
            ),
            "S must be an integer >= 0, got '-1'",
        ),
        (
            json.dumps(
                {
                    **content(params_by_stragglers={"1": [0, 0]}),
                    "format": "nercc-param-table",
                    "format_version": 1,
                }
            ),
            r"params_by_stragglers.1 must map names",
        ),
        (
            json.dumps(
                {
                    **content(params_by_stragglers={"1": {"lam_enc": True}}),
                    "format": "nercc-param-table",
                    "format_version": 1,
                }
            ),
            "lam_enc must be a number, got True",
        ),
        (_doc(params_by_stragglers={"0": {"lam_enc": -1.0}}), r"lam_enc must be finite and >= 0"),
        (
            _doc(params_by_stragglers={"0": {"lam_enc": 10**400}}),
            r"lam_enc must be finite and >= 0",
        ),
        (
            _doc(params_by_stragglers={"0": {"lam_enc": 0.0}, "5": {"lam_enc": 0, "lam_dec": 0}}),
            r"params_by_stragglers.5 must set the same parameters as every S \(lam_enc\)",
        ),
        (_doc(code={**CODE, "num_inputs": "20"}), "code.num_inputs must be an integer >= 1"),
        (_doc(code={**CODE, "num_workers": -10}), "code.num_workers must be an integer >= 1"),
        (_doc(found_by=5), "found_by must be a mapping, got 5"),
    ],
)
def test_a_bad_table_gets_one_clear_line(tmp_path, text, message):
    path = tmp_path / "t.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as error:
        load_table(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_resolve(tmp_path):
    assert resolve_table("none", tmp_path, "lenet5", "fashion_mnist", "nercc", CODE) is None
    assert resolve_table(None, tmp_path, "lenet5", "fashion_mnist", "nercc", CODE) is None
    assert resolve_table("published", tmp_path, "lenet5", "fashion_mnist", "nercc", CODE) is None
    path, _, _ = publish_table(content(), tmp_path)
    found = resolve_table("published", tmp_path, "lenet5", "fashion_mnist", "nercc", CODE)
    assert found.path == path
    assert resolve_table(str(path), tmp_path / "x", "vit", "mnist", "nercc", CODE).path == path
    assert (
        table_path(tmp_path, "vit", "mnist", "nercc", {**CODE, "num_workers": 20}).name
        == "vit_mnist_nercc_K20_N20_chebyshev.json"
    )
    with pytest.raises(ValueError, match="no such file"):
        resolve_table(
            str(tmp_path / "missing.json"), tmp_path, "lenet5", "fashion_mnist", "nercc", CODE
        )
    with pytest.raises(ValueError, match="must be published, published:<scheme>, none or a path"):
        resolve_table(3, tmp_path, "lenet5", "fashion_mnist", "nercc", CODE)


def test_a_scheme_may_take_the_table_published_for_another(tmp_path):
    # published:<scheme> reads that scheme's table (a robust NeRCC takes NeRCC's lambdas)
    path, _, _ = publish_table(content(), tmp_path)
    found = resolve_table("published:nercc", tmp_path, "lenet5", "fashion_mnist", "other", CODE)
    assert found.path == path
    assert resolve_table("published", tmp_path, "lenet5", "fashion_mnist", "other", CODE) is None
    assert resolve_table("published:fh", tmp_path, "lenet5", "fashion_mnist", "nercc", CODE) is None


def test_each_scheme_has_its_own_table(tmp_path):
    # tuning another scheme of the same classifier and code never replaces NeRCC's table
    nercc, _, _ = publish_table(content(), tmp_path)
    fh, backup, _ = publish_table(
        content(scheme="fh", params_by_stragglers={"0": {"d": 2.0}}), tmp_path
    )
    assert fh.name == "lenet5_fashion_mnist_fh_K20_N100_chebyshev.json" and backup is None
    assert load_table(nercc).scheme == "nercc" and load_table(fh).by_stragglers == {0: {"d": 2.0}}
    assert resolve_table("published", tmp_path, "lenet5", "fashion_mnist", "fh", CODE).path == fh
    assert resolve_table("published", tmp_path, "lenet5", "fashion_mnist", "bacc", CODE) is None


@pytest.mark.parametrize(("recorded", "warned"), [(None, False), ("abc", False), ("def", True)])
def test_a_table_tuned_on_another_checkpoint_says_so(recorded, warned):
    table = ParamTable(
        path=Path("t.json"), scheme="nercc", model="lenet5", dataset="synthetic",
        code={"num_inputs": 4, "num_workers": 12, "points": "chebyshev"},
        by_stragglers={0: {"lam_enc": 0.0, "lam_dec": 0.0}}, checkpoint_sha256=recorded,
    )  # fmt: skip
    line = table.stale_warning("ck/lenet5_synthetic.ckpt", "abc")
    if warned:
        assert line == (
            "warning: t.json was tuned on another checkpoint than ck/lenet5_synthetic.ckpt "
            "(content hash differs): retune with python -m nercc.tune"
        )
    else:
        assert line is None
