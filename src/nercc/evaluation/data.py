"""What the coded evaluation reads: raw images with labels and their index, in whole batches
dealt to processes in turn, so that one process or several see exactly the same batches."""

from __future__ import annotations

from collections.abc import Iterator

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Sampler, TensorDataset

from nercc.data import ImageDataModule

__all__ = ["CodedEvalData", "ShardedBatchSampler"]


class ShardedBatchSampler(Sampler[list[int]]):
    """Consecutive batches of ``batch_size`` indices; process ``rank`` of ``world`` takes batches
    ``rank, rank + world, ...``. Batches never mix across processes and none is padded."""

    def __init__(self, length: int, batch_size: int, rank: int = 0, world: int = 1) -> None:
        self.length, self.batch_size, self.rank, self.world = length, batch_size, rank, world

    def _batches(self) -> range:
        total = -(-self.length // self.batch_size)
        return range(self.rank, total, self.world)

    def __iter__(self) -> Iterator[list[int]]:
        for b in self._batches():
            yield list(range(b * self.batch_size, min((b + 1) * self.batch_size, self.length)))

    def __len__(self) -> int:
        return len(self._batches())


class CodedEvalData(pl.LightningDataModule):
    """Raw images of one split of an :class:`ImageDataModule`, as ``(images, labels, index)``.

    Parameters
    ----------
    data : ImageDataModule
        The dataset.
    split : {"test", "val"}
        The test split, or the validation split (for choosing lambdas).
    batch_size : int
        Inputs per batch; a multiple of K avoids padded remainder groups.
    limit : int, optional
        Evaluate only the first ``limit`` images.
    """

    def __init__(
        self,
        data: ImageDataModule,
        split: str = "test",
        batch_size: int = 1000,
        limit: int | None = None,
    ) -> None:
        super().__init__()
        if split not in ("test", "val"):
            raise ValueError(f"split must be 'test' or 'val', got {split!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be >= 1 or null, got {limit}")
        self.data, self.split, self.batch_size, self.limit = data, split, batch_size, limit

    def dataset(self) -> TensorDataset:
        images, labels = self.data.raw_set(self.split).tensors
        if self.limit is not None:
            images, labels = images[: self.limit], labels[: self.limit]
        return TensorDataset(images, labels, torch.arange(len(labels)))

    def test_dataloader(self) -> DataLoader:
        dataset = self.dataset()
        rank, world = (
            (0, 1) if self.trainer is None else (self.trainer.global_rank, self.trainer.world_size)
        )
        sampler = ShardedBatchSampler(len(dataset), self.batch_size, rank, world)
        # batch_size=None: each sampled item is a whole batch of indices, fetched in one indexing
        # of the tensors (no per-image fetch and collate).
        return DataLoader(
            dataset, sampler=sampler, batch_size=None, num_workers=self.data.num_workers
        )
