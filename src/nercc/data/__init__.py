"""Offline image datasets as one LightningDataModule (see :class:`ImageDataModule`).

The names load on first use, so that ``nercc.data.sources`` imports without Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "DATASETS": "nercc.data.sources",
    "DataNotFoundError": "nercc.data.sources",
    "ImageArrays": "nercc.data.sources",
    "ImageDataModule": "nercc.data.datamodule",
    "load_arrays": "nercc.data.sources",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
