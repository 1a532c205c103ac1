"""Evaluation points: one alpha per input, one beta per worker, all in [-1, 1].

Conventions of ``method.md``:

- ``chebyshev``: ``alpha_k = cos((2k+1) pi / (2K))`` (first kind) and
  ``beta_n = cos(n pi / (N-1))`` (second kind), both sorted ascending;
- ``uniform``: ``alpha_k = -1 + (2k+1)/K`` and ``beta_n = -1 + 2n/(N-1)``.

The cosines are computed as sines of the complementary angle, ``cos(t) = sin(pi/2 - t)``: sine is
odd to the last bit, so the points are exactly symmetric about 0 and the middle one is exactly 0.
"""

from __future__ import annotations

import numpy as np

from nercc.coding._validation import check_int

__all__ = ["LAYOUTS", "make_points"]

LAYOUTS = ("chebyshev", "uniform")


def make_points(
    num_inputs: int, num_workers: int, layout: str = "chebyshev"
) -> tuple[np.ndarray, np.ndarray]:
    """Return the input points ``alphas`` and the worker points ``betas``.

    Parameters
    ----------
    num_inputs : int
        K >= 1, the number of inputs coded together.
    num_workers : int
        N >= 2, the number of workers.
    layout : {"chebyshev", "uniform"}
        Chebyshev points of the first kind for the alphas and of the second kind for the betas
        (BACC's choice), or evenly spaced points.

    Returns
    -------
    alphas : ndarray of shape (K,)
        Strictly ascending float64 points in (-1, 1).
    betas : ndarray of shape (N,)
        Strictly ascending float64 points in [-1, 1], ``betas[0] = -1`` and ``betas[-1] = 1``.
    """
    k = check_int("num_inputs", num_inputs, 1)
    n = check_int("num_workers", num_workers, 2)
    if layout == "chebyshev":
        # cos((2i+1) pi / 2K) for i = K-1, ..., 0 is ascending.
        i = np.arange(k - 1, -1, -1)
        alphas = np.sin(np.pi * (k - 1 - 2 * i) / (2 * k))
        j = np.arange(n - 1, -1, -1)
        betas = np.sin(np.pi * (n - 1 - 2 * j) / (2 * (n - 1)))
    elif layout == "uniform":
        alphas = -1.0 + (2.0 * np.arange(k) + 1.0) / k
        betas = -1.0 + 2.0 * np.arange(n) / (n - 1)
    else:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    return alphas, betas
