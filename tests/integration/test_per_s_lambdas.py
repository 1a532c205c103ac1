"""The default scheme config with ``scheme.nercc.lambdas=<table file>``, end to end: every S runs
NeRCC with that S's lambdas, reports them and their source, and its numbers are those of a run
given the same lambdas explicitly (and not those of the interpolating (0, 0) variant)."""

import json

import pytest

from nercc.tasks.evaluate import evaluate
from nercc.tuning.tables import table_document

SMALL = [
    "data=synthetic",
    "coding.num_inputs=8",
    "coding.num_workers=20",
    "stragglers=[0,4,8]",
    "eval.batch_size=64",
    "eval.num_patterns=2",
    "eval.cache=false",  # both runs compute everything themselves
    "logger=none",
    "trainer.enable_progress_bar=false",
]
# Different at every S; S = 0 and S = 8 share lam_dec (one decoder) but not lam_enc.
TABLE = {
    0: {"lam_enc": 1e-4, "lam_dec": 1e-3},
    4: {"lam_enc": 0.0, "lam_dec": 1e-2},
    8: {"lam_enc": 1e-3, "lam_dec": 1e-3},
}
METRICS = ("mse", "acc", "base_acc", "rel_acc", "agreement")


def write_table(path):
    content = {
        "scheme": "nercc",
        "model": "lenet5",
        "dataset": "synthetic",
        "code": {"num_inputs": 8, "num_workers": 20, "points": "chebyshev"},
        "params_by_stragglers": {str(s): p for s, p in TABLE.items()},
        "found_by": {"split": "val", "objective": "mse", "note": "written by the test"},
    }
    path.write_text(json.dumps(table_document(content)))
    return path


def test_each_s_runs_with_its_own_lambdas_from_a_table_file(compose_config, checkpoints, tmp_path):
    path = write_table(tmp_path / "hand_made_table.json")
    cfg = compose_config(
        "eval", [*SMALL, f"paths.checkpoint_dir={checkpoints}", f"scheme.nercc.lambdas={path}"]
    )
    rows = evaluate(cfg)[0]["rows"]
    nercc = {r["num_stragglers"]: r for r in rows if r["scheme"] == "nercc"}
    assert sorted(nercc) == [0, 4, 8] and len(rows) == 3 + 3  # one NeRCC row per S, and BACC
    for s, row in nercc.items():
        assert {"lam_enc": row["lam_enc"], "lam_dec": row["lam_dec"]} == TABLE[s], s
        assert row["params_source"] == f"table:{path}"
    saved = json.loads((tmp_path / "run" / "results.json").read_text())["rows"]
    assert [r for r in saved if r["scheme"] == "nercc"] == [nercc[s] for s in (0, 4, 8)]

    # Reference: the same evaluation with the lambdas given explicitly, as a grid holding every
    # pair of the table and (0, 0), at every S; the patterns are the same (same seed, S, N).
    grid = compose_config(
        "eval",
        [*SMALL, f"paths.checkpoint_dir={checkpoints}", "scheme.nercc.lambdas=none",
         "scheme.nercc.lam_enc=[0.0,1e-4,1e-3]", "scheme.nercc.lam_dec=[0.0,1e-3,1e-2]"],
    )  # fmt: skip
    reference = {
        (r["num_stragglers"], r["lam_enc"], r["lam_dec"]): r
        for r in evaluate(grid)[0]["rows"]
        if r["scheme"] == "nercc"
    }
    assert len(reference) == 3 * 9
    assert {r["params_source"] for r in reference.values()} == {"config"}
    for s, row in nercc.items():
        explicit = reference[(s, TABLE[s]["lam_enc"], TABLE[s]["lam_dec"])]
        for metric in METRICS:
            assert row[metric] == pytest.approx(explicit[metric], rel=1e-9, abs=1e-12), (s, metric)
        assert row["num_inputs_evaluated"] == explicit["num_inputs_evaluated"] == 256
        # the lambdas change the decoded numbers: not the interpolating variant's
        interpolating = reference[(s, 0.0, 0.0)]
        assert abs(row["mse"] - interpolating["mse"]) > 1e-3 * interpolating["mse"], s
        # nor those of another S's lambdas at this S
        for other in TABLE:
            if TABLE[other] != TABLE[s]:
                params = (s, TABLE[other]["lam_enc"], TABLE[other]["lam_dec"])
                assert row["mse"] != pytest.approx(reference[params]["mse"], rel=1e-6)
    bacc = {r["num_stragglers"]: r["mse"] for r in rows if r["scheme"] == "bacc"}
    assert all(bacc[s] != pytest.approx(nercc[s]["mse"], rel=1e-6) for s in bacc)
