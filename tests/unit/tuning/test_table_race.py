"""Publishing one table from several processes at once: no publisher fails, the published table
and its backup are each one publisher's whole table, and no staging file is left behind."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

from nercc.tuning import load_table, publish_table
from nercc.tuning.tables import table_document
from tests.processes import run_together

CODE = {"num_inputs": 20, "num_workers": 100, "points": "chebyshev"}
WRITERS, ROUNDS = 4, 40


def content(writer: int, round_: int) -> dict:
    """A table only this writer's round publishes (its parameters and found_by say whose)."""
    return {
        "scheme": "nercc",
        "model": "lenet5",
        "dataset": "fashion_mnist",
        "code": CODE,
        "params_by_stragglers": {
            str(s): {"lam_enc": writer * 1e-6 + round_ * 1e-9, "lam_dec": float(s)}
            for s in range(0, 60, 10)
        },
        "found_by": {"writer": writer, "round": round_, "padding": "x" * 4000 * writer},
    }


def publish_many(directory: str, writer: int, start, results) -> None:
    """Publish ROUNDS tables once every writer is ready; report every exception's line."""
    start.wait()
    errors = []
    for round_ in range(ROUNDS):
        try:
            publish_table(content(writer, round_), directory)
        except Exception as error:  # noqa: BLE001 - what the test must see is any failure
            errors.append(f"writer {writer} round {round_}: {type(error).__name__}: {error}")
    results.put(errors)


def whole_table_of_one_writer(path: Path) -> tuple[int, int]:
    """The (writer, round) whose complete table ``path`` holds, byte for byte."""
    document = json.loads(path.read_text())
    writer, round_ = document["found_by"]["writer"], document["found_by"]["round"]
    assert document == table_document(content(writer, round_)), f"{path} mixes tables"
    load_table(path)
    return writer, round_


def test_concurrent_publishers_of_one_table_never_fail_nor_mix(tmp_path):
    context = multiprocessing.get_context("spawn")  # no fork of a test process holding threads
    errors = run_together(context, publish_many, str(tmp_path), WRITERS)
    assert errors == [], f"{len(errors)} publishes failed, the first: {errors[0]}"

    table = tmp_path / "lenet5_fashion_mnist_nercc_K20_N100_chebyshev.json"
    backup = table.with_name("lenet5_fashion_mnist_nercc_K20_N100_chebyshev.previous.json")
    last = whole_table_of_one_writer(table)
    assert last[1] == ROUNDS - 1  # a writer's last table is never followed by its earlier one
    whole_table_of_one_writer(backup)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [table.name, backup.name, ".publish.lock"]
    )  # no staging file left
