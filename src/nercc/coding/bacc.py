"""BACC, Berrut approximate coded computing."""

from __future__ import annotations

import numpy as np

from nercc.coding.berrut import berrut_matrices
from nercc.coding.point_scheme import PointScheme

__all__ = ["BACC"]


class BACC(PointScheme):
    """Berrut approximate coded computing: Berrut's interpolant at both ends.

    The encoder interpolates :math:`(\\alpha_k, x_k)` and evaluates at the betas; the decoder
    interpolates the available :math:`(\\beta_n, \\tilde y_n)`, re-indexed in ascending order so
    that the signs alternate among the available workers, and evaluates at the alphas.

    Parameters
    ----------
    num_inputs : int
        K >= 1.
    num_workers : int
        N >= 2.
    points : {"chebyshev", "uniform"}
        Layout of the alphas and betas.
    """

    def __init__(self, num_inputs: int, num_workers: int, points: str = "chebyshev") -> None:
        super().__init__(num_inputs, num_workers, points)

    def _fit(self, sites: np.ndarray, targets: np.ndarray, decoder: bool) -> np.ndarray:
        return berrut_matrices(sites, targets)
