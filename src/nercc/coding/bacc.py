"""BACC, Berrut approximate coded computing, and its generalisation to Floater–Hormann
interpolants of a tunable degree (``d = 0`` is BACC)."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from nercc.coding._validation import check_whole
from nercc.coding.berrut import berrut_matrices
from nercc.coding.floater_hormann import floater_hormann_matrices
from nercc.coding.params import Tunable
from nercc.coding.point_scheme import PointScheme

__all__ = ["BACC", "FloaterHormann"]


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


class FloaterHormann(PointScheme):
    """BACC with Floater–Hormann rational interpolants of degree ``d`` at both ends.

    The encoder interpolates :math:`(\\alpha_k, x_k)` on the K alphas and evaluates at the betas;
    the decoder interpolates each pattern's answers at its answering betas (in ascending order)
    and evaluates at the alphas, both with the interpolant of degree ``d``
    (:mod:`nercc.coding.floater_hormann`). ``d = 0`` is Berrut's interpolant: BACC, matrix for
    matrix. A higher ``d`` reproduces every polynomial of degree at most ``d``, at the price of a
    larger amplification of errors in the answers as ``d`` grows.

    Where a side has fewer than ``d + 1`` nodes (K <= d alphas, or a pattern with at most ``d``
    answering workers), its degree is clamped to the number of its nodes less one: the polynomial
    interpolant of those nodes. The reported parameter (:meth:`params`) is ``d`` as given.

    Parameters
    ----------
    num_inputs : int
        K >= 1.
    num_workers : int
        N >= 2.
    points : {"chebyshev", "uniform"}
        Layout of the alphas and betas (as BACC's, :func:`nercc.coding.make_points`).
    d : int
        The degree, an integer >= 0 (a whole float such as ``2.0`` too); 0 by default (BACC).
    """

    tunables: ClassVar[tuple[Tunable, ...]] = (
        Tunable(
            name="d",
            side="both",
            meaning="the Floater-Hormann degree of both interpolants: 0 is Berrut (BACC), d "
            "reproduces polynomials of degree <= d (clamped to the nodes less one)",
            low=0.0,
            high=math.inf,
            integer=True,
            log=False,
            search=(0.0, 10.0),
            grid=(0, 1, 2, 3, 4),
            auto=True,
            auto_candidates=(0, 1, 2, 3, 4),
            per_pattern="never",
        ),
    )
    reported: ClassVar[tuple[str, ...]] = ("d",)

    def __init__(
        self, num_inputs: int, num_workers: int, points: str = "chebyshev", d: int = 0
    ) -> None:
        super().__init__(num_inputs, num_workers, points)
        self.d = check_whole("d", d, 0)

    def _fit(self, sites: np.ndarray, targets: np.ndarray, decoder: bool) -> np.ndarray:
        return floater_hormann_matrices(sites, targets, self.d)

    def params(self) -> dict[str, float]:
        """Return ``{"d": d}`` as a plain float (``FloaterHormann(K, N, points=...,
        **params())`` builds the same scheme)."""
        return {"d": float(self.d)}

    def _describe(self) -> dict[str, Any]:
        return {**super()._describe(), "d": self.d}
