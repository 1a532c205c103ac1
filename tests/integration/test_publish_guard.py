"""The publish guard, through ``train``: an untrained or worse run never replaces the published
classifier (it keeps its model in its run folder and says so), ``publish=force`` does and keeps a
backup, a first run publishes, the files get the umask's mode, and what is published is the best
epoch's weights (ModelCheckpoint on val/acc), not the last's. A diverged run (NaN weights) is
never published, not even by force, and fails with one line; a run at chance is kept and warns."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import subprocess
import sys

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import open_dict

from nercc.models import load_classifier, read_checkpoint
from nercc.models.checkpoints import CheckpointError
from nercc.models.publish import DivergedModelError
from nercc.tasks.train import train

QUIET = ["data=synthetic", "logger=none", "trainer.enable_progress_bar=false",
         "trainer.enable_model_summary=false"]  # fmt: skip
NAME = "lenet5_synthetic"


@pytest.fixture(autouse=True)
def info_logs(caplog):
    """The publishing line is an INFO record of nercc.train."""
    caplog.set_level(logging.INFO, logger="nercc.train")


def run(compose_config, tmp_path, name, *overrides, callbacks="none"):
    """Train in the run folder ``tmp_path/<name>``, publishing to ``tmp_path/checkpoints``."""
    cfg = compose_config(
        "train",
        [*QUIET, f"callbacks={callbacks}", f"paths.output_dir={tmp_path / name}", *overrides],
    )
    metrics, objects = train(cfg)
    recorded = json.loads((tmp_path / name / "metrics.json").read_text())
    assert recorded["published"] == metrics["published"]
    return metrics, objects


def published_lines(caplog) -> str:
    """What nercc.train logged about publishing since the last call, one message a line."""
    lines = [r.getMessage() for r in caplog.records if r.name == "nercc.train"]
    caplog.clear()
    return "\n".join(line for line in lines if "published" in line)


def published_before(checkpoints, tmp_path):
    """The session's trained LeNet5 (3 epochs), as if published earlier here."""
    target = tmp_path / "checkpoints"
    target.mkdir()
    for suffix in (".ckpt", ".json"):
        shutil.copy(checkpoints / f"{NAME}{suffix}", target / f"{NAME}{suffix}")
    return target / f"{NAME}.ckpt"


def test_untrained_run_leaves_the_published_model_alone(compose_config, checkpoints, tmp_path,
                                                        caplog):  # fmt: skip
    path = published_before(checkpoints, tmp_path)
    before, before_json = path.read_bytes(), path.with_suffix(".json").read_bytes()
    metrics, _ = run(compose_config, tmp_path, "untrained", "trainer.max_epochs=0")
    kept = tmp_path / "untrained" / "classifier.ckpt"
    line = published_lines(caplog)
    assert line.startswith("not published: the run trained 0 epochs")
    assert f"the published {path} has " in line and f"(kept in {kept}; publish=force" in line
    assert path.read_bytes() == before and path.with_suffix(".json").read_bytes() == before_json
    assert not (tmp_path / "checkpoints" / f"{NAME}.previous.ckpt").exists()
    assert metrics["published"] is False and metrics["publish_reason"] == "untrained"
    assert read_checkpoint(kept, "lenet5", "synthetic")["info"]["epochs"] == 0


def test_worse_model_is_kept_and_force_replaces_with_backup(compose_config, checkpoints, tmp_path,
                                                            caplog):  # fmt: skip
    path = published_before(checkpoints, tmp_path)
    before = path.read_bytes()
    best = read_checkpoint(path, "lenet5", "synthetic")["info"]["test_acc"]
    worse = ["trainer.max_epochs=1", "trainer.limit_train_batches=1"]
    metrics, _ = run(compose_config, tmp_path, "worse", *worse)
    assert metrics["test/acc"] < best  # the premise: one step learns less than three epochs
    out = published_lines(caplog)
    assert f"not published: test/acc {metrics['test/acc']:.4f} < {best:.4f} of the published " \
           f"{path} (kept in {tmp_path / 'worse' / 'classifier.ckpt'}" in out  # fmt: skip
    assert path.read_bytes() == before and metrics["published"] is False

    metrics, _ = run(compose_config, tmp_path, "forced", *worse, "publish=force")
    out = published_lines(caplog)
    backup = tmp_path / "checkpoints" / f"{NAME}.previous.ckpt"
    assert f"published {path} (test/acc {metrics['test/acc']:.4f}): replaced" in out
    assert f"(backup: {backup})" in out
    assert backup.read_bytes() == before
    assert json.loads(backup.with_suffix(".json").read_text())["test_acc"] == best
    loaded = load_classifier("lenet5", "synthetic", tmp_path / "checkpoints")
    assert loaded.info["test_acc"] == metrics["test/acc"]
    assert metrics["published"] is True and metrics["checkpoint"] == str(path)


