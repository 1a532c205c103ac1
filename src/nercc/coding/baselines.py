"""The baselines without a code: Uncoded (each input on one worker), Replication (each input on
r workers) and VotingReplication (Replication whose copies vote). All lose an input when every
worker that computes it straggles."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from nercc.coding import arrays
from nercc.coding._validation import check_int
from nercc.coding.base import CodingScheme

__all__ = ["Replication", "Uncoded", "VotingReplication"]


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


class VotingReplication(Replication):
    r"""Replication whose estimate of an input is the majority of its copies: the equal-cost
    baseline against adversarial (Byzantine) workers.

    Copies :math:`i` and :math:`j` of an input (two answering replicas) agree when
    :math:`\|y_i - y_j\|_2 \le \tau \max(\|y_i\|_2, \|y_j\|_2)`, :math:`\tau` the
    ``tolerance``: honest copies compute the same f of the same input, equal up to the rounding
    of the hardware that ran them; an answer holding a NaN or an infinity agrees with none. The
    copy with the most copies agreeing with it (itself included; the first replica on a tie) wins
    the vote when more than half of the input's answering copies agree with it: the estimate is
    then the mean of those, and the other copies are flagged (dropped). Without such a majority
    (one copy against one, two against two) the vote decides nothing: the mean of every answering
    copy, as :class:`Replication`, and nothing flagged. Copies of an adversary that agree with one
    another (the same input lied about the same way) vote together: a majority of lying copies wins.

    Served, it votes over the copies that have answered when every input has one (the frontend
    waits for no more), so it screens only where several copies arrived in time.

    Parameters
    ----------
    num_inputs : int
        K >= 1.
    replicas : int
        r >= 1.
    tolerance : float
        The relative distance up to which two copies agree, finite and >= 0 (1e-4 by default:
        far above float32 rounding, far below any error that changes a prediction).
    """

    screens: ClassVar[bool] = True

    def __init__(self, num_inputs: int, replicas: int, tolerance: float = 1e-4) -> None:
        super().__init__(num_inputs, replicas)
        if not (
            isinstance(tolerance, (int, float))
            and not isinstance(tolerance, bool)
            and np.isfinite(tolerance)
            and tolerance >= 0
        ):
            raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance!r}")
        self.tolerance = float(tolerance)

    def _vote(self, values: np.ndarray, available: np.ndarray) -> np.ndarray:
        """The copies outvoted (P, N) of float64 ``values`` (P, N, M) and patterns (P, N)."""
        count, replicas, inputs = available.shape[0], self.replicas, self.num_inputs
        copies = values.reshape(count, replicas, inputs, -1).transpose(0, 2, 1, 3)  # (P, K, r, M)
        present = available.reshape(count, replicas, inputs).transpose(0, 2, 1)  # (P, K, r)
        norms = arrays.row_norms(copies)
        with np.errstate(
            invalid="ignore", over="ignore"
        ):  # inf - inf: such a copy agrees with none
            gaps = arrays.row_norms(copies[:, :, :, None] - copies[:, :, None])  # (P, K, r, r)
        bound = self.tolerance * np.maximum(norms[..., :, None], norms[..., None, :])
        agree = np.isfinite(gaps) & (gaps <= bound)
        agree &= present[..., :, None] & present[..., None, :]
        support = agree.sum(axis=-1)
        winner = np.argmax(support, axis=-1)[..., None]  # the first replica on a tie
        majority = 2 * np.take_along_axis(support, winner, axis=-1) > present.sum(-1)[..., None]
        with_winner = np.take_along_axis(agree, winner[..., None], axis=2)[..., 0, :]
        kept = np.where(majority, with_winner, present)
        return (present & ~kept).transpose(0, 2, 1).reshape(available.shape)

    def _decode_each_flagged(
        self, outputs: Any, available: np.ndarray, with_params: bool
    ) -> tuple[Any, dict[str, np.ndarray], np.ndarray]:
        flagged = self._vote(arrays.as_float64(outputs), available)
        estimates, params = self._decode_each(outputs, available & ~flagged, with_params)
        return estimates, params, flagged

    def _describe(self) -> dict[str, Any]:
        return {**super()._describe(), "tolerance": self.tolerance}
