"""The decoder cache of a coding scheme: decoder matrices per availability pattern, with their torch
copies per (dtype, device), least recently used dropped first.

A scheme holds one :class:`DecoderCache`; it may be shared by threads. The cache is only read and
changed under its own lock, while matrices are built outside it (two threads missing the same
pattern may both build it; the first one cached is kept and returned to both).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from nercc.coding import arrays
from nercc.coding._validation import check_int

__all__ = ["DECODER_CACHE_SIZE", "CachedDecoder", "DecoderCache"]

#: How many decoder matrices a scheme keeps by default (least recently used are dropped first,
#: with their torch copies). At K = 20, N = 100 one holds 16 kB, and 8 kB more per float32 copy.
DECODER_CACHE_SIZE = 16384

#: Builds the decoders (P, K, N) of P distinct, valid boolean patterns (P, N).
Build = Callable[[np.ndarray], np.ndarray]


class CachedDecoder:
    """A cached decoder: the read-only float64 ``matrix`` (K, N) of one pattern and its torch
    copies by (dtype, device) in ``tensors``, dropped with it."""

    __slots__ = ("matrix", "tensors")

    def __init__(self, matrix: np.ndarray) -> None:
        self.matrix = matrix
        self.tensors: dict[tuple[Any, Any], Any] = {}


class DecoderCache:
    """A thread-safe LRU cache of decoder matrices keyed by availability pattern.

    Parameters
    ----------
    size : int, optional
        How many patterns it keeps, >= 1; :data:`DECODER_CACHE_SIZE` (read when the cache is
        made) by default.
    """

    def __init__(self, size: int | None = None) -> None:
        self.size = DECODER_CACHE_SIZE if size is None else check_int("size", size, 1)
        self._lock = threading.RLock()
        self._entries: OrderedDict[bytes, CachedDecoder] = OrderedDict()  # least recent first

    @staticmethod
    def key(mask: np.ndarray) -> bytes:
        """Return the cache key of one boolean pattern (N,): every worker counts."""
        return np.packbits(mask).tobytes()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._entries

    def __iter__(self) -> Iterator[bytes]:
        """The keys, least recently used first (a snapshot)."""
        return iter(self.keys())

    def keys(self) -> list[bytes]:
        """Return the keys held, least recently used first (a snapshot)."""
        with self._lock:
            return list(self._entries)

    def items(self) -> list[tuple[bytes, CachedDecoder]]:
        """Return the (key, decoder) pairs held, least recently used first (a snapshot)."""
        with self._lock:
            return list(self._entries.items())

    # -- lookups ------------------------------------------------------------------------------
    def matrices(self, masks: np.ndarray, build: Build) -> np.ndarray:
        """Return the decoders (P, K, N) of valid patterns ``masks`` (P, N), stacked, building
        the missing ones with ``build``."""
        return np.stack([entry.matrix for entry in self.entries(masks, build)])

    def entries(self, masks: np.ndarray, build: Build) -> list[CachedDecoder]:
        """Return the cached decoders of valid patterns (P, N), building the missing ones in one
        batch with ``build`` (outside the lock); the patterns become the most recently used, in
        their order."""
        keys = [self.key(row) for row in masks]
        cache = self._entries
        with self._lock:
            found = {key: cache[key] for key in keys if key in cache}
            if all(key in found for key in keys):
                return self._refresh(keys, found)
        missing = {k: row for k, row in zip(keys, masks, strict=True) if k not in found}
        built = build(np.stack(list(missing.values())))
        for key, decoder in zip(missing, built, strict=True):
            found[key] = CachedDecoder(arrays.readonly(decoder))
        with self._lock:
            return self._refresh(keys, found)

    def operand(self, masks: np.ndarray, like: Any, build: Build) -> Any:
        """Return the decoders of valid patterns (N,) or (P, N), (K, N) or (P, K, N), in the type,
        dtype and device of ``like``. Torch copies are cached with the decoders: a cached pattern
        costs a key and a lookup, no conversion."""
        if masks.ndim == 1 and arrays.is_tensor(like):  # the hot path: one cached pattern
            key = self.key(masks)
            cache = self._entries
            with self._lock:
                entry = cache.get(key)
                if entry is not None:
                    tensor = entry.tensors.get((like.dtype, like.device))
                    if tensor is not None:
                        self._mark_used([key])
                        return tensor
        entries = self.entries(masks[None] if masks.ndim == 1 else masks, build)
        if not arrays.is_tensor(like):
            matrices = (
                entries[0].matrix if masks.ndim == 1 else np.stack([e.matrix for e in entries])
            )
            return arrays.like(matrices, like)
        key = (like.dtype, like.device)
        with self._lock:
            tensors = [entry.tensors.get(key) for entry in entries]
        missing = {id(entry): entry for entry, t in zip(entries, tensors, strict=True) if t is None}
        if missing:
            # One conversion (one transfer to the device) for all; each pattern keeps a copy of
            # its own, so that an evicted pattern frees its memory whatever the others do.
            converted = arrays.to_torch(
                np.stack([entry.matrix for entry in missing.values()]), like
            )
            copies = converted.unbind(0)
            if len(copies) > 1:
                copies = [copy.clone() for copy in copies]
            with self._lock:
                for entry, copy in zip(missing.values(), copies, strict=True):
                    entry.tensors.setdefault(key, copy)
                tensors = [entry.tensors[key] for entry in entries]
        if masks.ndim == 1:
            return tensors[0]
        import torch

        return torch.stack(tensors)

    # -- internals (under the lock) -----------------------------------------------------------
    def _refresh(self, keys: list[bytes], found: dict[bytes, CachedDecoder]) -> list[CachedDecoder]:
        """Under the lock: cache the ``found`` decoders that are not (or no longer) cached, move
        ``keys`` to the most recent end, drop the least recently used beyond the cache size and
        return the decoders of ``keys`` (those cached first: one object per pattern)."""
        cache = self._entries
        for key in keys:
            if key not in cache:
                cache[key] = found[key]
        result = [cache[key] for key in keys]
        self._mark_used(keys)
        return result

    def _mark_used(self, keys: list[bytes]) -> None:
        """Under the lock: move ``keys`` to the most recent end and drop the least recently used
        beyond :attr:`size`."""
        cache = self._entries
        for key in keys:
            cache.move_to_end(key)
        while len(cache) > self.size:
            cache.popitem(last=False)
