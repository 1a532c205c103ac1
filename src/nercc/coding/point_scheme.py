"""Schemes that place inputs and workers at points: input ``k`` at ``alphas[k]``, worker ``n`` at
``betas[n]`` (NeRCC, BACC, Floater–Hormann). The encoder fits the inputs at the alphas and
evaluates at the betas; the decoder fits the answers at the answering betas and evaluates at the
alphas. A subclass gives the fit (:meth:`PointScheme._fit`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from nercc.coding._validation import check_int
from nercc.coding.base import CodingScheme
from nercc.coding.points import LAYOUTS, make_points

__all__ = ["PointScheme"]


#: At most this many decoders are fitted in one batch.
BUILD_CHUNK = 64


class PointScheme(CodingScheme, ABC):
    """A scheme that places inputs at ``alphas`` and workers at ``betas`` (NeRCC, BACC,
    Floater–Hormann)."""

    _FEW_ANSWERS_UNDERDETERMINED = True

    def __init__(self, num_inputs: int, num_workers: int, points: str) -> None:
        num_inputs = check_int("num_inputs", num_inputs, 1)
        num_workers = check_int("num_workers", num_workers, 2)
        if num_workers < num_inputs:
            raise ValueError(
                f"num_workers must be at least num_inputs={num_inputs} (fewer workers than "
                f"inputs cannot carry them), got {num_workers}"
            )
        if points not in LAYOUTS:
            raise ValueError(f"points must be one of {LAYOUTS}, got {points!r}")
        super().__init__(num_inputs, num_workers)
        self.points = points
        self.alphas, self.betas = make_points(num_inputs, num_workers, points)
        self.alphas.flags.writeable = False
        self.betas.flags.writeable = False

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.alphas.flags.writeable = False  # numpy unpickles and copies arrays writeable
        self.betas.flags.writeable = False

    def _by_size(self, available: np.ndarray):
        """Patterns grouped by how many workers answer (each group is one batched fit): yields
        their rows in ``available``, their masks and the betas of their answering workers."""
        counts = available.sum(axis=1)
        for count in np.unique(counts):
            chosen = np.flatnonzero(counts == count)
            masks = available[chosen]
            sites = np.broadcast_to(self.betas, masks.shape)[masks].reshape(len(chosen), count)
            yield chosen, masks, sites

    def _build_decoders(self, available: np.ndarray) -> np.ndarray:
        decoders = np.zeros((available.shape[0], self.num_inputs, self.num_workers))
        for chosen, masks, sites in self._by_size(available):
            # In chunks: the fits' temporaries (p, n, K) stay in cache (512 patterns at once
            # cost 4x more per decoder than 64 at a time, measured at K=20, N=100).
            for start in range(0, len(chosen), BUILD_CHUNK):
                part = slice(start, start + BUILD_CHUNK)
                fitted = self._fit_decoders(masks[part], sites[part])  # (p, K, count)
                rows, cols = np.nonzero(masks[part])
                block = decoders[chosen[part]]
                block[rows, :, cols] = fitted.transpose(0, 2, 1).reshape(-1, self.num_inputs)
                decoders[chosen[part]] = block
        return decoders

    def _build_encoder(self) -> np.ndarray:
        return self._fit(self.alphas[None], self.betas, decoder=False)[0]

    def _fit_decoders(self, masks: np.ndarray, sites: np.ndarray) -> np.ndarray:
        """Decoder operators (p, K, n) of patterns ``masks`` (p, N) with answering ``sites``."""
        return self._fit(sites, self.alphas, decoder=True)

    @abstractmethod
    def _fit(self, sites: np.ndarray, targets: np.ndarray, decoder: bool) -> np.ndarray:
        """Operators (P, len(targets), n) from values at ``sites`` (P, n) to ``targets``."""

    def lost(self, available: Any) -> np.ndarray:
        mask = self._check_available(available)
        return np.zeros((*mask.shape[:-1], self.num_inputs), dtype=bool)

    lost.__doc__ = CodingScheme.lost.__doc__

    def _describe(self) -> dict[str, Any]:
        return {**super()._describe(), "points": self.points}
