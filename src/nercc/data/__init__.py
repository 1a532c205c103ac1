"""Offline image datasets as one LightningDataModule (see :class:`ImageDataModule`)."""

from nercc.data.datamodule import ImageDataModule
from nercc.data.sources import DATASETS, DataNotFoundError, ImageArrays, load_arrays

__all__ = ["DATASETS", "DataNotFoundError", "ImageArrays", "ImageDataModule", "load_arrays"]
