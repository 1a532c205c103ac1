"""The baselines without a code: Uncoded (each input on one worker) and Replication (each input on
r workers). Both lose an input when every worker that computes it straggles."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from nercc.coding._validation import check_int
from nercc.coding.base import CodingScheme

__all__ = ["Replication", "Uncoded"]


class Uncoded(CodingScheme):
    """No coding: N = K workers, worker k computes input k; a straggler's input is lost.

    It has no tunable parameters, and loses inputs (:attr:`loses_inputs`).

    Parameters
    ----------
    num_inputs : int
        K >= 1.
    """

    loses_inputs: ClassVar[bool] = True

    def __init__(self, num_inputs: int) -> None:
        num_inputs = check_int("num_inputs", num_inputs, 1)
        super().__init__(num_inputs, num_inputs)

    def _build_encoder(self) -> np.ndarray:
        return np.eye(self.num_inputs)

    def _build_decoders(self, available: np.ndarray) -> np.ndarray:
        return np.eye(self.num_inputs) * available[:, None, :]

    def _describe(self) -> dict[str, Any]:
        return {"num_inputs": self.num_inputs}


class Replication(CodingScheme):
    """Each input sent to ``replicas`` workers: N = r K, worker n computes input ``n % K``.

    An input's estimate is the mean of its available replicas' outputs; it is lost (all zeros)
    when every replica straggles.

    Parameters
    ----------
    num_inputs : int
        K >= 1.
    replicas : int
        r >= 1.
    """

    loses_inputs: ClassVar[bool] = True

    def __init__(self, num_inputs: int, replicas: int) -> None:
        num_inputs = check_int("num_inputs", num_inputs, 1)
        self.replicas = check_int("replicas", replicas, 1)
        super().__init__(num_inputs, num_inputs * self.replicas)

    def _build_encoder(self) -> np.ndarray:
        return np.tile(np.eye(self.num_inputs), (self.replicas, 1))

    def _build_decoders(self, available: np.ndarray) -> np.ndarray:
        hits = self.encoder_matrix().T * available[:, None, :]  # (P, K, N)
        counts = hits.sum(axis=2, keepdims=True)
        return np.divide(hits, counts, out=np.zeros_like(hits), where=counts > 0)

    def _describe(self) -> dict[str, Any]:
        return {"num_inputs": self.num_inputs, "replicas": self.replicas}
