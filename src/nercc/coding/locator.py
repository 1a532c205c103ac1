r"""BACC with an error-locating decoder: the rational Welch–Berlekamp idea of ApproxIFER.

ApproxIFER (Soleymani et al., AAAI 2022) locates adversarial answers of a Berrut code with a
Welch–Berlekamp decoder for rational functions in barycentric form. Where f is affine, the honest
answers of BACC are exactly a rational function of the worker's point,
:math:`y(z) = q(z) / p_\alpha(z)` with :math:`\deg q \le K - 1` and :math:`p_\alpha` Berrut's
denominator over the alphas (:math:`g_\alpha(z) = \sum_k (-1)^k / (z - \alpha_k) =
p_\alpha(z) / \prod_k (z - \alpha_k)`). With :math:`E + 1` auxiliary nodes :math:`t_j`
(Chebyshev points of the first kind) and :math:`g_t(z) = \sum_j (-1)^j / (z - t_j)`, the decoder
seeks an error locator and a numerator

.. math::

    \Lambda(z) = \frac{\sum_j b_j (-1)^j / (z - t_j)}{g_t(z)}, \qquad
    \mathcal N(z) = \frac{\sum_k a_k w_k / (z - \alpha_k) + \sum_j c_j v_j / (z - t_j)}
    {\sum_k w_k / (z - \alpha_k) + \sum_j v_j / (z - t_j)},

:math:`w_k = (-1)^k g_t(\alpha_k)`, :math:`v_j = (-1)^j g_\alpha(t_j)` (the denominator of
:math:`\mathcal N` is :math:`g_\alpha g_t`: ApproxIFER's G), such that
:math:`\mathcal N(z_i) = y_i \Lambda(z_i)` at every answer :math:`i`. :math:`\Lambda` is Berrut's
interpolant of the values :math:`b_j` at the nodes :math:`t_j` (a numerator of degree E over
:math:`p_t`), :math:`\mathcal N` the barycentric interpolant of the values :math:`a, c` on both
node sets (a numerator of degree :math:`K + E` over :math:`p_\alpha p_t`). Multiplied out, the
conditions are those of Welch–Berlekamp, :math:`R(z_i) = y_i p_\alpha(z_i) B(z_i)`: with at most
E wrong answers among :math:`m \ge K + 2E + 1`, every solution has :math:`B` vanishing at the wrong
answers, so :math:`\Lambda(z_i) = 0` exactly there.

This scheme solves the conditions jointly over the M output coordinates (one locator, M
numerators) in least squares: with :math:`A_{\mathcal N}` (m, K + E + 1) the numerator's columns,
:math:`L` (m, E + 1) the locator's and :math:`Y_c = \mathrm{diag}(y_{\cdot c})`,

.. math::

    \min_{\|b\|_2 = 1} \sum_c \min_{a_c} \|A_{\mathcal N} a_c - Y_c L b\|_2^2
    = \min_{\|b\|_2 = 1} b^\top \Big(\sum_c L^\top Y_c (I - QQ^\top) Y_c L\Big) b,

:math:`Q` an orthonormal basis of the columns of :math:`A_{\mathcal N}`: b is the eigenvector of
the smallest eigenvalue of an (E + 1) x (E + 1) matrix. (ApproxIFER solves one system per
coordinate and votes; on the logits of LeNet5, joint solving found more adversaries when E is as
large as the answers allow.) The answers are scaled by their largest magnitude first, which
leaves b unchanged.

The number of wrong answers is unknown: E is the most the answers can locate,
:math:`E = \lfloor (m - K - 1) / 2 \rfloor` (so that :math:`m \ge K + 2E + 1`; at most the
robust schemes' cap :math:`\lfloor (m - K)/2 \rfloor`), and the E answers of smallest
:math:`|\Lambda(z_i)|` are only candidates. A candidate is flagged when it is far from what the
others decode, in two rounds: (1) Berrut's interpolant of the non-candidates, evaluated at each
candidate, misses it by more than ``screen`` times the median leave-one-out residual of the
non-candidates (each predicted by Berrut's interpolant of the others); (2) the candidates not
flagged return, and each flagged one is checked again in the same way against the answers not
flagged. The estimate is BACC's plain decoding of ``available & ~flagged``.

What it assumes: f is close to affine along the code (the honest answers nearly a rational
function of degree K - 1 over Berrut's denominator), the wrong answers are at most E, and their
errors are large against what Berrut's interpolant misses of an honest answer. Patterns with
fewer than K + 3 answers (E < 1) are decoded plainly. Answers holding a NaN or an infinity are
flagged first (unless every answer of the pattern does), and the rest located.

Cost: per pattern one QR of (m, K + E + 1), M products with it, one symmetric eigenproblem of
size E + 1 and a few Berrut evaluations; patterns of one answer count are handled together.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from nercc.coding import arrays
from nercc.coding.bacc import BACC
from nercc.coding.berrut import barycentric_matrices, berrut_matrices
from nercc.coding.params import Tunable
from nercc.coding.screening import ScreeningScheme, check_screen, screen_tunable

__all__ = ["LOCATOR_SCREEN", "LocatingBACC", "auxiliary_nodes"]

#: The robust scale never falls below this fraction of the median norm of the answers.
_SCALE_FLOOR = 1e-9

LOCATOR_SCREEN = screen_tunable(
    "the confirmation cut: a candidate the error locator proposes is dropped when it is "
    "farther than screen x the median leave-one-out Berrut residual from what the others decode"
)


def _signs(count: int) -> np.ndarray:
    return np.where(np.arange(count) % 2 == 0, 1.0, -1.0)


def auxiliary_nodes(count: int, alphas: np.ndarray) -> np.ndarray:
    """Return ``count`` ascending auxiliary nodes in (-1, 1) apart from every alpha.

    Chebyshev points of the first kind, :math:`\\cos((2j + 1)\\pi / (2\\,\\mathrm{count}))`; where
    one of them would fall on an alpha (within 1e-6), the angles are shifted by a fraction of a
    step until none does.

    Parameters
    ----------
    count : int
        At least 1.
    alphas : ndarray of shape (K,)

    Returns
    -------
    ndarray of shape (count,)
    """
    j = np.arange(count)
    for shift in np.linspace(0.0, 0.5, 11):
        nodes = np.sort(np.cos((2 * j + 1 + shift) * np.pi / (2 * count)))
        if np.min(np.abs(nodes[:, None] - alphas[None])) > 1e-6:
            return nodes
    raise ValueError(f"no auxiliary nodes of count {count} apart from the alphas")  # unreachable


def _locator_columns(
    alphas: np.ndarray, sites: np.ndarray, errors: int
) -> tuple[np.ndarray, np.ndarray]:
    """The numerator's columns (p, m, K + E + 1) and the locator's (p, m, E + 1) at ``sites``."""
    nodes = auxiliary_nodes(errors + 1, alphas)
    sa, st = _signs(len(alphas)), _signs(errors + 1)
    g_t_at_alphas = (st / (alphas[:, None] - nodes[None])).sum(axis=1)
    g_a_at_nodes = (sa / (nodes[:, None] - alphas[None])).sum(axis=1)
    both = np.concatenate([alphas, nodes])
    weights = np.concatenate([sa * g_t_at_alphas, st * g_a_at_nodes])
    order = np.argsort(both)
    count = sites.shape[0]
    numerator = barycentric_matrices(
        np.broadcast_to(both[order], (count, len(both))), sites, weights[order]
    )
    locator = berrut_matrices(np.broadcast_to(nodes, (count, errors + 1)), sites)
    return numerator, locator


def _locate(alphas: np.ndarray, sites: np.ndarray, answers: np.ndarray, errors: int) -> np.ndarray:
    """|Lambda| (p, m) at the answers (p, m, M) of sites (p, m), located for ``errors``."""
    numerator, locator = _locator_columns(alphas, sites, errors)
    top = np.max(np.abs(answers), axis=(1, 2), keepdims=True)
    scaled = answers / np.where(top > 0, top, 1.0)
    basis, _ = np.linalg.qr(numerator)  # (p, m, K + E + 1)
    weighted = scaled.transpose(0, 2, 1)[..., None] * locator[:, None]  # (p, M, m, E + 1)
    residual = weighted - basis[:, None] @ (basis[:, None].transpose(0, 1, 3, 2) @ weighted)
    normal = np.einsum("pcmi,pcmj->pij", residual, residual)
    _, vectors = np.linalg.eigh(normal)
    return np.abs(np.einsum("pmj,pj->pm", locator, vectors[:, :, 0]))


def _loo_berrut(sites: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Each answer predicted by Berrut's interpolant of the others: (p, n) sites, (p, n, M)."""
    n = sites.shape[1]
    j = np.arange(n)
    rank = np.where(j[None, :] < j[:, None], j[None, :], j[None, :] - 1)  # j's rank without i
    eye = np.eye(n, dtype=bool)
    offsets = np.where(eye, 1.0, sites[:, :, None] - sites[:, None, :])
    terms = np.where(eye, 0.0, np.where(rank % 2 == 0, 1.0, -1.0) / offsets)
    return (terms / terms.sum(axis=2, keepdims=True)) @ values


