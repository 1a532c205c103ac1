r"""Effective degrees of freedom and cross-validated smoothing parameters.

The smoother of :mod:`nercc.coding.splines` with unit weights fits, for sites
:math:`t_1 < \dots < t_n`, the objective
:math:`\frac1n \sum_i (y_i - u(t_i))^2 + \lambda \int u''(t)^2\,dt`; its fitted values at the sites
are :math:`\hat y = A(\lambda)\, y` with the *hat matrix*

.. math::

    A(\lambda) = (I + n\lambda K)^{-1}, \qquad K = Q R^{-1} Q^T ,

(``Q``, ``R`` of ``method.md``; the factor n comes from the mean-normalised data term), which is
``smoothing_spline_matrix(sites, sites, lam)``. K is symmetric positive semidefinite of rank
n - 2: its null space holds the constants and the lines (:math:`Q^T 1 = Q^T t = 0`). With
:math:`K = W \operatorname{diag}(d) W^T` over its n - 2 positive eigenvalues (W orthonormal,
n x (n-2)),

.. math::

    I - A(\lambda) = W \operatorname{diag}(r) W^T, \quad
    r_i = \frac{n\lambda d_i}{1 + n\lambda d_i}, \qquad
    \mathrm{df}(\lambda) = \operatorname{tr} A(\lambda) = 2 + \sum_{i=1}^{n-2}
    \frac{1}{1 + n\lambda d_i} ,

so that one decomposition per site set makes every lambda cost O(n) (df) or O(n m) (fits of m
value columns). ``df`` falls monotonically from n (lam = 0, interpolation) to 2 (lam -> inf, the
least-squares line).

The decomposition. With :math:`S = \operatorname{diag}(R)^{-1/2}` and the Cholesky factor
:math:`S R S = L L^T` (well conditioned: R is diagonally dominant),
:math:`K = B B^T` for :math:`B = Q S L^{-T}`, so the singular value decomposition
:math:`B = W \Sigma V^T` gives :math:`d = \sigma^2` and W. Singular values carry absolute errors
of about eps * sigma_max, so d is relatively accurate to about eps * sqrt(d_max / d_min) (1e-8
for 300 Chebyshev points), where an eigen-decomposition of K itself is only accurate to
eps * d_max / d_min (measured at 300 Chebyshev points against the trace of the
explicit smoother: df errors up to 5e-5 that way, below 2e-9 this way).

Generalised cross-validation, with the m value columns stacked as Y (n x m) and
:math:`e_i = \|(W^T Y)_i\|^2`:

.. math::

    \mathrm{GCV}(\lambda) = \frac{\frac1n \|(I - A(\lambda)) Y\|_F^2}
    {(1 - \mathrm{df}(\lambda)/n)^2}
    = n \frac{\sum_i r_i^2 e_i}{(\sum_i r_i)^2} .

The last form is unchanged when all r_i are scaled alike; the code uses
:math:`\rho_i = d_i / (1 + n\lambda d_i) = r_i / (n\lambda)` while :math:`n\lambda d_{max} < 1`
and r_i beyond, so that no term under- or overflows, and lam = 0 (where GCV is 0/0) takes the
limit lam -> 0+, :math:`n \sum_i d_i^2 e_i / (\sum_i d_i)^2`: interpolation gets a finite score.

Leave-one-out cross-validation has the same closed form with the diagonal of A:

.. math::

    \mathrm{CV}(\lambda) = \frac1n \sum_{i=1}^n
    \frac{\|((I - A(\lambda)) Y)_i\|^2}{(1 - A(\lambda)_{ii})^2} ,

which equals refitting without point i and predicting at :math:`t_i`, provided the refit keeps the
*unnormalised* penalty :math:`n\lambda` (in this module's convention, the refit on n - 1 sites
uses :math:`\lambda n / (n - 1)`).

Sites here have at least three points where lambda matters (fewer: a constant or a line, df = n
whatever lambda).
"""

from __future__ import annotations

import math

import numpy as np

from nercc.coding.splines import lam_bounds

__all__ = [
    "DEFAULT_LAM_GRID",
    "argmin_rows",
    "choose_lam_gcv",
    "effective_df",
    "gcv_scores",
    "lam_for_df",
    "loo_scores",
    "spectrum",
    "spectrum_df",
    "spectrum_energy",
    "spectrum_gcv",
    "spectrum_lam_for_df",
]

