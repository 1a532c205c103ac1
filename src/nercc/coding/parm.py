"""ParM (parity models; Kosaian, Rashmi and Venkataraman, SOSP 2019): k inputs, their sum sent to
one extra worker that runs a learned parity model, and one missing output recovered by
subtraction.

K = k inputs over N = k + 1 workers: worker ``i < k`` computes ``f(x_i)``, worker ``k`` computes
``g(x_1 + ... + x_k)``, where the parity model ``g`` was trained so that
``g(x_1 + ... + x_k) ~ f(x_1) + ... + f(x_k)`` (:mod:`nercc.models.parity`). The encoder is
``E = [I_k; 1 ... 1]``. Decoding a pattern: every answering data worker gives its own output;
when exactly one data worker ``i`` is missing and the parity worker answered,
``f(x_i) ~ y_k - sum_{j != i} y_j``; every other missing input is lost (all zeros,
:meth:`~nercc.coding.CodingScheme.lost`), as with Replication.

The parity worker runs another model than the data workers: the scheme says which workers
(:attr:`ParM.parity_workers`) and where that model is published (:attr:`ParM.parity_model`),
and the evaluation runs that model on those workers' coded inputs. With ``g = f`` for a linear
``f`` the decoding is exact.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from nercc.coding._validation import check_int
from nercc.coding.base import CodingScheme

__all__ = ["ParM"]


class ParM(CodingScheme):
    """Parity models: K = k inputs and their sum on N = k + 1 workers, one straggler per group.

    Parameters
    ----------
    num_inputs : int
        k >= 1, the inputs of a group (ParM uses 2 to 4).
    num_workers : int, optional
        Must be ``num_inputs + 1`` when given (configs give it so that schemes are compared at
        equal cost).
    parity_model : str, optional
        The published parity model's checkpoint (what the parity worker runs:
        ``outputs/checkpoints/parity_<model>_<dataset>_k<k>.ckpt``); None for the math alone.
    """

    loses_inputs: ClassVar[bool] = True

    def __init__(
        self, num_inputs: int, num_workers: int | None = None, parity_model: str | None = None
    ) -> None:
        num_inputs = check_int("num_inputs", num_inputs, 1)
        if num_workers is not None:
            num_workers = check_int("num_workers", num_workers, 1)
            if num_workers != num_inputs + 1:
                raise ValueError(
                    f"num_workers must be num_inputs + 1 = {num_inputs + 1} (k data workers and "
                    f"one parity worker), got {num_workers}"
                )
        if parity_model is not None and not isinstance(parity_model, str):
            raise ValueError(f"parity_model must be a path (str) or None, got {parity_model!r}")
        self.parity_model = parity_model
        super().__init__(num_inputs, num_inputs + 1)

    @property
    def parity_workers(self) -> tuple[int, ...]:
        """The workers that run the parity model (:attr:`parity_model`) instead of the base
        model: the last one, ``k``."""
        return (self.num_inputs,)

    def _build_encoder(self) -> np.ndarray:
        return np.vstack([np.eye(self.num_inputs), np.ones((1, self.num_inputs))])

    def _build_decoders(self, available: np.ndarray) -> np.ndarray:
        k = self.num_inputs
        data = available[:, :k]  # (P, k)
        decoders = np.zeros((available.shape[0], k, k + 1))
        decoders[:, :, :k] = np.eye(k) * data[:, None, :]
        missing = ~data
        # exactly one data worker missing and the parity answered: subtraction
        recover = (missing.sum(axis=1) == 1) & available[:, k]
        rows, inputs = np.nonzero(missing & recover[:, None])
        decoders[rows, inputs, :k] = -1.0
        decoders[rows, inputs, inputs] = 0.0
        decoders[rows, inputs, k] = 1.0
        return decoders

    def _describe(self) -> dict[str, Any]:
        return {"num_inputs": self.num_inputs, "parity_model": self.parity_model}
