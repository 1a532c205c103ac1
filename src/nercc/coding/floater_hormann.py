r"""Floater–Hormann rational interpolants as linear operators (BACC generalised; ``d = 0`` is
Berrut's interpolant of :mod:`nercc.coding.berrut`).

Over nodes :math:`x_0 < \dots < x_n` with values :math:`f_k` and a degree :math:`0 \le d \le n`,
Floater and Hormann (2007, "Barycentric rational interpolation with no poles and high rates of
approximation", Numer. Math. 107) blend the polynomial interpolants of degree d through every
d + 1 consecutive nodes; in barycentric form

.. math::

    r(z) = \frac{\sum_k \frac{w_k}{z - x_k} f_k}{\sum_k \frac{w_k}{z - x_k}}, \qquad
    w_k = \sum_{i \in J_k} (-1)^i \prod_{j=i, j \ne k}^{i+d} \frac{1}{x_k - x_j}, \quad
    J_k = \{i : 0 \le i \le n - d,\ k - d \le i \le k\},

equivalently :math:`w_k = (-1)^{k-d} \sum_{i \in J_k} \prod_{j=i, j \ne k}^{i+d}
1/|x_k - x_j|` (the form computed here). It has no real poles, interpolates
(:math:`r(x_k) = f_k`) and reproduces every polynomial of degree at most d. ``d = 0`` gives
:math:`w_k = (-1)^k`, Berrut's interpolant; ``d = n`` the polynomial interpolant. A degree above
the number of nodes less one is clamped to it.
"""

from __future__ import annotations

import numpy as np

from nercc.coding._validation import check_points_1d, check_whole
from nercc.coding.berrut import barycentric_matrices

__all__ = ["floater_hormann_matrix", "floater_hormann_weights"]


def floater_hormann_weights(nodes: np.ndarray, d: int) -> np.ndarray:
    r"""Return the barycentric weights of the Floater–Hormann interpolant of degree ``d``.

    :math:`w_k = (-1)^{k-d} \sum_{i \in J_k} \prod_{j=i, j \ne k}^{i+d} 1/|x_k - x_j|`, with ``d``
    clamped to ``len(nodes) - 1``.

    Parameters
    ----------
    nodes : array_like of shape (m,)
        Strictly ascending, finite nodes.
    d : int
        The degree, >= 0.

    Returns
    -------
    ndarray of shape (m,), float64
        Their signs alternate; ``d = 0`` gives ``(-1)^k``.
    """
    nodes = check_points_1d("nodes", nodes, ascending=True)
    return floater_hormann_weights_of(nodes[None], check_whole("d", d, 0))[0]


def floater_hormann_matrix(nodes: np.ndarray, targets: np.ndarray, d: int) -> np.ndarray:
    """Return the matrix mapping values at ``nodes`` to the Floater–Hormann interpolant of degree
    ``d`` (clamped to ``len(nodes) - 1``) at ``targets``; a target equal to a node gets the unit
    row of that node.

    Parameters
    ----------
    nodes : array_like of shape (m,)
        Strictly ascending, finite nodes.
    targets : array_like of shape (t,)
        Finite evaluation points.
    d : int
        The degree, >= 0.

    Returns
    -------
    ndarray of shape (t, m), float64
        Every row sums to 1.
    """
    nodes = check_points_1d("nodes", nodes, ascending=True)
    targets = check_points_1d("targets", targets, ascending=False)
    return floater_hormann_matrices(nodes[None], targets, check_whole("d", d, 0))[0]


def floater_hormann_weights_of(nodes: np.ndarray, d: int) -> np.ndarray:
    """Batched :func:`floater_hormann_weights` without argument checks.

    Parameters
    ----------
    nodes : ndarray of shape (P, m)
        P strictly ascending rows of nodes.
    d : int
        The degree, >= 0 (clamped to m - 1).

    Returns
    -------
    ndarray of shape (P, m)
    """
    num_rows, m = nodes.shape
    d = min(d, m - 1)
    weights = np.zeros((num_rows, m))
    diagonal = np.arange(d + 1)
    for i in range(m - d):  # the window of nodes i .. i + d adds to the weights of its nodes
        window = nodes[:, i : i + d + 1]
        gaps = np.abs(window[:, :, None] - window[:, None, :])  # (P, d+1, d+1)
        gaps[:, diagonal, diagonal] = 1.0
        weights[:, i : i + d + 1] += np.prod(1.0 / gaps, axis=2)
    signs = np.where((np.arange(m) - d) % 2 == 0, 1.0, -1.0)
    return signs * weights


def floater_hormann_matrices(nodes: np.ndarray, targets: np.ndarray, d: int) -> np.ndarray:
    """Batched :func:`floater_hormann_matrix` without argument checks.

    Parameters
    ----------
    nodes : ndarray of shape (P, m)
        P strictly ascending rows of nodes.
    targets : ndarray of shape (t,) or (P, t)
    d : int
        The degree, >= 0 (clamped to m - 1).

    Returns
    -------
    ndarray of shape (P, t, m)
    """
    return barycentric_matrices(nodes, targets, floater_hormann_weights_of(nodes, d))