#: The default lambdas GCV chooses from: 0 and 10^-16 .. 10^2, four per decade (74 values).
#:
#: Why this range (sites in [-1, 1], the decoder's betas, n up to a few hundred): the df of the
#: smoother depends on lambda almost independently of n once n >> df, because the data term is
#: a mean. Measured for Chebyshev betas (uniform ones alike within 10%):
#:
#: ====== ======== ======== ======== ======= ====== ====== ====== ======
#: n      1e-16    1e-12    1e-8     1e-6    1e-4   1e-2   1      1e2
#: ====== ======== ======== ======== ======= ====== ====== ====== ======
#: 20     20       20       19.6     15.5    6.88   2.97   2.024  2.0002
#: 100    100      98.3     55.9     19.4    6.91   2.96   2.024  2.0002
#: 300    299.3    272.5    58.8     19.4    6.91   2.96   2.024  2.0002
#: ====== ======== ======== ======== ======= ====== ====== ====== ======
#:
#: So 10^-16 is within a fraction of one df of interpolation for n <= 300 (0 covers the rest)
#: and 10^2 is the least-squares line to 2e-4 df; four values per decade step df by at most 15%
#: (measured for n = 10 .. 300, both layouts).
#: Evaluating the grid costs O(n) per lambda and pattern after the decomposition, so it can be
#: fine. Override it with ``lams=`` (or ``NeRCC(lam_grid=...)``) for other site scales: lambda
#: has the units of length^3.
DEFAULT_LAM_GRID = np.array(
    [0.0] + [float(f"1e{q // 4}") if q % 4 == 0 else 10.0 ** (q / 4) for q in range(-64, 9)]
)  # whole decades as their decimal literals (1e-05, not 9.999999999999999e-06)
DEFAULT_LAM_GRID.flags.writeable = False

_BISECTIONS = 64  # halvings of the log-lambda bracket in lam_for_df: below double precision


# -- public functions ----------------------------------------------------------------------------
def effective_df(sites: object, lam: object) -> np.ndarray | float:
    r"""Return the effective degrees of freedom of the smoothing spline, ``tr A(lam)``.

    .. math::

        \mathrm{df}(\lambda) = \operatorname{tr} (I + n\lambda K)^{-1}
        = 2 + \sum_{i=1}^{n-2} \frac{1}{1 + n\lambda d_i}

    over the positive eigenvalues :math:`d_i` of :math:`K = Q R^{-1} Q^T` (see the module's
    docstring), with the data term :math:`\frac1n \sum_i (y_i - u(t_i))^2` of
    :func:`nercc.coding.smoothing_spline_matrix`: ``df(lam)`` is the trace of
    ``smoothing_spline_matrix(sites, sites, lam)``. It falls monotonically from n (``lam = 0``) to
    2 (``lam = inf``); fewer than three sites give n for every lambda. One O(n^3) decomposition
    per row of sites serves all lambdas.

    Parameters
    ----------
    sites : array_like of shape (n,) or (P, n)
        Strictly ascending, finite sites (each row of a 2-D array is one site set).
    lam : float or array_like of any shape
        Smoothing parameters >= 0; ``inf`` is allowed (df = 2).

    Returns
    -------
    float or ndarray of shape ``sites.shape[:-1] + np.shape(lam)``
    """
    rows, one = _check_sites("sites", sites, minimum=1)
    lams = _check_lams("lam", lam, allow_inf=True)
    flat = lams.reshape(-1)
    n = rows.shape[1]
    if n < 3:
        result = np.full((rows.shape[0], flat.size), float(n))
    else:
        d, _ = spectrum(rows, vectors=False)
        result = spectrum_df(d, np.broadcast_to(flat, (rows.shape[0], flat.size)))
    return _shaped(result, one, lams.shape)


