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

import math

import numpy as np
from scipy.linalg import solveh_banded
from scipy.linalg.lapack import dpbtrf

from nercc.coding._validation import check_lam, check_points_1d

__all__ = ["lam_bound", "lam_bounds", "smoothing_spline_matrix"]

# The largest accepted lambda, and how it was measured.
#
# As lambda grows the spline tends to the weighted least-squares line, its operator's distance to
# the line's falling like 1/lambda down to the rounding floor (sites spanning [-1, 1]: by lambda
# ~ 1e12 .. 1e13). The solve then keeps that limit, to the floor the sites themselves set (their
# conditioning, not lambda's), for every larger lambda until the scaled penalty leaves the
# floating-point range. Its size is c * max|Q|^2 / min(w) with c = lambda * sum(w); we bound it by
# ``lambda * P`` with
#
#     P = sum(w) / min(w) * max(1, max_j (1/h_{j-1} + 1/h_j))^2        (n >= 3; no system below)
#
# (the max with 1 also covers the other scaled terms, c |Q| / w and c / w, when the gaps exceed 1).
# Measured on 60 random site sets (n from 3 to 500, spans 1e-3 to 1e3, unit weights and random ones
# over four decades; lambda stepped by 10^0.25): the matrices first hold NaN at lambda * P between
# 1.7e307 and 1.8e308, so P predicts the overflow within a factor 10; before it, the distance to
# the line stays at its floor (checked for lambda = 1, 1e10, ..., 1e290). Before the overflow
# there is a worse, silent failure: fitting values directly (``smoothing_spline_values``, NeRCC's
# decoding path) computes second derivatives gamma ~ y / (lambda P), which underflow for small
# data. For the Chebyshev betas of N = 100, data of size 1e-60 decode to garbage (relative error
# 0.5, all finite) at lambda * P = 1e280, data of size 1e-20 lose 4 digits at 1e300, data of size
# 1e-150 fail at 1e200. With lambda * P <= 1e150 (about the square root of the largest double),
# every scaled term stays below ~1e151 and data down to 1e-140 keep their digits (at the bound:
# error <= 2e-12 relative to the data for sizes 1, 1e-20, 1e-60, 1e-100 and 1e-150). The bound is
# that, rounded down to a power of ten: ``lam_bound(sites) = 10 ** floor(log10(1e150 / P))``. It
# depends on the sites and weights: 1e+148 for three sites a unit apart; for Chebyshev points,
# 1e+145 for the encoder of NeRCC(20, 100), 1e+141 for its decoder, 1e+136 for a decoder over
# 1000 workers. It lies ~1e120 beyond the point where the spline already is the line, so refusing
# more loses nothing. tests/unit/coding/test_finite_lambdas.py repeats the main points.
_SCALED_PENALTY_CEILING_LOG10 = 150


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
        Smoothing parameter, finite and in ``[0, lam_bound(sites, weights)]`` (about 1e140 for
        sites in [-1, 1]; far beyond it, the spline already is the least-squares line). It equals
        ``L / sum(weights)`` for the ``lam=L`` of ``scipy.interpolate.make_smoothing_spline``,
        whose data term is not normalised.
    weights : array_like of shape (n,), optional
        Positive, finite weights of the data term; unit weights by default.

    Returns
    -------
    ndarray of shape (m, n), float64
        ``M`` such that ``M @ y`` are the spline's values at the targets. Every row sums to 1.
    """
    sites = check_points_1d("sites", sites, ascending=True)
    targets = check_points_1d("targets", targets, ascending=False)
    weights = _check_weights(weights, sites)
    lam = check_lam("lam", lam, _lam_bound(sites, weights))
    return smoothing_spline_matrices(sites[None], targets, lam, weights[None])[0]


def lam_bound(sites: np.ndarray, weights: np.ndarray | None = None) -> float:
    r"""Return the largest smoothing parameter accepted for these sites and weights.

    Up to it the smoothing spline's banded system and every scaled term stay well inside the
    floating-point range (see the measurement in the module's source). It is a power of ten,
    ``10 ** floor(log10(1e150 / P))`` with
    :math:`P = \frac{\sum_i w_i}{\min_i w_i} \max(1, \max_j (1/h_{j-1} + 1/h_j))^2` over the
    gaps :math:`h` of the sites, and ``inf`` for fewer than three sites (a constant or a line,
    whatever ``lam``). Far below it, the spline already is the weighted least-squares line.

    Parameters
    ----------
    sites : array_like of shape (n,)
        Strictly ascending, finite knot positions.
    weights : array_like of shape (n,), optional
        Positive, finite weights; unit weights by default.

    Returns
    -------
    float
    """
    sites = check_points_1d("sites", sites, ascending=True)
    return _lam_bound(sites, _check_weights(weights, sites))


def _check_weights(weights: object, sites: np.ndarray) -> np.ndarray:
    if weights is None:
        return np.ones_like(sites)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != sites.shape:
        raise ValueError(
            f"weights must have the shape of sites {sites.shape}, got shape {weights.shape}"
        )
    if not np.all(np.isfinite(weights) & (weights > 0)):
        raise ValueError(f"weights must be finite and > 0, got {weights!r}")
    return weights


def _lam_bound(sites: np.ndarray, weights: np.ndarray) -> float:
    """:func:`lam_bound` of checked 1-D sites and weights (computed in logarithms: no overflow)."""
    if sites.size < 3:
        return math.inf
    h = np.diff(sites)
    with np.errstate(over="ignore"):
        q_max = float(np.max(1.0 / h[:-1] + 1.0 / h[1:]))
    log_p = (
        math.log10(float(weights.sum()))
        - math.log10(float(weights.min()))
        + 2.0 * max(0.0, math.log10(q_max) if math.isfinite(q_max) else math.inf)
    )
    if not log_p < _SCALED_PENALTY_CEILING_LOG10 + 300:  # absurdly close sites: only 0 is safe
        return 0.0
    exponent = math.floor(_SCALED_PENALTY_CEILING_LOG10 - log_p)
    return float(f"1e{exponent}")  # the literal, so that lam=1e140 passes a bound of 1e+140


def lam_bounds(sites: np.ndarray) -> np.ndarray:
    """Return :func:`lam_bound` of P rows of sites with unit weights, vectorised.

    The same formula as :func:`lam_bound` (``P = n max(1, max_j (1/h_{j-1} + 1/h_j))^2``), row by
    row; ``inf`` for fewer than three sites, 0 for absurdly close ones.

    Parameters
    ----------
    sites : ndarray of shape (P, n)
        Strictly ascending, finite rows (unchecked).

    Returns
    -------
    ndarray of shape (P,)
        The bounds, each the same literal power of ten as :func:`lam_bound` gives for its row.
    """
    num_rows, n = sites.shape
    if n < 3:
        return np.full(num_rows, math.inf)
    h = np.diff(sites, axis=1)
    with np.errstate(over="ignore", divide="ignore"):
        q_max = np.max(1.0 / h[:, :-1] + 1.0 / h[:, 1:], axis=1)
        log_q = np.where(np.isfinite(q_max), np.log10(q_max), math.inf)
    log_p = math.log10(n) + 2.0 * np.maximum(0.0, log_q)
    safe = log_p < _SCALED_PENALTY_CEILING_LOG10 + 300
    exponent = np.floor(_SCALED_PENALTY_CEILING_LOG10 - np.where(safe, log_p, 0.0)).astype(int)
    found, where = np.unique(exponent, return_inverse=True)
    # the literals, as _lam_bound writes them (one per distinct exponent, not per row)
    bounds = np.array([float(f"1e{e}") for e in found])[where.reshape(-1)]
    return np.where(safe, bounds, 0.0)


def smoothing_spline_matrices(
    sites: np.ndarray, targets: np.ndarray, lam: float, weights: np.ndarray | None = None
) -> np.ndarray:
    """Batched :func:`smoothing_spline_matrix` without argument checks (internal).

    Parameters
    ----------
    sites : ndarray of shape (P, n)
        P strictly ascending rows of knots.
    targets : ndarray of shape (t,) or (P, t)
        Evaluation points, shared by all rows or one row per fit.
    lam : float or ndarray of shape (P,)
        Smoothing parameter >= 0, shared or one per fit.
    weights : ndarray of shape (P, n), optional
        Positive weights; unit weights by default.

    Returns
    -------
    ndarray of shape (P, t, n)
    """
    pieces = _Pieces(sites, targets)
    num_fits, num_targets = pieces.index.shape
    n = sites.shape[1]
    if n == 1:
        return np.ones((num_fits, num_targets, 1))
    # The piecewise-linear part B_g y: weights a, b on knots i, i+1.
    result = np.zeros((num_fits, num_targets, n))
    np.put_along_axis(result, pieces.index[..., None], pieces.a[..., None], axis=2)
    np.put_along_axis(result, pieces.index[..., None] + 1, pieces.b[..., None], axis=2)
    if n == 2:
        return result
    return result - _curvature_correction(_Reinsch(sites, weights, lam), pieces)


def smoothing_spline_values(
    sites: np.ndarray,
    values: np.ndarray,
    targets: np.ndarray,
    lam: float,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Fit P smoothing splines to their own values and evaluate them (internal, unchecked).

    Equal to ``smoothing_spline_matrices(sites, targets, lam, weights) @ values`` but without
    forming the operators: one banded solve with R right-hand sides per fit, O(P n R).

    Parameters
    ----------
    sites : ndarray of shape (P, n)
        P strictly ascending rows of knots.
    values : ndarray of shape (P, n, R)
        R value columns per fit.
    targets : ndarray of shape (t,) or (P, t)
    lam : float or ndarray of shape (P,)
        Shared, or one per fit.
    weights : ndarray of shape (P, n), optional

    Returns
    -------
    ndarray of shape (P, t, R)
    """
    pieces = _Pieces(sites, targets)
    n = sites.shape[1]
    if n == 1:
        return np.repeat(values, pieces.index.shape[1], axis=1)
    knots = values
    curvature = np.zeros_like(values)
    if n > 2:
        system = _Reinsch(sites, weights, lam)
        # A gamma = Q^T y, then g = y - c W^-1 Q gamma.
        q_t_values = system.q_top[..., None] * values[:, :-2]
        q_t_values += system.q_mid[..., None] * values[:, 1:-1]
        q_t_values += system.q_bot[..., None] * values[:, 2:]
        gamma = system.solve(q_t_values)
        knots = values - (system.scale[:, None] * system.inv_w)[..., None] * system.apply_q(gamma)
        curvature[:, 1:-1] = gamma

    def at(array: np.ndarray, index: np.ndarray) -> np.ndarray:
        return np.take_along_axis(array, index[..., None], axis=1)

    i = pieces.index
    return (
        pieces.a[..., None] * at(knots, i)
        + pieces.b[..., None] * at(knots, i + 1)
        + pieces.c_lo[..., None] * at(curvature, i)
        + pieces.c_hi[..., None] * at(curvature, i + 1)
    )


def smoothing_spline_df(
    sites: np.ndarray, lam: float | np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    r"""Effective degrees of freedom of P smoothing splines on their own sites (internal,
    unchecked): the trace of each fit's hat matrix, from its banded system.

    The fitted knot values are :math:`g = S y` with :math:`S = I - c\, W^{-1} Q A^{-1} Q^T`
    (module docstring), so

    .. math::

        \mathrm{df} = \operatorname{tr} S = n - c \operatorname{tr}(A^{-1} Q^T W^{-1} Q)
        = 2 + \operatorname{tr}(A^{-1} R)

    (as :math:`c\, Q^T W^{-1} Q = A - R`), a sum of positive terms without cancellation, and
    since R is tridiagonal only the three central diagonals of :math:`A^{-1}` enter. Those
    come from the banded Cholesky factor by the backward recursion of Hutchinson and de Hoog
    (1985): with :math:`A = L D L^T`, :math:`A^{-1} = D^{-1} L^{-1} + (I - L^T) A^{-1}`, read on
    and above the diagonal. O(P n) work after an O(P n) factorisation, instead of an
    eigen-decomposition, O(P n^3). It equals :func:`nercc.coding.gcv.spectrum_df` of the same
    sites and lambda to rounding.

    Parameters
    ----------
    sites : ndarray of shape (P, n)
        P strictly ascending rows of knots.
    lam : float or ndarray of shape (P,)
        Smoothing parameter >= 0, shared or one per fit.
    weights : ndarray of shape (P, n), optional
        Positive weights; unit weights by default.

    Returns
    -------
    ndarray of shape (P,)
        n for lam = 0 (interpolation) and for n <= 2 (a constant or a line), falling towards 2
        as lam grows.
    """
    num_fits, n = sites.shape
    if n <= 2 or not np.any(lam):
        return np.full(num_fits, float(n))
    system = _Reinsch(sites, weights, lam)
    m = system.m
    factor, info = dpbtrf(system.banded.reshape(3, num_fits * m))
    if info != 0:  # not for ascending sites and lam >= 0: A is R plus a semi-definite term
        raise np.linalg.LinAlgError(f"smoothing_spline_df: banded Cholesky failed (info={info})")
    # Diagonals as rows (m, P), so that each step of the recursion reads contiguous memory.
    # A = U^T U with U[j, j] = u[2, j], U[j-1, j] = u[1, j], U[j-2, j] = u[0, j]; then
    # L[i+1, i] = U[i, i+1] / U[i, i], L[i+2, i] = U[i, i+2] / U[i, i] and D[i] = U[i, i]^2.
    u = factor.reshape(3, num_fits, m).transpose(0, 2, 1)
    pivot = u[2]
    inv_d = 1.0 / pivot**2
    l1 = np.zeros((m, num_fits))
    l2 = np.zeros((m, num_fits))
    l1[: m - 1] = u[1, 1:] / pivot[:-1]
    l2[: max(m - 2, 0)] = u[0, 2:] / pivot[: max(m - 2, 0)]
    # The band of A^-1, row i from rows i+1 and i+2: s0 = [i, i], s1 = [i, i+1], s2 = [i, i+2].
    s0, s1, s2 = (np.empty((m, num_fits)) for _ in range(3))
    below11 = below12 = below22 = np.zeros(num_fits)  # [i+1, i+1], [i+1, i+2], [i+2, i+2]
    for i in range(m - 1, -1, -1):
        a, b = l1[i], l2[i]
        s2[i] = -(a * below12 + b * below22)
        s1[i] = -(a * below11 + b * below12)
        s0[i] = inv_d[i] - (a * s1[i] + b * s2[i])
        below22, below12, below11 = below11, s1[i], s0[i]
    # tr(A^-1 G) = (m - tr(A^-1 R)) / c, so df = 2 + tr(A^-1 R) with R tridiagonal: no
    # cancellation of n - 2 against n when lambda is large.
    gaps = np.diff(sites, axis=1).T  # (n-1, P)
    r0 = (gaps[:-1] + gaps[1:]) / 3.0
    r1 = gaps[1:-1] / 6.0
    return 2.0 + np.sum(s0 * r0, axis=0) + 2.0 * np.sum(s1[:-1] * r1, axis=0)


class _Pieces:
    """Where each target lies and its weights: ``u(z) = a g_i + b g_{i+1} + c_lo gamma_i +
    c_hi gamma_{i+1}`` for the piece ``[t_i, t_{i+1}]`` holding z (the end pieces extend
    outwards). Beyond the end knots the spline is linear, ``u(z) = g_end + (z - t_end)
    u'(t_end)``: a and b stay, the gamma weights change."""

    def __init__(self, sites: np.ndarray, targets: np.ndarray) -> None:
        num_fits, n = sites.shape
        targets = np.broadcast_to(targets, (num_fits, np.shape(targets)[-1]))
        self.index = np.zeros(targets.shape, dtype=np.intp)
        if n == 1:  # a constant: no pieces
            return
        below = (targets[:, :, None] >= sites[:, None, :]).sum(axis=2)  # sites at or below z
        self.index = np.clip(below - 1, 0, n - 2)
        lo = np.take_along_axis(sites, self.index, axis=1)
        hi = np.take_along_axis(sites, self.index + 1, axis=1)
        h = hi - lo
        self.a = (hi - targets) / h
        self.b = (targets - lo) / h
        h2 = h**2 / 6.0
        left = targets < sites[:, :1]
        right = targets > sites[:, -1:]
        self.c_lo = np.where(left, 0.0, np.where(right, -self.a * h2, (self.a**3 - self.a) * h2))
        self.c_hi = np.where(left, -self.b * h2, np.where(right, 0.0, (self.b**3 - self.b) * h2))


class _Reinsch:
    """The banded system ``A = R + c Q^T W^-1 Q`` of P fits, stacked block-diagonally.

    Column c of Q (interior knot c+1) has ``q_top`` at row c, ``q_mid`` at row c+1 and ``q_bot``
    at row c+2; ``scale`` is c = lam * sum(w) per fit. Unit weights when ``weights`` is None.
    """

    def __init__(self, sites: np.ndarray, weights: np.ndarray | None, lam: float) -> None:
        num_fits, n = sites.shape
        if weights is None:
            weights = np.ones_like(sites)
        self.m = m = n - 2
        h = np.diff(sites, axis=1)  # (P, n-1)
        self.q_top = 1.0 / h[:, :-1]
        self.q_bot = 1.0 / h[:, 1:]
        self.q_mid = -self.q_top - self.q_bot
        self.scale = lam * weights.sum(axis=1)
        self.inv_w = inv_w = 1.0 / weights
        q_top, q_mid, q_bot, scale = self.q_top, self.q_mid, self.q_bot, self.scale[:, None]
        diag = (h[:, :-1] + h[:, 1:]) / 3.0 + scale * (
            q_top**2 * inv_w[:, :-2] + q_mid**2 * inv_w[:, 1:-1] + q_bot**2 * inv_w[:, 2:]
        )
        upper1 = h[:, 1:-1] / 6.0 + scale * (
            q_mid[:, :-1] * q_top[:, 1:] * inv_w[:, 1:-2]
            + q_bot[:, :-1] * q_mid[:, 1:] * inv_w[:, 2:-1]
        )
        upper2 = scale * q_bot[:, :-2] * q_top[:, 2:] * inv_w[:, 2:-2]
        # Upper banded storage of the stack, ab[2 - d, j] = A[j - d, j]. The entries that would
        # couple neighbouring blocks stay zero: the P blocks are solved independently.
        self.banded = np.zeros((3, num_fits, m))
        self.banded[2] = diag
        self.banded[1, :, 1:] = upper1
        self.banded[0, :, 2:] = upper2

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """``A^-1 rhs`` for rhs of shape (P, m, R): one banded Cholesky solve for all fits."""
        num_fits, m, columns = rhs.shape
        flat = np.asfortranarray(rhs.reshape(num_fits * m, columns))
        ab = self.banded.reshape(3, num_fits * m)
        return solveh_banded(ab, flat, check_finite=False).reshape(num_fits, m, columns)

    def apply_q(self, z: np.ndarray) -> np.ndarray:
        """``Q z`` for z of shape (P, m, R), through the three diagonals: (P, n, R)."""
        num_fits, m, columns = z.shape
        out = np.zeros((num_fits, m + 2, columns))
        out[:, :-2] += self.q_top[..., None] * z
        out[:, 1:-1] += self.q_mid[..., None] * z
        out[:, 2:] += self.q_bot[..., None] * z
        return out


def _curvature_correction(system: _Reinsch, pieces: _Pieces) -> np.ndarray:
    """Return ``C A^-1 Q^T`` of shape (P, t, n) for t targets, where the spline at the targets
    is ``B_g y - C A^-1 Q^T y``.

    With ``G = I - c W^-1 Q A^-1 Q^T`` the knot values and ``A^-1 Q^T`` the interior second
    derivatives, ``u(z) = B_g G y + B_gamma A^-1 Q^T y = B_g y - C A^-1 Q^T y`` for
    ``C = c B_g W^-1 Q - B_gamma``. Solving ``A Z = C^T`` takes one right-hand side per target
    rather than one per site, and ``C A^-1 Q^T = (Q Z)^T`` since ``A`` is symmetric.
    """
    i, m = pieces.index, system.m
    num_fits, num_targets = i.shape

    # C has, in row z (piece i), entries in interior columns i-2 .. i+1. Pad the columns by 2 on
    # each side so that the out-of-range ones fall into the padding and are cut away.
    def at(values: np.ndarray, column: np.ndarray) -> np.ndarray:
        padded = np.pad(values, ((0, 0), (2, 2)))
        return np.take_along_axis(padded, column + 2, axis=1)

    scale = system.scale[:, None]
    wa = scale * pieces.a * np.take_along_axis(system.inv_w, i, axis=1)
    wb = scale * pieces.b * np.take_along_axis(system.inv_w, i + 1, axis=1)
    q_top, q_mid, q_bot = system.q_top, system.q_mid, system.q_bot
    band = np.stack(
        [
            wa * at(q_bot, i - 2),
            wa * at(q_mid, i - 1) + wb * at(q_bot, i - 1) - pieces.c_lo,
            wa * at(q_top, i) + wb * at(q_mid, i) - pieces.c_hi,
            wb * at(q_top, i + 1),
        ],
        axis=2,
    )  # (P, t, 4) for the columns i-2, i-1, i, i+1
    c_padded = np.zeros((num_fits, num_targets, m + 4))
    np.put_along_axis(c_padded, i[..., None] + np.arange(4), band, axis=2)
    z = system.solve(c_padded[:, :, 2 : m + 2].transpose(0, 2, 1))  # (P, m, t)
    return system.apply_q(z).transpose(0, 2, 1)