def test_first_run_publishes_with_the_umask_mode(compose_config, tmp_path, caplog):
    old = os.umask(0o022)
    try:
        metrics, _ = run(compose_config, tmp_path, "first", "trainer.max_epochs=1",
                         "trainer.limit_train_batches=2")  # fmt: skip
    finally:
        os.umask(old)
    path = tmp_path / "checkpoints" / f"{NAME}.ckpt"
    assert f"published {path} (test/acc {metrics['test/acc']:.4f}; nothing was published" in (
        published_lines(caplog)
    )
    assert metrics["published"] is True and metrics["publish_reason"] == "first"
    assert path.stat().st_mode & 0o777 == 0o644
    assert path.with_suffix(".json").stat().st_mode & 0o777 == 0o644
    info = load_classifier("lenet5", "synthetic", tmp_path / "checkpoints", num_classes=10,
                           image_shape=(1, 28, 28)).info  # fmt: skip
    assert (info["channels"], info["image_size"], info["num_classes"]) == (1, 28, 10)
    left = {p.name for p in (tmp_path / "checkpoints").glob(".*")}
    assert left <= {".publish.lock"}  # no temporary file left (the lock file stays)


class SpoilEpoch(pl.Callback):
    """Zeroes the last layer before validating epoch ``epoch``: that epoch's val/acc drops to the
    share of class 0, so the best epoch (ModelCheckpoint on val/acc) is an earlier one."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch and not trainer.sanity_checking:
            with torch.no_grad():
                for p in pl_module.net.classifier[-1].parameters():
                    p.zero_()


def test_published_weights_are_the_best_epochs(compose_config, tmp_path):
    cfg = compose_config(
        "train",
        [*QUIET, "callbacks=default", "~callbacks.progress_bar", "~callbacks.model_summary",
         "trainer.max_epochs=2", f"paths.output_dir={tmp_path / 'run'}"],
    )  # fmt: skip
    with open_dict(cfg):
        cfg.callbacks.spoil = {"_target_": f"{__name__}.SpoilEpoch", "epoch": 1}
    metrics, objects = train(cfg)
    checkpoint = objects["trainer"].checkpoint_callback
    assert checkpoint.best_model_path.endswith("epoch_000.ckpt")  # the premise
    assert metrics["published"] is True
    best = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)
    best = {k.removeprefix("net."): v for k, v in best["state_dict"].items() if k[:4] == "net."}
    published = read_checkpoint(tmp_path / "checkpoints" / f"{NAME}.ckpt", "lenet5", "synthetic")
    assert published["state_dict"].keys() == best.keys()
    for key, value in best.items():
        torch.testing.assert_close(published["state_dict"][key], value, rtol=0, atol=0)
    assert published["state_dict"]["classifier.5.weight"].abs().sum() > 0  # not the last epoch's
    assert published["info"]["test_acc"] == metrics["test/acc"]


def test_accuracies_measured_on_other_images_are_not_compared(tmp_path):
    # A run tested on 16 images (test/acc 1.0) must not replace a model tested on the whole split
    from nercc.models import LeNet5
    from nercc.models.publish import publish_run

    net = LeNet5(1, 10, 28)
    config = {"_target_": "nercc.models.LeNet5", "in_channels": 1, "num_classes": 10,
              "image_size": 28}  # fmt: skip
    base = {"model": "lenet5", "dataset": "synthetic", "channels": 1, "image_size": 28,
            "num_classes": 10, "val_acc_best": 0.5}  # fmt: skip
    full = {**base, "test_acc": 0.6, "test_images": 256, "test_set_size": 256,
            "val_images": 64, "val_set_size": 64}  # fmt: skip
    kwargs = {"directory": tmp_path / "ck", "run_dir": tmp_path / "run", "trained_epochs": 2}
    (tmp_path / "run").mkdir()

    def publish(info):
        return publish_run(net, config, [0.5], [0.25], info, **kwargs)

    assert publish(full).published
    one = {**full, "test_acc": 1.0, "test_images": 16, "val_acc_best": 0.9, "val_images": 1}
    outcome = publish(one)
    assert not outcome.published and outcome.reason == "not comparable", outcome.message
    # the test split limited, the validation split whole: compared on validation
    assert not publish({**one, "val_acc_best": 0.4, "val_images": 64}).published
    assert publish({**full, "test_acc": 0.7}).published


DIVERGE = ["trainer.max_epochs=1", "model.optimizer.lr=1e8"]  # every weight NaN after a few steps


def test_a_diverged_run_is_never_published_not_even_by_force(compose_config, checkpoints,
                                                             tmp_path, caplog):  # fmt: skip
    path = published_before(checkpoints, tmp_path)
    before = path.read_bytes()
    with pytest.raises(DivergedModelError) as caught:
        run(compose_config, tmp_path, "diverged", *DIVERGE, "publish=force")
    kept = tmp_path / "diverged" / "classifier.ckpt"
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("training diverged: its weights are not finite (NaN or inf in ")
    assert message.endswith(f"; not published (kept in {kept})")
    assert path.read_bytes() == before and not (path.parent / f"{NAME}.previous.ckpt").exists()
    recorded = json.loads((tmp_path / "diverged" / "metrics.json").read_text())
    assert recorded["published"] is False and recorded["publish_reason"] == "not finite"
    assert recorded["kept_checkpoint"] == str(kept)
    assert recorded["test/nonfinite"] == 256 and recorded["test/acc"] == 0.0  # NaN answers wrong
    with pytest.raises(CheckpointError, match=r"its weights are not finite \(NaN or inf in "):
        read_checkpoint(kept, "lenet5", "synthetic")  # kept to look at, never loaded as a model


def test_a_diverged_run_fails_with_one_error_line(tmp_path):
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "nercc.train", *QUIET, *DIVERGE, f"hydra.run.dir={run_dir}",
         f"paths.checkpoint_dir={tmp_path / 'ck'}", f"paths.data_dir={tmp_path / 'data'}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    kept = run_dir / "classifier.ckpt"
    assert errors == [
        f"error: training diverged: {errors[0].split('training diverged: ', 1)[1]}"
    ] and errors[0].endswith(f"; not published (kept in {kept})")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "ck" / f"{NAME}.ckpt").exists() and kept.is_file()
    assert "DivergedModelError" in (run_dir / "FAILED").read_text()


def test_a_run_at_chance_is_kept_with_a_warning(compose_config, tmp_path, caplog):
    metrics, _ = run(compose_config, tmp_path, "chance", "trainer.max_epochs=1",
                     "model.optimizer.lr=1e-9")  # fmt: skip
    kept = tmp_path / "chance" / "classifier.ckpt"
    assert metrics["published"] is False and metrics["publish_reason"] == "chance"
    assert metrics["test/acc"] < 0.15  # the premise: a step of 1e-9 learns nothing
    chance = read_checkpoint(kept, "lenet5", "synthetic")["info"]["test_chance"]
    assert 0.1 <= chance < 0.15  # the share of the most frequent class of the 256 test images
    needs = chance + 3 * math.sqrt(chance * (1 - chance) / 256)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == [
        f"not published: test/acc {metrics['test/acc']:.4f} is not clearly above chance "
        f"(needs > {needs:.4f}: chance {chance:.4f} + 3 standard errors on 256 images) "
        f"(kept in {kept}; publish=force replaces it)"
    ]
    assert not (tmp_path / "checkpoints" / f"{NAME}.ckpt").exists()
