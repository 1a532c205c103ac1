"""When a parity model replaces the published one: first, better or equal, stale (another base
model), never a worse one or a broken one; what it writes is read back by load_parity."""

import math

import pytest
import torch

from nercc.models import LeNet5
from nercc.models.checkpoints import Classifier, parity_checkpoint_path
from nercc.models.parity import parity_normalisation
from nercc.models.publish import publish_parity

NET = {"_target_": "nercc.models.LeNet5", "in_channels": 1, "num_classes": 3, "image_size": 12}


def info(acc, base="a" * 64, k=2):
    return {
        "model": "lenet5", "dataset": "synthetic", "parity_k": k, "base_sha256": base,
        "channels": 1, "image_size": 12, "num_classes": 3, "test_loss": 1.0,
        "test_recon_acc": acc,
    }  # fmt: skip


def publish(tmp_path, acc, **kwargs):
    net = LeNet5(1, 3, 12)
    mean, std = parity_normalisation([0.5], [0.25], 2)
    return publish_parity(
        net, NET, mean, std, info(acc, **kwargs), tmp_path / "ckpt", tmp_path / "run",
        trained_epochs=1,
    )  # fmt: skip


def test_the_rule(tmp_path):
    first = publish(tmp_path, 0.6)
    assert first.published and first.reason == "first"
    assert first.path == parity_checkpoint_path("lenet5", "synthetic", 2, tmp_path / "ckpt")
    worse = publish(tmp_path, 0.5)
    assert not worse.published and worse.reason == "worse" and worse.kept.is_file()
    better = publish(tmp_path, 0.6)
    assert better.published and better.reason == "better" and better.backup.is_file()
    stale = publish(tmp_path, 0.1, base="b" * 64)  # trained against another base model
    assert stale.published and stale.reason == "stale"


def test_a_broken_model_is_never_published(tmp_path):
    net = LeNet5(1, 3, 12)
    with torch.no_grad():
        net.classifier[-1].weight[0, 0] = math.nan
    outcome = publish_parity(
        net, NET, [1.0], [0.5], info(0.9), tmp_path / "ckpt", tmp_path / "run", mode="force",
        trained_epochs=1,
    )  # fmt: skip
    assert outcome.failed and not outcome.published
    assert not (tmp_path / "ckpt").exists()


def test_the_normalisation_of_a_sum():
    assert parity_normalisation([0.5], [0.25], 4) == ([2.0], [0.5])
    with pytest.raises(ValueError, match="k must be >= 1, got 0"):
        parity_normalisation([0.5], [0.25], 0)
    # a Classifier with it takes sums in [0, k]
    classifier = Classifier(LeNet5(1, 3, 12), *parity_normalisation([0.5], [0.25], 2))
    assert classifier(torch.rand(2, 1, 12, 12) * 2).shape == (2, 3)
