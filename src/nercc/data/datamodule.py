"""One LightningDataModule for every image dataset nercc knows (``data=<name>`` in Hydra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F  # noqa: N812
from torch.utils.data import DataLoader, TensorDataset

from nercc.data.sources import (
    DATASETS,
    SYNTHETIC_DEFAULTS,
    ImageArrays,
    load_arrays,
    synthetic_arrays,
)

#: The last dataset decoded in this process, by (name, root, seed): the jobs of a multirun or an
#: Optuna sweep run one after another in one process and decode it once (about 0.2 s a job).
#: Every split taken from it is a copy.
_DECODED: dict[tuple[str, str, int], ImageArrays] = {}

__all__ = ["ImageDataModule"]


class ImageDataModule(pl.LightningDataModule):
    """Train, validation and test loaders of normalised images, and the raw test images.

    The validation split is carved out of the training images with a fixed seed. Training,
    validation and test loaders yield ``(x, y)`` with ``x`` normalised per channel by the training
    split's mean and standard deviation; :meth:`raw_set` gives the images in [0, 1]
    for coded evaluation, where the classifier normalises its own inputs.

    Parameters
    ----------
    name : {"fashion_mnist", "mnist", "cifar10", "cifar100", "synthetic"}
    root : path
        Data folder (torchvision's layout); see :mod:`nercc.data.sources` for the offline sources.
    channels, image_size, num_classes : int
        What the dataset holds; checked against the data, and read by the model configs.
    batch_size : int
        Training batch size (evaluation uses ``eval_batch_size``).
    val_size : int
        Number of training images held out for validation.
    seed : int
        Seed of the validation split (and of the synthetic images).
    download : bool
        Use torchvision's downloader when no offline source is found.
    train_subset : int, optional
        Train on only this many images (quick runs).
    augment : bool
        Random horizontal flips and shifts of up to ``shift`` pixels on training batches.
    synthetic : dict, optional
        ``num_train``, ``num_test`` and ``noise`` of the synthetic images.
    """

    def __init__(
        self,
        name: str,
        root: str | Path = "data",
        channels: int = 1,
        image_size: int = 28,
        num_classes: int = 10,
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        val_size: int = 5000,
        seed: int = 42,
        num_workers: int = 0,
        download: bool = False,
        train_subset: int | None = None,
        augment: bool = False,
        shift: int = 2,
        synthetic: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if name not in DATASETS:
            raise ValueError(f"data.name must be one of {DATASETS}, got {name!r}")
        for arg, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if int(value) < 1:
                raise ValueError(f"data.{arg} must be >= 1, got {value}")
        if int(val_size) < 1:
            raise ValueError(f"data.val_size must be >= 1, got {val_size}")
        self.name = name
        self.root = Path(root)
        self.channels, self.image_size, self.num_classes = channels, image_size, num_classes
        self.batch_size, self.eval_batch_size = int(batch_size), int(eval_batch_size)
        self.val_size, self.seed, self.num_workers = int(val_size), int(seed), int(num_workers)
        self.download, self.train_subset = download, train_subset
        self.augment, self.shift = augment, int(shift)
        self.synthetic = dict(synthetic or {})
        self.arrays: ImageArrays | None = None
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None

    # -- loading ------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        if self.download:
            self._load()

    def _load(self) -> ImageArrays:
        if self.arrays is None:
            if self.name == "synthetic":
                settings = {**SYNTHETIC_DEFAULTS, **self.synthetic}
                arrays = synthetic_arrays(
                    num_train=int(settings["num_train"]),
                    num_test=int(settings["num_test"]),
                    channels=self.channels,
                    image_size=self.image_size,
                    num_classes=self.num_classes,
                    seed=self.seed,
                    noise=float(settings["noise"]),
                )
            else:
                key = (self.name, str(Path(self.root).resolve()), self.seed)
                if key not in _DECODED:
                    _DECODED.clear()  # keep one dataset: a sweep evaluates one at a time
                    _DECODED[key] = load_arrays(self.name, self.root, self.download, seed=self.seed)
                arrays = _DECODED[key]
            shape = arrays.train_images.shape[1:]
            expected = (self.channels, self.image_size, self.image_size)
            if shape != expected:
                raise ValueError(
                    f"data {self.name!r} has images of shape {shape}, the config says {expected}"
                )
            self.arrays = arrays
        return self.arrays

    def setup(self, stage: str | None = None) -> None:
        if self.mean is not None:
            return
        arrays = self._load()
        num_train = len(arrays.train_images)
        if self.val_size >= num_train:
            raise ValueError(
                f"data.val_size must be below the {num_train} training images, got {self.val_size}"
            )
        order = torch.randperm(num_train, generator=torch.Generator().manual_seed(self.seed))
        val_idx, train_idx = order[: self.val_size], order[self.val_size :]
        if self.train_subset is not None:
            train_idx = train_idx[: int(self.train_subset)]
        self._train_idx = train_idx
        train_x = _to_unit(arrays.train_images[train_idx.numpy()])
        self.mean = train_x.mean(dim=(0, 2, 3))
        self.std = train_x.std(dim=(0, 2, 3)).clamp_min(1e-6)
        labels = torch.from_numpy(arrays.train_labels)
        self.train_set = TensorDataset(self.normalize(train_x), labels[train_idx])
        val_x = _to_unit(arrays.train_images[val_idx.numpy()])
        self.val_set = TensorDataset(self.normalize(val_x), labels[val_idx])
        self._raw_val = TensorDataset(val_x, labels[val_idx])
        test_x = _to_unit(arrays.test_images)
        test_y = torch.from_numpy(arrays.test_labels.copy())  # the arrays are shared
        self.test_set = TensorDataset(self.normalize(test_x), test_y)
        self._raw_test = TensorDataset(test_x, test_y)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] to the normalised inputs the network is trained on."""
        return (images - self.mean.view(1, -1, 1, 1)) / self.std.view(1, -1, 1, 1)

    # -- loaders ------------------------------------------------------------------------------
    def train_dataloader(self) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(
            self.train_set,
            batch_size=self.batch_size,
            shuffle=True,
            generator=generator,
            num_workers=self.num_workers,
            drop_last=len(self.train_set) > self.batch_size,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(
            self.val_set, batch_size=self.eval_batch_size, num_workers=self.num_workers
        )

    def test_dataloader(self) -> DataLoader:
        return DataLoader(
            self.test_set, batch_size=self.eval_batch_size, num_workers=self.num_workers
        )

    def raw_set(self, split: str) -> TensorDataset:
        """The images of ``split`` ("val" or "test") in [0, 1] with their labels."""
        if split not in ("val", "test"):
            raise ValueError(f"split must be 'val' or 'test', got {split!r}")
        self.setup(split)
        return self._raw_val if split == "val" else self._raw_test

    def raw_train(self, count: int) -> torch.Tensor:
        """The first ``count`` images of the training split (fewer if it has fewer), in [0, 1]:
        what a statistic of the training inputs is fitted on (an order's direction)."""
        self.setup()
        chosen = self._train_idx[: max(int(count), 0)].numpy()
        return _to_unit(self._load().train_images[chosen])

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if not (self.augment and self.trainer is not None and self.trainer.training):
            return batch
        images, labels = batch
        return augment(
            images, self.shift, fill=self.normalize(torch.zeros(1, self.channels, 1, 1).to(images))
        ), labels

    def describe(self) -> dict[str, Any]:
        """Where the data came from and how it was split (for logs and result files)."""
        arrays = self._load()
        self.setup()
        return {
            "dataset": self.name,
            "source": arrays.source,
            "subset": arrays.subset,
            "notes": list(arrays.notes),
            "num_train": len(self.train_set),
            "num_val": len(self.val_set),
            "num_test": len(self.test_set),
        }


def _to_unit(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)


def augment(images: torch.Tensor, shift: int, fill: torch.Tensor) -> torch.Tensor:
    """Random horizontal flips and random shifts (zero-padded, i.e. black) of a batch."""
    batch, channels, height, width = images.shape
    flip = torch.rand(batch, device=images.device) < 0.5
    images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
    if shift <= 0:
        return images
    padded = F.pad(images - fill, (shift, shift, shift, shift)) + fill
    dy = torch.randint(0, 2 * shift + 1, (batch,), device=images.device)
    dx = torch.randint(0, 2 * shift + 1, (batch,), device=images.device)
    rows = (dy[:, None] + torch.arange(height, device=images.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(width, device=images.device))[:, None, None, :]
    index = torch.arange(batch, device=images.device).view(-1, 1, 1, 1)
    chans = torch.arange(channels, device=images.device).view(1, -1, 1, 1)
    return padded[index, chans, rows, cols]
