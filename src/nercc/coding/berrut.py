r"""Berrut's rational interpolant as a linear operator (the basis of BACC).

Over nodes :math:`p_0 < \dots < p_{m-1}` with values :math:`v_j`,

.. math::

    r(z) = \sum_j w_j(z)\, v_j, \qquad
    w_j(z) = \frac{(-1)^j / (z - p_j)}{\sum_l (-1)^l / (z - p_l)},

which has no real poles, interpolates (:math:`r(p_j) = v_j`) and reproduces constants. The sign
alternates by the node's position in ascending order.
"""

from __future__ import annotations

import numpy as np

from nercc.coding._validation import check_points_1d

__all__ = ["berrut_matrix"]


def berrut_matrix(nodes: np.ndarray, targets: np.ndarray) -> np.ndarray:
    r"""Return the matrix mapping values at ``nodes`` to Berrut's interpolant at ``targets``.

    Row ``i`` holds the weights :math:`w_j(z_i) = \frac{(-1)^j / (z_i - p_j)}{\sum_l (-1)^l / (z_i -
    p_l)}`; a target equal to a node gets the unit row of that node.

    Parameters
    ----------
    nodes : array_like of shape (m,)
        Strictly ascending, finite nodes.
    targets : array_like of shape (t,)
        Finite evaluation points.

    Returns
    -------
    ndarray of shape (t, m), float64
        Every row sums to 1.
    """
    nodes = check_points_1d("nodes", nodes, ascending=True)
    targets = check_points_1d("targets", targets, ascending=False)
    return berrut_matrices(nodes[None], targets)[0]


def berrut_matrices(nodes: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Batched :func:`berrut_matrix` without argument checks (internal).

    Parameters
    ----------
    nodes : ndarray of shape (P, m)
        P strictly ascending rows of nodes.
    targets : ndarray of shape (t,) or (P, t)

    Returns
    -------
    ndarray of shape (P, t, m)
    """
    signs = np.where(np.arange(nodes.shape[1]) % 2 == 0, 1.0, -1.0)
    return barycentric_matrices(nodes, targets, signs)


def barycentric_matrices(nodes: np.ndarray, targets: np.ndarray, weights: np.ndarray) -> np.ndarray:
    r"""The matrices of the barycentric rational interpolants with ``weights`` (internal).

    Row ``i`` of fit ``p`` holds :math:`\frac{u_j / (z_i - p_j)}{\sum_l u_l / (z_i - p_l)}` with
    :math:`u` the weights of that fit's nodes; a target equal to a node gets the unit row of that
    node. Berrut's interpolant has :math:`u_j = (-1)^j`, Floater and Hormann's their weights of
    degree d (:mod:`nercc.coding.floater_hormann`).

    Parameters
    ----------
    nodes : ndarray of shape (P, m)
        P strictly ascending rows of nodes.
    targets : ndarray of shape (t,) or (P, t)
    weights : ndarray of shape (m,) or (P, m)
        The barycentric weights of each fit's nodes.

    Returns
    -------
    ndarray of shape (P, t, m)
    """
    num_fits, m = nodes.shape
    targets = np.broadcast_to(targets, (num_fits, np.shape(targets)[-1]))
    weights = np.broadcast_to(weights, (num_fits, m))
    offsets = targets[:, :, None] - nodes[:, None, :]
    hits = offsets == 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = weights[:, None, :] / offsets
        rows = terms / terms.sum(axis=2, keepdims=True)
    on_node = hits.any(axis=2, keepdims=True)
    return np.where(on_node, hits.astype(np.float64), rows)
