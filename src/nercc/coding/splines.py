r"""Natural cubic smoothing splines as linear operators.

For sites :math:`t_1 < \dots < t_n`, values :math:`y_i` and positive weights :math:`w_i`, the
smoothing spline is the minimiser over twice-differentiable :math:`u` of

.. math::

    \frac{1}{\sum_i w_i} \sum_{i=1}^n w_i \, (y_i - u(t_i))^2
    + \lambda \int u''(t)^2 \, dt ,

a natural cubic spline with knots at the sites (unit weights give the mean-normalised data term of
NeRCC). It is linear in :math:`y`, so its values at any targets are :math:`M y` for a matrix
:math:`M` that depends only on the sites, the targets, the weights and :math:`\lambda`.

Reinsch's algorithm: with :math:`Q` (n x n-2) and :math:`R` (n-2 x n-2, tridiagonal) of
``method.md`` and :math:`c = \lambda \sum_i w_i`, the second derivatives at the interior knots
solve the banded, symmetric positive definite system :math:`A \gamma = Q^T y` with
:math:`A = R + c\, Q^T W^{-1} Q`, and the fitted knot values are
:math:`g = y - c\, W^{-1} Q \gamma`.
Between knots the spline is the usual cubic in :math:`(g, \gamma)`; outside :math:`[t_1, t_n]` it
is linear, continuing the end pieces.

The operator at m targets costs one banded Cholesky solve with m right-hand sides, O(n m), with no
dense n x n factorisation. Many fits of one size are solved at once: their pentadiagonal systems
are stacked into one block-diagonal banded system and handed to a single LAPACK call.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solveh_banded

from nercc.coding._validation import check_lam, check_points_1d

__all__ = ["smoothing_spline_matrix"]


def smoothing_spline_matrix(
    sites: np.ndarray,
    targets: np.ndarray,
    lam: float,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    r"""Return the matrix mapping values at ``sites`` to the smoothing spline at ``targets``.

    The spline :math:`u` minimises

    .. math::

        \frac{1}{\sum_i w_i} \sum_{i=1}^n w_i \, (y_i - u(t_i))^2 + \lambda \int u''(t)^2 \, dt

    over the values ``y`` at the ``n`` sites ``t``; with unit weights the data term is the mean
    squared residual. ``lam = 0`` interpolates (a natural cubic interpolating spline), and as
    ``lam`` grows the fit tends to the weighted least-squares line. One site gives a constant
    and two sites a straight line, for any ``lam``. Outside ``[sites[0], sites[-1]]`` the spline
    is linear.

    Parameters
    ----------
    sites : array_like of shape (n,)
        Strictly ascending, finite knot positions.
    targets : array_like of shape (m,)
        Finite points at which the spline is evaluated, in any order.
    lam : float
        Smoothing parameter, finite and >= 0. It equals ``L / sum(weights)`` for the ``lam=L`` of
        ``scipy.interpolate.make_smoothing_spline``, whose data term is not normalised.
    weights : array_like of shape (n,), optional
        Positive, finite weights of the data term; unit weights by default.

    Returns
    -------
    ndarray of shape (m, n), float64
        ``M`` such that ``M @ y`` are the spline's values at the targets. Every row sums to 1.
    """
    sites = check_points_1d("sites", sites, ascending=True)
    targets = check_points_1d("targets", targets, ascending=False)
    lam = check_lam("lam", lam)
    if weights is None:
        weights = np.ones_like(sites)
    else:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != sites.shape:
            raise ValueError(
                f"weights must have the shape of sites {sites.shape}, got shape {weights.shape}"
            )
        if not np.all(np.isfinite(weights) & (weights > 0)):
            raise ValueError(f"weights must be finite and > 0, got {weights!r}")
    return smoothing_spline_matrices(sites[None], targets, lam, weights[None])[0]


def smoothing_spline_matrices(
    sites: np.ndarray, targets: np.ndarray, lam: float, weights: np.ndarray | None = None
) -> np.ndarray:
    """Batched :func:`smoothing_spline_matrix` without argument checks (internal).

    Parameters
    ----------
    sites : ndarray of shape (P, n)
        P strictly ascending rows of knots.
    targets : ndarray of shape (m,) or (P, m)
        Evaluation points, shared by all rows or one row per fit.
    lam : float
        Smoothing parameter >= 0.
    weights : ndarray of shape (P, n), optional
        Positive weights; unit weights by default.

    Returns
    -------
    ndarray of shape (P, m, n)
    """
    num_fits, n = sites.shape
    targets = np.broadcast_to(targets, (num_fits, np.shape(targets)[-1]))
    num_targets = targets.shape[1]
    if n == 1:
        return np.ones((num_fits, num_targets, 1))
    if weights is None:
        weights = np.ones_like(sites)

    # Each target z lies on (or beyond) one piece [t_i, t_{i+1}]; the end pieces extend outwards.
    piece = np.clip((targets[:, :, None] >= sites[:, None, :]).sum(axis=2) - 1, 0, n - 2)
    lo = np.take_along_axis(sites, piece, axis=1)
    hi = np.take_along_axis(sites, piece + 1, axis=1)
    h = hi - lo
    a = (hi - targets) / h
    b = (targets - lo) / h
    # u(z) = a g_i + b g_{i+1} + c_lo gamma_i + c_hi gamma_{i+1}; linear beyond the end knots,
    # u(z) = g_end + (z - t_end) u'(t_end), which keeps a and b and changes the gamma weights.
    h2 = h**2 / 6.0
    left = targets < sites[:, :1]
    right = targets > sites[:, -1:]
    c_lo = np.where(left, 0.0, np.where(right, -a * h2, (a**3 - a) * h2))
    c_hi = np.where(left, -b * h2, np.where(right, 0.0, (b**3 - b) * h2))

    # The piecewise-linear part B_g y: weights a, b on knots i, i+1.
    result = np.zeros((num_fits, num_targets, n))
    np.put_along_axis(result, piece[..., None], a[..., None], axis=2)
    np.put_along_axis(result, piece[..., None] + 1, b[..., None], axis=2)
    if n == 2:
        return result
    return result - _curvature_correction(sites, weights, lam, piece, a, b, c_lo, c_hi)


def _curvature_correction(
    sites: np.ndarray,
    weights: np.ndarray,
    lam: float,
    piece: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    c_lo: np.ndarray,
    c_hi: np.ndarray,
) -> np.ndarray:
    """Return ``C A^-1 Q^T`` of shape (P, t, n) for t targets, where the spline at the targets is
    ``B_g y - C A^-1 Q^T y``.

    With ``G = I - c W^-1 Q A^-1 Q^T`` the knot values and ``A^-1 Q^T`` the interior second
    derivatives, ``u(z) = B_g G y + B_gamma A^-1 Q^T y = B_g y - C A^-1 Q^T y`` for
    ``C = c B_g W^-1 Q - B_gamma``. Solving ``A Z = C^T`` takes one right-hand side per target
    rather than one per site, and ``C A^-1 Q^T = (Q Z)^T`` since ``A`` is symmetric.
    """
    num_fits, n = sites.shape
    m = n - 2
    num_targets = piece.shape[1]
    h = np.diff(sites, axis=1)  # (P, n-1)
    # Column c of Q (interior knot c+1) has q_top at row c, q_mid at row c+1, q_bot at row c+2.
    q_top = 1.0 / h[:, :-1]
    q_bot = 1.0 / h[:, 1:]
    q_mid = -q_top - q_bot
    scale = lam * weights.sum(axis=1)  # c = lam * sum(w), shape (P,)
    inv_w = 1.0 / weights

    # A = R + c Q^T W^-1 Q: pentadiagonal, symmetric positive definite.
    diag = (h[:, :-1] + h[:, 1:]) / 3.0 + scale[:, None] * (
        q_top**2 * inv_w[:, :-2] + q_mid**2 * inv_w[:, 1:-1] + q_bot**2 * inv_w[:, 2:]
    )
    upper1 = h[:, 1:-1] / 6.0 + scale[:, None] * (
        q_mid[:, :-1] * q_top[:, 1:] * inv_w[:, 1:-2]
        + q_bot[:, :-1] * q_mid[:, 1:] * inv_w[:, 2:-1]
    )
    upper2 = scale[:, None] * q_bot[:, :-2] * q_top[:, 2:] * inv_w[:, 2:-2]
    # Upper banded storage of the block-diagonal stack of the P systems, ab[2 - d, j] = A[j - d, j].
    # The entries that would couple neighbouring blocks stay zero: the blocks solve independently.
    banded = np.zeros((3, num_fits, m))
    banded[2] = diag
    banded[1, :, 1:] = upper1
    banded[0, :, 2:] = upper2

    # C has, in row z (piece i), entries in interior columns i-2 .. i+1. Pad the columns by 2 on
    # each side so that the out-of-range ones fall into the padding and are cut away.
    def at(values: np.ndarray, column: np.ndarray) -> np.ndarray:
        padded = np.pad(values, ((0, 0), (2, 2)))
        return np.take_along_axis(padded, column + 2, axis=1)

    i = piece
    wa = scale[:, None] * a * np.take_along_axis(inv_w, i, axis=1)
    wb = scale[:, None] * b * np.take_along_axis(inv_w, i + 1, axis=1)
    band = np.stack(
        [
            wa * at(q_bot, i - 2),
            wa * at(q_mid, i - 1) + wb * at(q_bot, i - 1) - c_lo,
            wa * at(q_top, i) + wb * at(q_mid, i) - c_hi,
            wb * at(q_top, i + 1),
        ],
        axis=2,
    )  # (P, t, 4) for the columns i-2, i-1, i, i+1
    c_padded = np.zeros((num_fits, num_targets, m + 4))
    np.put_along_axis(c_padded, i[..., None] + np.arange(4), band, axis=2)
    c_transpose = c_padded[:, :, 2 : m + 2].transpose(0, 2, 1)  # (P, m, t)

    z = solveh_banded(
        banded.reshape(3, num_fits * m),
        np.asfortranarray(c_transpose.reshape(num_fits * m, num_targets)),
        check_finite=False,
    ).reshape(num_fits, m, num_targets)

    # Q Z through the three diagonals of Q: (P, n, t).
    q_z = np.zeros((num_fits, n, num_targets))
    q_z[:, :-2] += q_top[:, :, None] * z
    q_z[:, 1:-1] += q_mid[:, :, None] * z
    q_z[:, 2:] += q_bot[:, :, None] * z
    return q_z.transpose(0, 2, 1)
