"""Training a parity model (ParM): ``g(x_1 + ... + x_k) ~ f(x_1) + ... + f(x_k)`` for a frozen,
published base classifier ``f`` (``python -m nercc.train experiment=parity/<model>_k<k>``).

The parity model ``g`` has the base model's architecture and takes the sum of k raw images (in
[0, 1] each, so in [0, k]); it normalises its input by the base model's normalisation scaled
to a sum of k independent images (mean ``k m``, standard deviation ``sqrt(k) s``). Its loss is
the mean squared error to the sum of the base model's logits:

    L(g) = mean over groups G and logits c of (g(sum_{i in G} x_i)_c - sum_{i in G} f(x_i)_c)^2,

the groups drawn at random from the training split (the training loader shuffles the images
every epoch, and each batch of ``k B`` images is cut into B groups of k consecutive ones).

What the parity model is worth is its *reconstruction accuracy*: for each group and each of
its inputs ``i``, the estimate ``g(sum) - sum_{j != i} f(x_j)`` of ``f(x_i)`` (what ParM
decodes when worker i straggles) and whether its argmax agrees with ``f(x_i)``'s
(``<split>/recon_acc``) and with the label (``<split>/recon_label_acc``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics import MaxMetric, MeanMetric

from nercc.data.datamodule import ImageDataModule
from nercc.models.module import optimizers

__all__ = ["ParityData", "ParityModule", "parity_normalisation"]


def parity_normalisation(
    mean: list[float], std: list[float], k: int
) -> tuple[list[float], list[float]]:
    """The normalisation of a sum of k images: mean ``k m`` and std ``sqrt(k) s`` per channel
    (the mean and spread of a sum of k independent images of mean m and spread s)."""
    if int(k) < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return [float(m) * k for m in mean], [float(s) * math.sqrt(k) for s in std]


class ParityData(ImageDataModule):
    """The images of a dataset in [0, 1] (not normalised), in batches of ``group`` x
    ``batch_size`` (training) or ``group`` x ``eval_batch_size`` (validation, test), that the
    parity module cuts into groups of ``group`` inputs.

    Parameters
    ----------
    group : int
        k >= 1, the inputs of a group.
    **kwargs
        Those of :class:`~nercc.data.datamodule.ImageDataModule`.
    """

    def __init__(self, group: int = 2, **kwargs: Any) -> None:
        if isinstance(group, bool) or not isinstance(group, int) or group < 1:
            raise ValueError(f"data.group must be an integer >= 1, got {group!r}")
        super().__init__(**kwargs)
        self.group = group

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        if not hasattr(self, "_raw_train"):
            images, labels = self.train_set.tensors
            raw = images * self.std.view(1, -1, 1, 1) + self.mean.view(1, -1, 1, 1)
            self._raw_train = TensorDataset(raw.clamp_(0.0, 1.0), labels)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self._raw_train,
            batch_size=self.batch_size * self.group,
            shuffle=True,
            generator=torch.Generator().manual_seed(self.seed),
            num_workers=self.num_workers,
            drop_last=len(self._raw_train) > self.batch_size * self.group,
        )

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.raw_set("val"))

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.raw_set("test"))

    def _eval_loader(self, dataset: TensorDataset) -> DataLoader:
        size = self.eval_batch_size * self.group
        return DataLoader(dataset, batch_size=size, num_workers=self.num_workers)


class ParityModule(pl.LightningModule):
    """Trains the parity model ``net`` against a frozen base classifier (see the module).

    Logs ``<split>/loss`` (the MSE above), ``<split>/recon_acc``, ``<split>/recon_label_acc``
    and ``val/recon_acc_best``.

    Parameters
    ----------
    net : nn.Module
        The parity network (the base model's architecture): normalised sums to logits.
    optimizer : callable
        ``optimizer(params)`` returns the optimiser (a Hydra ``_partial_`` node).
    scheduler : callable, optional
        ``scheduler(optimizer, total_steps=...)`` returns a per-step LR scheduler.
    num_classes : int
        Logits per image (the base model's).
    label_smoothing : float
        Must be 0 (the loss is a regression to the base model's logits; accepted so that the
        model group's configs compose).
    k : int
        Inputs summed into one parity query, >= 1.
    base : str or nn.Module
        The base model's name (its published checkpoint for ``dataset`` is loaded from
        ``checkpoint_dir``), or the base classifier itself (raw images to logits, with an
        ``info`` dict holding ``sha256``, ``path``, ``model`` and ``dataset`` where known).
    dataset : str, optional
        The dataset the base model was published for (with a name).
    checkpoint_dir : path, optional
        Where it was published (with a name).
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        num_classes: int = 10,
        label_smoothing: float = 0.0,
        k: int = 2,
        base: str | nn.Module = "lenet5",
        dataset: str | None = None,
        checkpoint_dir: str | Path | None = None,
    ) -> None:
        super().__init__()
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be an integer >= 1, got {k!r}")
        if label_smoothing:
            raise ValueError(
                f"label_smoothing must be 0 for a parity model (it regresses the base model's "
                f"logits), got {label_smoothing}"
            )
        if isinstance(base, str):
            if dataset is None:
                raise ValueError(f"dataset must name the data base={base!r} was trained on")
            from nercc.models.checkpoints import load_classifier

            base = load_classifier(base, dataset, checkpoint_dir, num_classes=num_classes)
        self.k = k
        self.net = net
        self.base = base.eval().requires_grad_(False)
        self.base_info: dict[str, Any] = dict(getattr(base, "info", None) or {})
        mean, std = parity_normalisation(
            base.mean.flatten().tolist(), base.std.flatten().tolist(), k
        )
        self.mean, self.std = mean, std
        self.register_buffer("_mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        # per split: the loss, the reconstruction accuracy and the accuracy against the labels
        # (ModuleDict keys: "<split>_<metric>", since a key "train" would hide Module.train)
        self.metrics = nn.ModuleDict()
        for split in ("train", "val", "test"):
            self.metrics[f"{split}_loss"] = MeanMetric(nan_strategy="disable")
            self.metrics[f"{split}_recon_acc"] = MeanMetric()
            self.metrics[f"{split}_recon_label_acc"] = MeanMetric()
        self.val_recon_best = MaxMetric()

    def train(self, mode: bool = True) -> ParityModule:
        super().train(mode)
        self.base.eval()  # frozen: batch norm and dropout stay in inference mode
        return self

    def forward(self, sums: torch.Tensor) -> torch.Tensor:
        """The parity model's logits on sums of k raw images (B, C, H, W)."""
        return self.net((sums - self._mean) / self._std)

    def groups(self, images: torch.Tensor) -> torch.Tensor:
        """A batch (B, C, H, W) as its B // k groups of k consecutive images (the rest of the
        batch is left out)."""
        count = images.shape[0] // self.k
        return images[: count * self.k].view(count, self.k, *images.shape[1:])

    def _step(self, batch: Any, split: str) -> torch.Tensor:
        images, labels = batch
        groups = self.groups(images)
        count = groups.shape[0]
        if count == 0:
            raise ValueError(f"a batch of {images.shape[0]} images holds no group of k={self.k}")
        with torch.no_grad():
            base = self.base(groups.flatten(0, 1)).view(count, self.k, -1)
        target = base.sum(dim=1)
        parity = self(groups.sum(dim=1))
        loss = F.mse_loss(parity, target)
        # the estimate of f(x_i) from the parity output and the k - 1 others, for every i
        estimates = base + (parity - target).detach()[:, None]
        predicted = estimates.argmax(dim=-1)
        agree = (predicted == base.argmax(dim=-1)).float()
        correct = (predicted == labels[: count * self.k].view(count, self.k)).float()
        on_step = split == "train"
        for name, value in (("loss", loss), ("recon_acc", agree), ("recon_label_acc", correct)):
            metric = self.metrics[f"{split}_{name}"]
            metric(value)
            shown = name != "recon_label_acc"
            self.log(f"{split}/{name}", metric, on_step=on_step and name == "loss", on_epoch=True,
                     prog_bar=shown)  # fmt: skip
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "val")

    def on_train_start(self) -> None:
        self.val_recon_best.reset()

    def on_validation_epoch_end(self) -> None:
        self.val_recon_best(self.metrics["val_recon_acc"].compute())
        self.log("val/recon_acc_best", self.val_recon_best.compute(), sync_dist=True)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "test")

    def configure_optimizers(self) -> Any:
        return optimizers(self, self.net.parameters())  # the frozen base model is not trained
