r"""Robust decoding: NeRCC and BACC that screen out adversarial (Byzantine) answers.

A Byzantine worker returns an arbitrary value instead of :math:`f` at its point; every plain
decoder here is a least-squares fit or an interpolant of the answers, so one such answer moves the
estimates arbitrarily far. :class:`RobustNeRCC` and :class:`RobustBACC` screen the answers of each
pattern with a robust smoothing spline, drop those it rejects, and decode the rest as the plain
scheme would.

The screening of one pattern with answering workers :math:`F` (:math:`m = |F|` answers
:math:`y_i`, each a row of M output coordinates) is Tukey's biweight fit by iteratively reweighted
smoothing splines (the robustness iterations of Cleveland's LOWESS, with a spline):

1. fit the natural cubic smoothing spline :math:`u` of effective degrees of freedom
   :math:`\mathrm{df} = \min(\max(0.75 K, 2.5), m - 1)` to the answers at their betas, minimising
   :math:`\sum_i w_i \|y_i - u(\beta_i)\|^2 / \sum_i w_i + \lambda \int \|u''\|^2` (the first
   weights are the biweights of step 3 with :math:`e_i` the distance of :math:`y_i` to the
   coordinate-wise median answer: a redescending fit needs a robust start, or one gross error
   pulls the stiff first fit and inflates the scale of every residual; :math:`\lambda` from the
   df on the pattern's betas). Its degrees of
   freedom sit between a line and the interpolant: enough for the curve an honest
   :math:`f(u_{enc}(\beta))` draws through K inputs, too few to follow a single wrong answer
   (with more, 1.5 K say, the spline nearly interpolates small codes, 12 df on the ViT's 16
   answers: its in-sample residuals shrink, and honest answers left out of a refit look
   wrong);
2. residual norms :math:`e_i = \|y_i - u(\beta_i)\|_2` over all output coordinates, and the robust
   scale :math:`\sigma = \max(\mathrm{med}_i\, e_i,\ 10^{-9}\, \mathrm{med}_i \|y_i\|_2)` (an
   exact fit, every :math:`e_i` at rounding level, flags nothing);
3. :math:`t_i = e_i / (s \sigma)` with :math:`s` the ``screen`` argument, and biweights
   :math:`w_i = (1 - t_i^2)^2` for :math:`t_i < 1`, else (nearly) 0;
4. back to 1 with the new weights, until the rejected set :math:`\{i: t_i \ge 1\}` no longer
   changes (at most :data:`MAX_ROUNDS` fits). The rejected answers are flagged, at most
   :math:`\lfloor (m - K)/2 \rfloor` of them (those of largest :math:`t`), so that at least K
   answers, and half of those beyond K, always remain.

The estimate is then the plain scheme's decoding of the pattern ``available & ~flagged``: when
exactly the adversaries are flagged, it equals the plain decoding of the honest answers. Both
schemes screen with the same spline (BACC included: its own interpolant follows every answer
exactly and cannot tell a wrong one from a steep one); the decoders differ after the screening.

What it assumes: the adversaries are a minority of the answers (the median residual is an honest
one) and their errors are large against what the smoothing spline leaves of an honest answer.
Errors as small as an honest residual, such as the logits of another class that look like an
answer (``label_flip``), pass the screening; so do few large errors where the answers are sparse
and the spline follows them. ``screen`` trades honest answers dropped (costly where they are few:
the ends of the betas, the edges of a straggler gap) against missed adversaries. At the default
8, on the logits of LeNet5 (K = 20, N = 100, S = 20), RepVGG (K = 20, N = 60, S = 12) and the ViT
(K = 8, N = 20, S = 4), 2,000 test images each, no honest answer was dropped, and errors of 5
times the answers' spread (Gaussian, 10 % of N workers) were found in 93 % to 99 % of cases.
Patterns of fewer than K + 2 answers (none may be dropped) or fewer than :data:`MIN_SCREENED`
are decoded plainly.

Answers holding a NaN or an infinity are flagged before the fits (they count towards the cap),
unless every answer of the pattern does. What is screened depends on the outputs, not only on the
pattern: :meth:`~nercc.coding.CodingScheme.decoder_matrix` and
:meth:`~nercc.coding.CodingScheme.decoder_matrices` return the *plain* decoder of a pattern (what
it decodes with when nothing is flagged; an adversary aims a targeted attack with them), while
:meth:`~nercc.coding.CodingScheme.decode`, :meth:`~nercc.coding.CodingScheme.decode_each` and
:meth:`~nercc.coding.CodingScheme.decode_each_with_params` decode the screened answers and
:meth:`~nercc.coding.CodingScheme.decode_each_flagged` reports which were dropped.

Cost: patterns of one answer count are screened together, each round one banded solve per
pattern with M right-hand sides (the spline fitted to the answers directly).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from nercc.coding import arrays
from nercc.coding.bacc import BACC
from nercc.coding.gcv import spectrum_lam_for_df
from nercc.coding.nercc import NeRCC
from nercc.coding.params import Tunable
from nercc.coding.point_scheme import PointScheme
from nercc.coding.screening import ScreeningScheme, check_screen, screen_tunable
from nercc.coding.spectrum_cache import SpectrumCache
from nercc.coding.splines import lam_bound, smoothing_spline_values

__all__ = ["MAX_ROUNDS", "MIN_SCREENED", "SCREEN_DF", "SCREEN_FLOOR", "RobustBACC", "RobustNeRCC"]

#: The screening spline's effective degrees of freedom, in multiples of K (at most m - 1).
SCREEN_DF = 0.75

#: Patterns with fewer answers than this are never screened (the spline needs df in (2, m - 1]).
MIN_SCREENED = 4

#: The robust scale never falls below this fraction of the median norm of the answers.
SCREEN_FLOOR = 1e-9

#: At most this many reweighted fits per pattern.
MAX_ROUNDS = 10

#: The weight of a rejected answer: the spline solver needs positive weights.
_REJECTED_WEIGHT = 1e-12

SCREEN = screen_tunable(
    "the screening cut in median residuals: an answer whose residual from the robust "
    "screening spline exceeds screen x the pattern's median residual is dropped"
)


class _Screening(ScreeningScheme, PointScheme):
    """What RobustNeRCC and RobustBACC share: the screening spline of the module's docstring. A
    subclass sets ``screen``."""

    def _reset_caches(self) -> None:
        super()._reset_caches()
        # The eigenvalues of each mask's answering betas, for the screening spline's lambda: the
        # same masks come back for every A of an evaluation and every group served.
        self._screen_spectra = SpectrumCache()

    def _screen_lam(self, masks: np.ndarray, sites: np.ndarray) -> np.ndarray:
        """The screening spline's lambda for patterns ``masks`` (p, N) answered at ``sites``
        (p, m), m >= MIN_SCREENED: the lambda of df = min(max(SCREEN_DF K, 2.5), m - 1)."""
        df = min(max(SCREEN_DF * self.num_inputs, 2.5), sites.shape[1] - 1.0)
        d, _ = self._screen_spectra.lookup(masks, sites, vectors=False)
        return spectrum_lam_for_df(d, np.full((len(d), 1), df), lam_bound(self.betas))[:, 0]

    def _screen(self, masks: np.ndarray, sites: np.ndarray, answers: np.ndarray) -> np.ndarray:
        """The answers (p, m) the reweighted fits reject, of patterns ``masks`` (p, N) with m
        answers (p, m, M) at ``sites`` (p, m): steps 1 to 4 of the module's docstring, before
        the exact check."""
        p, m = sites.shape
        lam = self._screen_lam(masks, sites)
        floor = SCREEN_FLOOR * np.median(arrays.row_norms(answers), axis=1)
        # A redescending fit needs a robust start: the first weights are the biweights of the
        # distances to the coordinate-wise median answer, so that a gross error does not pull
        # the first (stiff) fit and inflate every residual's scale before it can be rejected.
        center = np.median(answers, axis=1, keepdims=True)
        weights, _ = self._biweights(arrays.row_norms(answers - center), floor)
        rejected = np.zeros((p, m), dtype=bool)
        for _ in range(MAX_ROUNDS):
            fitted = smoothing_spline_values(sites, answers, sites, lam, weights)
            weights, now = self._biweights(arrays.row_norms(answers - fitted), floor)
            settled = np.array_equal(now, rejected)
            rejected = now
            if settled:
                break
        return rejected

    def _biweights(self, residuals: np.ndarray, floor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tukey's biweights (p, m) of residual norms (p, m) at the cut ``screen`` x their
        median (never below ``floor``), and the answers at or beyond the cut."""
        scale = np.maximum(np.median(residuals, axis=1), floor)
        t = residuals / (self.screen * scale[:, None])
        weights = np.maximum((1.0 - np.minimum(t, 1.0) ** 2) ** 2, _REJECTED_WEIGHT)
        return weights, t >= 1.0

    def _check_rejected(
        self, values: np.ndarray, available: np.ndarray, rejected: np.ndarray
    ) -> np.ndarray:
        """The answers to drop (P, N): the screening spline fitted to the answers not
        ``rejected`` alone (no weight left on the rejected ones), every answer of the pattern
        measured against it and the scale taken from those kept; at most the cap, those
        farthest out."""
        flagged = np.zeros(available.shape, dtype=bool)
        kept = available & ~rejected
        for chosen, masks, sites in self._by_size(kept):
            count = sites.shape[1]
            if count < MIN_SCREENED:
                continue
            answers = values[chosen][masks].reshape(*sites.shape, values.shape[2])
            lam = self._screen_lam(masks, sites)
            curve = smoothing_spline_values(sites, answers, self.betas, lam)
            residuals = arrays.row_norms(values[chosen] - curve)  # (p, N)
            floor = SCREEN_FLOOR * np.median(arrays.row_norms(answers), axis=1)
            inside = np.where(masks, residuals, np.nan)
            scale = np.maximum(np.nanmedian(inside, axis=1), floor)
            t = np.where(available[chosen], residuals / (self.screen * scale[:, None]), 0.0)
            over = t >= 1.0
            caps = np.maximum((available[chosen].sum(axis=1) - self.num_inputs) // 2, 0)
            order = np.argsort(-np.where(over, t, -np.inf), axis=1, kind="stable")
            ranks = np.empty_like(order)
            np.put_along_axis(ranks, order, np.arange(self.num_workers)[None], axis=1)
            flagged[chosen] = over & (ranks < caps[:, None])
        return flagged

    def _flag(self, values: np.ndarray, available: np.ndarray) -> np.ndarray:
        """The answers dropped (P, N) of float64 ``values`` (P, N, M) and patterns (P, N)."""
        counts = available.sum(axis=1)
        broken = available & ~np.isfinite(values).all(axis=2)
        flagged = broken & (broken.sum(axis=1) < counts)[:, None]  # never every answer
        # A pattern of fewer than K + 2 answers may drop none (the cap below): not screened.
        screened = counts >= max(self.num_inputs + 2, MIN_SCREENED)
        clean = np.flatnonzero(~np.any(broken, axis=1) & screened)
        rejected = np.zeros(available.shape, dtype=bool)
        for chosen, masks, sites in self._by_size(available[clean]):
            rows = clean[chosen]
            answers = values[rows][masks].reshape(*sites.shape, values.shape[2])
            found = np.zeros(masks.shape, dtype=bool)
            found[masks] = self._screen(masks, sites, answers).reshape(-1)
            rejected[rows] = found
        flagged[clean] = self._check_rejected(values[clean], available[clean], rejected[clean])
        return flagged


class RobustNeRCC(_Screening, NeRCC):
    """NeRCC whose decoder screens out adversarial answers (see :mod:`nercc.coding.robust`).

    Each pattern's answers are screened by a robust smoothing spline (Tukey's biweight, see the
    module), and the rest decoded as :class:`~nercc.coding.NeRCC` decodes them (with its
    ``lam_dec``, ``df_dec`` or ``"gcv"`` on the answers left).

    Parameters
    ----------
    num_inputs, num_workers, lam_enc, lam_dec, points, df_enc, df_dec, lam_grid
        As :class:`~nercc.coding.NeRCC`.
    screen : float
        The screening cut in median residuals, finite and > 0 (8 by default): an answer whose
        residual from the robust screening spline exceeds ``screen`` times the pattern's median
        residual is dropped.

    Attributes
    ----------
    screen : float
    """

    tunables: ClassVar[tuple[Tunable, ...]] = (*NeRCC.tunables, SCREEN)
    _CACHES = (*NeRCC._CACHES, "_screen_spectra")
    reported: ClassVar[tuple[str, ...]] = (*NeRCC.reported, "screen")

    def __init__(
        self,
        num_inputs: int,
        num_workers: int,
        lam_enc: float = 0.0,
        lam_dec: float | str = 0.0,
        points: str = "chebyshev",
        df_enc: float | None = None,
        df_dec: float | None = None,
        lam_grid: Any = None,
        screen: float = 8.0,
    ) -> None:
        super().__init__(
            num_inputs, num_workers, lam_enc, lam_dec, points, df_enc, df_dec, lam_grid
        )
        self.screen = check_screen(screen)


class RobustBACC(_Screening, BACC):
    """BACC whose decoder screens out adversarial answers (see :mod:`nercc.coding.robust`).

    Each pattern's answers are screened by a robust smoothing spline (Tukey's biweight, see the
    module), and the rest decoded as :class:`~nercc.coding.BACC` decodes them.

    Parameters
    ----------
    num_inputs, num_workers, points
        As :class:`~nercc.coding.BACC`.
    screen : float
        The screening cut in median residuals, finite and > 0 (8 by default).

    Attributes
    ----------
    screen : float
    """

    tunables: ClassVar[tuple[Tunable, ...]] = (*BACC.tunables, SCREEN)
    _CACHES = (*BACC._CACHES, "_screen_spectra")
    reported: ClassVar[tuple[str, ...]] = (*BACC.reported, "screen")

    def __init__(
        self, num_inputs: int, num_workers: int, points: str = "chebyshev", screen: float = 8.0
    ) -> None:
        super().__init__(num_inputs, num_workers, points)
        self.screen = check_screen(screen)
