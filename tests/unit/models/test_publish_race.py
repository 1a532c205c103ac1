"""Runs publishing one classifier at once, from several processes: they decide one after the
other (each publish replaces the one published just before it, the published model is the best
of them all), every loser keeps its model in its own run folder and says so, nothing fails, and
no staging file is left behind."""

from __future__ import annotations

import multiprocessing
import random
import re

from nercc.models.checkpoints import backup_path, read_checkpoint
from tests.processes import run_together

NET_CONFIG = {"_target_": "nercc.models.LeNet5", "in_channels": 1, "num_classes": 10,
              "image_size": 28}  # fmt: skip
INFO = {"model": "lenet5", "dataset": "synthetic", "channels": 1, "image_size": 28,
        "num_classes": 10, "val_acc_best": 0.5, "test_images": 256,
        "test_set_size": 256}  # fmt: skip
WRITERS, ROUNDS = 4, 5


def accuracies(writer: int) -> list[float]:
    """This writer's test accuracies, all distinct across writers, in a shuffled order."""
    values = [0.3 + 0.01 * (writer + WRITERS * r) for r in range(ROUNDS)]
    random.Random(writer).shuffle(values)
    return values


def publish_many(root: str, writer: int, start, results) -> None:
    import torch

    from nercc.models import LeNet5
    from nercc.models.publish import publish_run

    torch.set_num_threads(1)
    net = LeNet5(1, 10, 28)
    start.wait()
    found = []
    for round_, accuracy in enumerate(accuracies(writer)):
        run_dir = f"{root}/run_{writer}_{round_}"
        try:
            outcome = publish_run(net, NET_CONFIG, [0.5], [0.25], {**INFO, "test_acc": accuracy},
                                  f"{root}/published", run_dir, trained_epochs=2)  # fmt: skip
            found.append((accuracy, run_dir, outcome.published, outcome.message, None))
        except Exception as error:  # noqa: BLE001 - the test must see any failure
            found.append((accuracy, run_dir, None, None, f"{type(error).__name__}: {error}"))
    results.put(found)


def test_concurrent_publishers_decide_one_after_the_other(tmp_path):
    # a fork server imports torch once for every writer (spawned writers would each import it);
    # forking the test process itself, which holds torch's threads, is not safe
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["nercc.models.publish", "nercc.models.lenet5"])
    outcomes = run_together(context, publish_many, str(tmp_path), WRITERS)
    errors = [error for *_, error in outcomes if error is not None]
    assert errors == [], errors[0]

    path = tmp_path / "published" / "lenet5_synthetic.ckpt"
    best = max(accuracy for accuracy, *_ in outcomes)
    assert read_checkpoint(path, "lenet5", "synthetic")["info"]["test_acc"] == best
    previous = read_checkpoint(backup_path(path), "lenet5", "synthetic")["info"]["test_acc"]
    assert previous < best
    # one after the other: each publish replaced the one published just before it (two runs
    # deciding at once would both replace the same model)
    chain = sorted((a, m) for a, _, published, m, _ in outcomes if published)
    assert "nothing was published there before" in chain[0][1]
    for (before, _), (accuracy, message) in zip(chain, chain[1:], strict=False):
        replaced = re.search(r"replaced the published one \(test/acc ([0-9.]+)\)", message)
        assert replaced and float(replaced[1]) == round(before, 4), (accuracy, message, before)
    for accuracy, run_dir, published, message, _ in outcomes:
        kept = tmp_path / run_dir / "classifier.ckpt"
        if published:
            assert message.startswith(f"published {path} (test/acc {accuracy:.4f}")
            assert not kept.exists()
        else:  # lost to a better model published before it decided: says so, keeps its own
            assert message.startswith(f"not published: test/acc {accuracy:.4f} < ")
            assert f"of the published {path} (kept in {kept};" in message
            assert read_checkpoint(kept, "lenet5", "synthetic")["info"]["test_acc"] == accuracy
    backup = backup_path(path)
    left = {p.name for p in (tmp_path / "published").iterdir()}
    assert left == {".publish.lock", path.name, path.with_suffix(".json").name, backup.name,
                    backup.with_suffix(".json").name}  # fmt: skip
