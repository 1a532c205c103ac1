"""lam_enc=auto: chosen per S on validation images inside the run, then used on the test split,
from the candidates the scheme declares (NeRCC.auto_candidates)."""

import pytest

from nercc.tasks.evaluate import evaluate

SMALL = [
    "data=synthetic",
    "coding.num_inputs=8",
    "coding.num_workers=20",
    "stragglers=[0,6,12]",
    "eval.batch_size=64",
    "eval.num_patterns=2",
    "eval.auto_images=48",
    "logger=none",
]


def test_auto_chooses_on_validation_what_a_validation_grid_would(compose_config, checkpoints):
    overrides = [*SMALL, f"paths.checkpoint_dir={checkpoints}", "scheme=nercc"]
    cfg = compose_config(
        "eval", [*overrides, "scheme.nercc.lam_enc=auto", "scheme.nercc.lam_dec=0"]
    )
    metrics, objects = evaluate(cfg)
    rows = {r["num_stragglers"]: r for r in metrics["rows"]}
    assert set(rows) == {0, 6, 12}
    assert {r["params_source"] for r in rows.values()} == {"table:auto(val, 48 images)"}
    assert {r["num_inputs_evaluated"] for r in rows.values()} == {256}  # the whole test split

    # the same choice from an independent grid over the candidates, on the same validation images
    scheme = objects["plan"].variants[0].scheme
    candidates = scheme.auto_candidates("lam_enc")
    grid = compose_config(
        "eval",
        [*overrides, f"scheme.nercc.lam_enc=[{','.join(repr(c) for c in candidates)}]",
         "scheme.nercc.lam_dec=0", "scheme.nercc.lambdas=none", "eval.split=val",
         "eval.limit=48", "optimized_metric=null"],
    )  # fmt: skip
    val_rows = evaluate(grid)[0]["rows"]
    for s, row in rows.items():
        at = [r for r in val_rows if r["num_stragglers"] == s]
        best = min(at, key=lambda r: (r["mse"], r["lam_enc"]))
        assert row["lam_enc"] == pytest.approx(best["lam_enc"], rel=1e-12), s
    assert len({r["lam_enc"] for r in val_rows}) == len(candidates)


def test_auto_with_gcv_decoding_runs_and_records_its_choices(compose_config, checkpoints):
    cfg = compose_config(
        "eval",
        [*SMALL, f"paths.checkpoint_dir={checkpoints}", "scheme.nercc.lam_enc=auto",
         "scheme.nercc.lam_dec=gcv"],
    )  # fmt: skip
    rows = evaluate(cfg)[0]["rows"]
    nercc = [r for r in rows if r["scheme"] == "nercc"]
    assert len(nercc) == 3 and all(r["params_source"].startswith("table:auto(") for r in nercc)
    assert all(r["mse"] > 0 for r in rows)


def test_both_lambdas_auto_are_chosen_together_from_the_candidates(compose_config, checkpoints):
    cfg = compose_config(
        "eval",
        [*SMALL, f"paths.checkpoint_dir={checkpoints}", "scheme=nercc",
         "scheme.nercc.lam_enc=auto", "scheme.nercc.lam_dec=auto"],
    )  # fmt: skip
    metrics, objects = evaluate(cfg)
    scheme = objects["plan"].variants[0].scheme
    candidates = scheme.auto_candidates("lam_enc")
    for row in metrics["rows"]:
        assert row["params_source"] == "table:auto(val, 48 images)"
        assert row["lam_dec"] in scheme.auto_candidates("lam_dec")
        assert min(abs(row["lam_enc"] - c) for c in candidates) <= 1e-12 * max(candidates)