def lam_for_df(sites: object, df: object) -> np.ndarray | float:
    r"""Return the smoothing parameter whose smoother has ``df`` effective degrees of freedom.

    Solves :math:`\mathrm{df}(\lambda) = 2 + \sum_i 1/(1 + n\lambda d_i) = \mathrm{df}` (see
    :func:`effective_df`) by bisection in :math:`\log \lambda`, vectorised over rows and targets,
    inside the bracket :math:`n\lambda \in [(\frac{n-2}{\mathrm{df}-2} - 1)/d_{max},
    (\frac{n-2}{\mathrm{df}-2} - 1)/d_{min}]`, to double precision in lambda. ``df = n`` gives 0
    (interpolation).

    ``df = 2`` (the least-squares line) is only reached as lambda -> inf and is refused, like
    anything below it. Targets so close to 2 that their lambda would pass
    :func:`nercc.coding.lam_bound` (``df - 2`` below about 1e-130 for sites in [-1, 1]) get the
    bound itself: there the spline is the line to rounding.

    Parameters
    ----------
    sites : array_like of shape (n,) or (P, n)
        Strictly ascending, finite sites, n >= 3 (fewer have df = n whatever lambda).
    df : float or array_like of any shape
        Targets in (2, n].

    Returns
    -------
    float or ndarray of shape ``sites.shape[:-1] + np.shape(df)``
        Lambdas >= 0; ``effective_df(sites, lam_for_df(sites, df))`` equals ``df``.
    """
    rows, one = _check_sites("sites", sites, minimum=3)
    n = rows.shape[1]
    targets = _as_float_array("df", df)
    bad = ~(np.isfinite(targets) & (targets > 2) & (targets <= n))
    if np.any(bad):
        raise ValueError(
            f"df must be finite numbers in (2, n={n}] (df = 2 is the least-squares line, "
            f"lambda = inf; df = n interpolates), got {_show(targets[bad].reshape(-1)[0])}"
        )
    flat = np.broadcast_to(targets.reshape(-1), (rows.shape[0], targets.size))
    d, _ = spectrum(rows, vectors=False)
    result = spectrum_lam_for_df(d, flat, lam_bounds(rows)[:, None])
    return _shaped(result, one, targets.shape)


def gcv_scores(sites: object, values: object, lams: object = None) -> np.ndarray:
    r"""Return the generalised cross-validation scores of each lambda of a grid.

    .. math::

        \mathrm{GCV}(\lambda) = \frac{\frac1n \|(I - A(\lambda)) Y\|_F^2}
        {(1 - \mathrm{df}(\lambda)/n)^2}

    with the m value columns of one site set stacked as Y (n x m) and the hat matrix
    :math:`A(\lambda) = (I + n\lambda Q R^{-1} Q^T)^{-1}` of
    :func:`nercc.coding.smoothing_spline_matrix` (targets = sites). At ``lam = 0`` both parts
    vanish; the score there is the limit lam -> 0+, :math:`n \sum_i d_i^2 e_i / (\sum_i d_i)^2`
    (module docstring). Cost: one O(n^3) decomposition per site set, then O(n m + n L).

    Parameters
    ----------
    sites : array_like of shape (n,) or (P, n)
        Strictly ascending, finite sites, n >= 3.
    values : array_like of shape (n, ...) or (P, n, ...)
        The values at the sites (trailing axes are the m columns, flattened).
    lams : array_like of shape (L,), optional
        Finite lambdas >= 0; :data:`DEFAULT_LAM_GRID` by default.

    Returns
    -------
    ndarray of shape (L,) or (P, L)
    """
    rows, one, columns, grid = _check_fit("sites", sites, values, lams)
    result = _gcv_of(rows, columns, grid)
    return result[0] if one else result


def choose_lam_gcv(sites: object, values: object, lams: object = None) -> np.ndarray | float:
    """Return the lambda of the grid with the smallest :func:`gcv_scores` (the smallest such
    lambda on ties).

    Parameters
    ----------
    sites : array_like of shape (n,) or (P, n)
        Strictly ascending, finite sites, n >= 3.
    values : array_like of shape (n, ...) or (P, n, ...)
    lams : array_like of shape (L,), optional
        Finite lambdas >= 0; :data:`DEFAULT_LAM_GRID` by default.

    Returns
    -------
    float or ndarray of shape (P,)
    """
    rows, one, columns, grid = _check_fit("sites", sites, values, lams)
    grid = np.sort(grid, kind="stable")
    chosen = grid[argmin_rows(_gcv_of(rows, columns, grid))]
    return float(chosen[0]) if one else chosen


