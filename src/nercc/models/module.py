"""The LightningModule that trains a base classifier (``model=<name>`` in Hydra)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn
from torch.optim.lr_scheduler import LambdaLR
from torchmetrics import MaxMetric, MeanMetric, SumMetric
from torchmetrics.classification import MulticlassAccuracy

__all__ = ["ClassifierModule", "optimizers", "warmup_cosine"]


def warmup_cosine(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float = 0.05
) -> LambdaLR:
    """Linear warm-up over ``warmup_fraction`` of the steps, then cosine decay to zero."""
    warmup = max(1, int(warmup_fraction * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


def optimizers(module: pl.LightningModule, params: Any) -> Any:
    """What ``configure_optimizers`` returns for ``params`` of ``module``: its
    ``optimizer_factory(params=...)``, and with its ``scheduler_factory`` a per-step scheduler
    over the trainer's estimated steps."""
    optimizer = module.optimizer_factory(params=params)
    if module.scheduler_factory is None:
        return optimizer
    total = int(module.trainer.estimated_stepping_batches)
    scheduler = module.scheduler_factory(optimizer, total_steps=total)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class ClassifierModule(pl.LightningModule):
    """Cross-entropy training of ``net`` with accuracy metrics.

    Logs ``train/loss``, ``train/acc``, ``val/loss``, ``val/acc``, ``val/acc_best``,
    ``val/nonfinite``, ``test/loss``, ``test/acc`` and ``test/nonfinite``.

    A diverged network never looks good: an image whose logits hold a NaN or an infinity counts
    as wrongly classified (the argmax of NaN logits is class 0, which would otherwise score the
    share of class 0), ``<split>/nonfinite`` counts such images, and a non-finite loss makes the
    epoch's mean loss non-finite (it is not dropped from the mean).

    Parameters
    ----------
    net : nn.Module
        Maps normalised images (B, C, H, W) to logits (B, num_classes).
    optimizer : callable
        ``optimizer(params)`` returns the optimiser (a Hydra ``_partial_`` node).
    scheduler : callable, optional
        ``scheduler(optimizer, total_steps=...)`` returns a per-step LR scheduler.
    num_classes : int
        For the accuracy metrics.
    label_smoothing : float
        Of the cross-entropy loss.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        num_classes: int = 10,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False, ignore=["net", "optimizer", "scheduler"])
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.label_smoothing = label_smoothing
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        # nan_strategy="disable": a NaN loss makes the mean NaN instead of being dropped from it
        self.train_loss = MeanMetric(nan_strategy="disable")
        self.val_loss = MeanMetric(nan_strategy="disable")
        self.test_loss = MeanMetric(nan_strategy="disable")
        self.val_nonfinite, self.test_nonfinite = SumMetric(), SumMetric()
        self.val_acc_best = MaxMetric()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """The loss, the predictions (a wrong class where the logits are not finite), the labels
        and how many images had logits that are not finite."""
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        finite = torch.isfinite(logits).all(dim=1)
        wrong = (y + 1) % logits.shape[1]
        preds = torch.where(finite, logits.argmax(dim=1), wrong)
        return loss, preds, y, (~finite).sum()

    def on_train_start(self) -> None:
        self.val_acc_best.reset()

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss, preds, y, _ = self._step(batch)
        self.train_loss(loss)
        self.train_acc(preds, y)
        self.log("train/loss", self.train_loss, on_step=True, on_epoch=True, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        loss, preds, y, nonfinite = self._step(batch)
        self.val_loss(loss)
        self.val_acc(preds, y)
        self.val_nonfinite(nonfinite)
        self.log("val/loss", self.val_loss, on_epoch=True, prog_bar=True)
        self.log("val/acc", self.val_acc, on_epoch=True, prog_bar=True)
        self.log("val/nonfinite", self.val_nonfinite, on_epoch=True)

    def on_validation_epoch_end(self) -> None:
        self.val_acc_best(self.val_acc.compute())
        self.log("val/acc_best", self.val_acc_best.compute(), sync_dist=True, prog_bar=True)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        loss, preds, y, nonfinite = self._step(batch)
        self.test_loss(loss)
        self.test_acc(preds, y)
        self.test_nonfinite(nonfinite)
        self.log("test/loss", self.test_loss, on_epoch=True)
        self.log("test/nonfinite", self.test_nonfinite, on_epoch=True)
        self.log("test/acc", self.test_acc, on_epoch=True, prog_bar=True)

    def configure_optimizers(self) -> Any:
        return optimizers(self, self.parameters())