def _far(
    sites: np.ndarray, answers: np.ndarray, tested: np.ndarray, screen: float, floor: np.ndarray
) -> np.ndarray:
    """Which ``tested`` answers (p, m; the same count per row) Berrut's interpolant of the others
    misses by more than ``screen`` times their median leave-one-out residual."""
    p, m = tested.shape
    q = int(tested[0].sum())
    width = answers.shape[2]
    kept_sites = sites[~tested].reshape(p, m - q)
    kept = answers[~tested].reshape(p, m - q, width)
    predicted = berrut_matrices(kept_sites, sites[tested].reshape(p, q)) @ kept
    misses = arrays.row_norms(answers[tested].reshape(p, q, width) - predicted)
    loo = arrays.row_norms(kept - _loo_berrut(kept_sites, kept))
    scale = np.maximum(np.median(loo, axis=1), floor)
    found = np.zeros((p, m), dtype=bool)
    found[tested] = (misses > screen * scale[:, None]).reshape(-1)
    return found


class LocatingBACC(ScreeningScheme, BACC):
    """BACC whose decoder locates adversarial answers with a rational Welch–Berlekamp error
    locator (ApproxIFER's idea; see :mod:`nercc.coding.locator` for the objective).

    Per pattern of m answers: the error locator :math:`\\Lambda` sized for
    :math:`E = \\lfloor (m - K - 1)/2 \\rfloor` errors, fitted jointly over the output
    coordinates by minimising :math:`\\sum_c \\min_{a_c} \\|A_{\\mathcal N} a_c - Y_c L b\\|^2` over
    :math:`\\|b\\| = 1`; the E answers of smallest :math:`|\\Lambda(z_i)|` are candidates, and a
    candidate is dropped when Berrut's interpolant of the other answers misses it by more than
    ``screen`` times their median leave-one-out residual. The rest is decoded as
    :class:`~nercc.coding.BACC` decodes it.

    Parameters
    ----------
    num_inputs, num_workers, points
        As :class:`~nercc.coding.BACC`.
    screen : float
        The confirmation cut, finite and > 0 (8 by default).

    Attributes
    ----------
    screen : float
    """

    tunables: ClassVar[tuple[Tunable, ...]] = (*BACC.tunables, LOCATOR_SCREEN)
    reported: ClassVar[tuple[str, ...]] = (*BACC.reported, "screen")

    def __init__(
        self, num_inputs: int, num_workers: int, points: str = "chebyshev", screen: float = 8.0
    ) -> None:
        super().__init__(num_inputs, num_workers, points)
        self.screen = check_screen(screen)

    def _locate_and_confirm(self, values: np.ndarray, available: np.ndarray) -> np.ndarray:
        """The answers dropped (P, N) among finite ``values`` (P, N, M) of patterns (P, N)."""
        flagged = np.zeros(available.shape, dtype=bool)
        for chosen, masks, sites in self._by_size(available):
            m = sites.shape[1]
            errors = (m - self.num_inputs - 1) // 2
            if errors < 1:
                continue
            answers = values[chosen][masks].reshape(*sites.shape, values.shape[2])
            floor = _SCALE_FLOOR * np.median(arrays.row_norms(answers), axis=1)
            magnitude = _locate(self.alphas, sites, answers, errors)
            order = np.argsort(magnitude, axis=1, kind="stable")
            candidates = np.zeros(sites.shape, dtype=bool)
            np.put_along_axis(candidates, order[:, :errors], True, axis=1)
            far = _far(sites, answers, candidates, self.screen, floor)
            # Round 2: the candidates found near return; each far one is checked again against
            # every answer not found far (patterns grouped by how many were found far).
            found = far.sum(axis=1)
            confirmed = np.zeros(sites.shape, dtype=bool)
            for count in np.unique(found[found > 0]):
                rows = np.flatnonzero(found == count)
                confirmed[rows] = _far(
                    sites[rows], answers[rows], far[rows], self.screen, floor[rows]
                )
            block = np.zeros(masks.shape, dtype=bool)
            block[masks] = confirmed.reshape(-1)
            flagged[chosen] = block
        return flagged

    def _flag(self, values: np.ndarray, available: np.ndarray) -> np.ndarray:
        """The answers dropped (P, N) of float64 ``values`` (P, N, M) and patterns (P, N)."""
        broken = available & ~np.isfinite(values).all(axis=2)
        broken &= (broken.sum(axis=1) < available.sum(axis=1))[:, None]  # never every answer
        rest = available & ~broken
        clean = np.where(rest[:, :, None], values, 0.0)
        rest &= np.isfinite(clean).all(axis=(1, 2))[:, None]  # every answer broken: none located
        return broken | self._locate_and_confirm(clean, rest)
