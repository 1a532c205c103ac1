"""Byzantine workers in the evaluation: A swept like S, A = 0 the honest run row for row, the
detection columns of a screening decoder, and the plots against A."""

import json

from nercc.tasks.evaluate import evaluate

SMALL = [
    "data=synthetic",
    "coding.num_inputs=8",
    "coding.num_workers=20",
    "eval.batch_size=64",
    "eval.num_patterns=2",
    "scheme=byzantine",
    "eval.cache=false",
]
#: The columns that describe the attack or the detection (the rest must match the honest run).
ATTACK = (
    "num_adversaries", "adversary", "adversary_placement", "detection_precision",
    "detection_recall", "flagged_mean",
)  # fmt: skip


def _key(row):
    return row["variant"], row["num_stragglers"], row["num_adversaries"]


def test_a_is_swept_like_s_and_a_zero_is_the_honest_run(compose_config, checkpoints, tmp_path):
    # N = 40 for K = 8: the screening needs answers to spare (gross errors: 10 times the answer)
    common = [*SMALL, f"paths.checkpoint_dir={checkpoints}", "stragglers=[0,5]"]
    common += ["coding.num_workers=40"]
    attack = ["adversary=sign_flip", "adversary.scale=10", "adversaries=[0,3]"]
    attacked = evaluate(compose_config("eval", [*common, *attack]))[0]["rows"]
    honest = evaluate(compose_config("eval", common))[0]["rows"]
    variants = ["nercc", "nercc_robust", "bacc", "bacc_robust"]
    assert [r["variant"] for r in attacked[::4]] == variants
    assert [_key(r)[1:] for r in attacked[:4]] == [(0, 0), (0, 3), (5, 0), (5, 3)]
    # A = 0 is the honest evaluation, digit for digit (the attack's columns aside)
    by_key = {_key(r): r for r in honest}
    for row in attacked:
        assert row["adversary"] == "sign_flip" and row["adversary_placement"] == "random"
        if row["num_adversaries"] == 0:
            same = by_key[_key(row)]
            assert {k: v for k, v in row.items() if k not in ATTACK} == {
                k: v for k, v in same.items() if k not in ATTACK
            }
    rows = {_key(r): r for r in attacked}
    for s in (0, 5):
        for plain in ("nercc", "bacc"):
            # the threat is real for a plain decoder; it reports no detection
            assert rows[plain, s, 3]["mse"] > 10 * rows[plain, s, 0]["mse"]
            assert rows[plain, s, 3]["detection_recall"] is None
            assert rows[plain, s, 3]["flagged_mean"] is None
            robust = rows[f"{plain}_robust", s, 3]
            # the screening decoder finds the adversaries and keeps the error near honest
            assert robust["detection_recall"] > 0.9 and robust["detection_precision"] > 0.5
            assert robust["mse"] < rows[plain, s, 3]["mse"] / 10
            assert rows[f"{plain}_robust", s, 0]["detection_recall"] is None  # A = 0


def test_rows_at_one_s_are_drawn_against_a(compose_config, checkpoints, tmp_path, capsys):
    cfg = compose_config(
        "eval",
        [
            *SMALL,
            f"paths.checkpoint_dir={checkpoints}",
            "stragglers=[4]",
            "adversary=gaussian",
            "adversary.scale=5",
            "adversaries=[0,1,2]",
        ],
    )
    rows = evaluate(cfg)[0]["rows"]
    assert len(rows) == 4 * 3
    run = tmp_path / "run"
    for name in ("mse_vs_adversaries.png", "rel_acc_vs_adversaries.png"):
        assert (run / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (run / "mse_vs_stragglers.png").exists()
    saved = json.loads((run / "results.json").read_text())["rows"]
    assert [r["num_adversaries"] for r in saved[:3]] == [0, 1, 2]
    printed = capsys.readouterr().out
    assert "A adversarial workers: gaussian (random)" in printed
    assert "recall" in printed  # the robust rows' detection columns
