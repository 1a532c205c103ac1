"""NeRCC's cache of eigen-decompositions: one per availability mask, bounded in bytes.

GCV and degrees of freedom on a pattern's answering betas need the eigenvalues (and for GCV the
eigenvectors) of the decoder's ``K = Q R^-1 Q^T`` on those sites
(:func:`nercc.coding.gcv.spectrum`).
A :class:`SpectrumCache` keeps them per mask, least recently used dropped first beyond its bytes.
It may be shared by threads: it is only read and changed under its own lock, while missing
decompositions are computed outside it (threads decompose at once).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from nercc.coding import gcv
from nercc.coding._validation import check_int

__all__ = ["SPECTRUM_CACHE_BYTES", "SpectrumCache"]

#: How many bytes of eigen-decompositions NeRCC keeps per scheme by default (one per availability
#: mask, for GCV and degrees of freedom; least recently used dropped first). At N = 100 one holds
#: 80 kB.
SPECTRUM_CACHE_BYTES = 2**27

#: One mask's decomposition: eigenvalues (n-2,) and, where they were asked for, eigenvectors.
Entry = tuple[np.ndarray, "np.ndarray | None"]


def _size(entry: Entry) -> int:
    return entry[0].nbytes + (0 if entry[1] is None else entry[1].nbytes)


class SpectrumCache:
    """A thread-safe cache of eigen-decompositions per mask, bounded in bytes.

    Parameters
    ----------
    max_bytes : int, optional
        The most bytes it holds, >= 0; :data:`SPECTRUM_CACHE_BYTES` (read when the cache is
        made) by default. A decomposition larger than this is returned but not kept.
    """

    def __init__(self, max_bytes: int | None = None) -> None:
        self.max_bytes = (
            SPECTRUM_CACHE_BYTES if max_bytes is None else check_int("max_bytes", max_bytes, 0)
        )
        self._lock = threading.RLock()
        self._entries: OrderedDict[bytes, Entry] = OrderedDict()  # least recently used first
        self._bytes = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    @property
    def nbytes(self) -> int:
        """The bytes held (eigenvalues and eigenvectors of every cached mask)."""
        with self._lock:
            return self._bytes

    def values(self) -> list[Entry]:
        """Return the decompositions held, least recently used first (a snapshot)."""
        with self._lock:
            return list(self._entries.values())

    def lookup(
        self, masks: np.ndarray, sites: np.ndarray, vectors: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Return the eigenvalues (p, n-2) and, with ``vectors``, eigenvectors (p, n, n-2) for
        patterns of one size: ``masks`` (p, N) with answering ``sites`` (p, n), n >= 3, from the
        cache or computed in one batch (:func:`nercc.coding.gcv.spectrum`) and cached. An entry
        without eigenvectors never serves a lookup that needs them."""
        keys = [np.packbits(row).tobytes() for row in masks]
        found: dict[bytes, Entry] = {}
        with self._lock:
            cache = self._entries
            for key in keys:
                entry = cache.get(key)
                if entry is not None and (entry[1] is not None or not vectors):
                    found[key] = entry
                    cache.move_to_end(key)
        missing = {key: i for i, key in enumerate(keys) if key not in found}
        if missing:
            rows = list(missing.values())
            d, w = gcv.spectrum(sites[rows], vectors)  # outside the lock: threads decompose at once
            with self._lock:
                for j, key in enumerate(missing):
                    entry = (d[j].copy(), None if w is None else w[j].copy())
                    found[key] = entry
                    self._remember(key, entry)
        d = np.stack([found[key][0] for key in keys])
        w = np.stack([found[key][1] for key in keys]) if vectors else None
        return d, w

    def _remember(self, key: bytes, entry: Entry) -> None:
        """Under the lock: cache one mask's decomposition, dropping the least recently used
        beyond :attr:`max_bytes`."""
        size = _size(entry)
        if size > self.max_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= _size(old)
        self._entries[key] = entry
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= _size(dropped)
