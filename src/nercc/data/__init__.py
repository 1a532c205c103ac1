"""Offline image datasets as one LightningDataModule (see :class:`ImageDataModule`).

The names load on first use, so that ``nercc.data.sources`` imports without Lightning.
"""

from __future__ import annotations

from nercc.utils.lazy import lazy_attributes

_WHERE = {
    "DATASETS": "nercc.data.sources",
    "DataNotFoundError": "nercc.data.sources",
    "DatasetFormat": "nercc.data.sources",
    "FORMATS": "nercc.data.sources",
    "ImageArrays": "nercc.data.sources",
    "ImageDataModule": "nercc.data.datamodule",
    "load_arrays": "nercc.data.sources",
}

__all__ = sorted(_WHERE)


__getattr__ = lazy_attributes(__name__, _WHERE)