def _gcv_of(rows: np.ndarray, columns: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """GCV scores (P, L) of checked site sets (P, n), their values (P, n, m) and a grid (L,)."""
    d, vectors = spectrum(rows, vectors=True)
    grids = np.broadcast_to(grid, (rows.shape[0], grid.size))
    return spectrum_gcv(d, spectrum_energy(vectors, columns), grids)


def loo_scores(sites: object, values: object, lams: object = None) -> np.ndarray:
    r"""Return the leave-one-out cross-validation scores of each lambda, in closed form.

    .. math::

        \mathrm{CV}(\lambda) = \frac1n \sum_{i=1}^n
        \frac{\|((I - A(\lambda)) Y)_i\|^2}{(1 - A(\lambda)_{ii})^2}
        = \frac1n \sum_{i=1}^n \|y_i - \hat u^{(-i)}(t_i)\|^2 ,

    where :math:`\hat u^{(-i)}` is the spline fitted without site i under the same *unnormalised*
    penalty :math:`n\lambda \int u''^2` (our ``lam`` times n / (n - 1) on the n - 1 remaining
    sites). ``lam = 0`` takes the limit lam -> 0+ (leave-one-out of the interpolating spline).
    Cost O(n^2 (m + L)) per site set after the decomposition: a reference, not a fast path.

    Parameters
    ----------
    sites : array_like of shape (n,) or (P, n)
        Strictly ascending, finite sites, n >= 3.
    values : array_like of shape (n, ...) or (P, n, ...)
    lams : array_like of shape (L,), optional
        Finite lambdas >= 0; :data:`DEFAULT_LAM_GRID` by default.

    Returns
    -------
    ndarray of shape (L,) or (P, L)
    """
    rows, one, columns, grid = _check_fit("sites", sites, values, lams)
    d, vectors = spectrum(rows, vectors=True)
    n = rows.shape[1]
    weights = _shrinkage(d, np.broadcast_to(grid, (rows.shape[0], grid.size)))  # (P, L, k)
    coefficients = np.einsum("pnk,pnm->pkm", vectors, columns)
    residuals = np.einsum("pnk,plk,pkm->plnm", vectors, weights, coefficients)
    diagonal = np.einsum("pnk,plk->pln", vectors**2, weights)  # of I - A, scaled alike
    result = np.sum((residuals / diagonal[..., None]) ** 2, axis=(2, 3)) / n
    return result[0] if one else result


# -- spectral helpers (unchecked; NeRCC decodes with these) ------------------------------------
# Every function below takes checked arguments (its callers check once): rows of strictly
# ascending finite sites with n >= 3, and eigenvalues from :func:`spectrum`. One decomposition per
# site set makes every lambda cost O(n) (df, GCV) or O(n m) (fits of m value columns).
def spectrum(sites: np.ndarray, vectors: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Return the spectrum of the smoother's penalty on P rows of sites.

    Positive eigenvalues of ``K = Q R^-1 Q^T``, through the SVD of ``B = Q S L^-T``
    (``S R S = L L^T``, ``S = diag(R)^-1/2``): ``K = B B^T`` (see the module docstring).

    Parameters
    ----------
    sites : ndarray of shape (P, n)
        Strictly ascending, finite rows, n >= 3 (unchecked).
    vectors : bool
        Whether to return the eigenvectors too.

    Returns
    -------
    d : ndarray of shape (P, n-2)
        The positive eigenvalues.
    w : ndarray of shape (P, n, n-2) or None
        Orthonormal eigenvectors with ``K = W diag(d) W^T``, or None without ``vectors``.
    """
    num_rows, n = sites.shape
    k = n - 2
    h = np.diff(sites, axis=1)
    inv_lo, inv_hi = 1.0 / h[:, :-1], 1.0 / h[:, 1:]
    scale = 1.0 / np.sqrt((h[:, :-1] + h[:, 1:]) / 3.0)  # diag(R)^-1/2
    j = np.arange(k)
    sqt = np.zeros((num_rows, k, n))  # S Q^T: row j = interior knot j + 1
    sqt[:, j, j] = scale * inv_lo
    sqt[:, j, j + 1] = -scale * (inv_lo + inv_hi)
    sqt[:, j, j + 2] = scale * inv_hi
    srs = np.zeros((num_rows, k, k))
    srs[:, j, j] = 1.0
    off = scale[:, :-1] * scale[:, 1:] * h[:, 1:-1] / 6.0
    srs[:, j[:-1], j[:-1] + 1] = off
    srs[:, j[:-1] + 1, j[:-1]] = off
    b_t = np.linalg.solve(np.linalg.cholesky(srs), sqt)  # B^T = L^-1 S Q^T, (P, k, n)
    if not vectors:
        return np.linalg.svd(b_t, compute_uv=False) ** 2, None
    w, sigma, _ = np.linalg.svd(b_t.transpose(0, 2, 1), full_matrices=False)
    return sigma**2, w


def spectrum_df(d: np.ndarray, lams: np.ndarray) -> np.ndarray:
    """Return the effective degrees of freedom at lambdas, from eigenvalues of :func:`spectrum`.

    Parameters
    ----------
    d : ndarray of shape (P, k)
        Eigenvalues of P site sets of n = k + 2 sites.
    lams : ndarray of shape (P, L)
        Lambdas >= 0 per site set (inf allowed: df 2).

    Returns
    -------
    ndarray of shape (P, L)
        ``2 + sum_i 1 / (1 + n lam d_i)``.
    """
    n = d.shape[1] + 2
    with np.errstate(over="ignore", invalid="ignore"):
        x = (n * lams)[..., None] * d[:, None, :]
    return 2.0 + np.sum(1.0 / (1.0 + x), axis=2)


def spectrum_lam_for_df(
    d: np.ndarray, targets: np.ndarray, bound: np.ndarray | float
) -> np.ndarray:
    """Return the lambdas at which the smoother has the target degrees of freedom (bisection in
    log lambda, to below double precision).

    Parameters
    ----------
    d : ndarray of shape (P, k)
        Eigenvalues of P site sets of n = k + 2 sites (:func:`spectrum`).
    targets : ndarray of shape (P, D)
        Degrees of freedom in (2, inf); those >= n give 0 (interpolation).
    bound : ndarray of shape (P, 1), or float
        The largest lambda allowed per site set (:func:`nercc.coding.splines.lam_bounds`);
        lambdas past it are capped at it.

    Returns
    -------
    ndarray of shape (P, D)
    """
    n = d.shape[1] + 2
    excess = targets - 2.0  # the df above the line's, in (0, n - 2] where lambda > 0 matters
    interpolate = excess >= n - 2
    excess = np.where(interpolate, (n - 2) / 2.0, excess)  # placeholder, result replaced below
    ratio = (n - 2) / excess - 1.0
    d_min = np.min(d, axis=1)[:, None]
    d_max = np.max(d, axis=1)[:, None]
    cap = np.log(n * np.broadcast_to(bound, targets.shape).astype(np.float64))
    with np.errstate(divide="ignore", over="ignore"):
        lo = np.log(ratio / d_max)
        hi = np.minimum(np.minimum(np.log(ratio / d_min), cap), 700.0)
    lo = np.minimum(lo, hi)

    def excess_at(log_x: np.ndarray) -> np.ndarray:
        return np.sum(1.0 / (1.0 + np.exp(log_x)[..., None] * d[:, None, :]), axis=2)

    capped = excess_at(hi) > excess  # even the cap leaves more df than asked: take the cap
    for _ in range(_BISECTIONS):
        mid = 0.5 * (lo + hi)
        above = excess_at(mid) > excess  # df(mid) too large: lambda must grow
        lo = np.where(above, mid, lo)
        hi = np.where(above, hi, mid)
    log_x = np.where(capped, hi, 0.5 * (lo + hi))
    lams = np.exp(log_x) / n
    lams = np.where(capped, np.broadcast_to(bound, targets.shape), lams)
    return np.where(interpolate, 0.0, lams)


def _shrinkage(d: np.ndarray, lams: np.ndarray) -> np.ndarray:
    """Weights proportional, for each (row, lambda), to ``r_i = n lam d_i / (1 + n lam d_i)``, the
    eigenvalues of ``I - A``: ``d_i / (1 + n lam d_i)`` while ``n lam d_max < 1`` (the limit d_i
    at lam = 0), ``d_i / (1 / (n lam) + d_i) = r_i`` beyond; in both, the denominator neither
    under- nor overflows. (P, L, k) for d (P, k), lams (P, L)."""
    n = d.shape[1] + 2
    x = n * lams  # (P, L)
    small = x * np.max(d, axis=1)[:, None] < 1.0
    with np.errstate(divide="ignore"):
        a = np.where(small, 1.0, 1.0 / x)
    b = np.where(small, x, 1.0)
    return d[:, None, :] / (a[..., None] + b[..., None] * d[:, None, :])


def spectrum_energy(vectors: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Return the energy of value columns along each eigenvector, ``e_i = ||(W^T Y)_i||^2``.

    Parameters
    ----------
    vectors : ndarray of shape (P, n, k)
        Eigenvectors W of :func:`spectrum`.
    columns : ndarray of shape (P, n, m)
        Values Y at the sites, m columns per site set.

    Returns
    -------
    ndarray of shape (P, k)
    """
    return np.sum(np.matmul(vectors.transpose(0, 2, 1), columns) ** 2, axis=2)


def spectrum_gcv(d: np.ndarray, energy: np.ndarray, lams: np.ndarray) -> np.ndarray:
    """Return GCV scores ``n sum_i r_i^2 e_i / (sum_i r_i)^2`` at lambdas (module docstring;
    lam = 0 takes the limit lam -> 0+).

    Parameters
    ----------
    d : ndarray of shape (P, k)
        Eigenvalues of :func:`spectrum`.
    energy : ndarray of shape (P, k)
        Energies of :func:`spectrum_energy`.
    lams : ndarray of shape (P, L)
        Finite lambdas >= 0.

    Returns
    -------
    ndarray of shape (P, L)
    """
    n = d.shape[1] + 2
    weights = _shrinkage(d, lams)
    numerator = np.matmul(weights**2, energy[..., None])[..., 0]
    return n * numerator / np.sum(weights, axis=2) ** 2


def argmin_rows(scores: np.ndarray) -> np.ndarray:
    """Return the index of the smallest score per row (the first on ties; NaN never wins unless
    all are).

    Parameters
    ----------
    scores : ndarray of shape (P, L)

    Returns
    -------
    ndarray of int, shape (P,)
    """
    return np.argmin(np.where(np.isnan(scores), np.inf, scores), axis=1)


# -- checks --------------------------------------------------------------------------------------
def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _as_float_array(name: str, value: object) -> np.ndarray:
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numbers, got {_show(value)}") from None


def _check_sites(name: str, value: object, minimum: int) -> tuple[np.ndarray, bool]:
    """Rows (P, n) of strictly ascending finite sites and whether one 1-D set was given."""
    sites = _as_float_array(name, value)
    if sites.ndim not in (1, 2) or sites.shape[-1] < minimum or sites.size == 0:
        raise ValueError(
            f"{name} must have shape (n,) or (P, n) with n >= {minimum}, got shape {sites.shape}"
        )
    if not np.all(np.isfinite(sites)):
        raise ValueError(f"{name} must be finite, got {_show(sites)}")
    if sites.shape[-1] > 1 and not np.all(np.diff(sites, axis=-1) > 0):
        raise ValueError(
            f"{name} must be strictly ascending (no duplicates) along its last axis, "
            f"got {_show(sites)}"
        )
    return np.atleast_2d(sites), sites.ndim == 1


def _check_lams(name: str, value: object, allow_inf: bool) -> np.ndarray:
    lams = _as_float_array(name, value)
    ok = (lams >= 0) & (np.isfinite(lams) | (allow_inf & (lams == math.inf)))
    if not np.all(ok):
        kind = "numbers >= 0 (inf allowed)" if allow_inf else "finite numbers >= 0"
        raise ValueError(f"{name} must be {kind}, got {_show(lams[~ok].reshape(-1)[0])}")
    return lams


def _check_fit(
    name: str, sites: object, values: object, lams: object
) -> tuple[np.ndarray, bool, np.ndarray, np.ndarray]:
    """Checked rows (P, n), whether 1-D, values as (P, n, m) and the grid (L,)."""
    rows, one = _check_sites(name, sites, minimum=3)
    data = _as_float_array("values", values)
    lead = (rows.shape[1],) if one else rows.shape
    if data.shape[: len(lead)] != lead:
        raise ValueError(
            f"values must have shape {lead + ('...',)} to match sites, got shape {data.shape}"
        )
    if lams is None:
        grid = np.asarray(DEFAULT_LAM_GRID)
    else:
        grid = _check_lams("lams", lams, allow_inf=False)
        if grid.ndim != 1 or grid.size == 0:
            raise ValueError(f"lams must be a non-empty 1-D array, got shape {grid.shape}")
    columns = data.reshape(rows.shape[0], rows.shape[1], -1)
    if columns.shape[2] == 0:
        raise ValueError(f"values must hold at least one column, got shape {data.shape}")
    return rows, one, columns, grid


def _shaped(result: np.ndarray, one: bool, shape: tuple[int, ...]) -> np.ndarray | float:
    """(P, size) results as ``(P,) + shape`` (without P for one site set; a float for a scalar)."""
    out = result.reshape((result.shape[0], *shape))
    if one:
        out = out[0]
        return float(out) if out.ndim == 0 else out
    return out
