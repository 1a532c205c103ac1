r"""Robust decoding: NeRCC and BACC that screen out adversarial (Byzantine) answers.

A Byzantine worker returns an arbitrary value instead of :math:`f` at its point; every plain
decoder here is a least-squares fit or an interpolant of the answers, so one such answer moves the
estimates arbitrarily far. :class:`RobustNeRCC` and :class:`RobustBACC` screen the answers of each
pattern by their leave-one-out residual against a robust scale, then decode the rest as the plain
scheme would.

The screening of one pattern with answering workers :math:`F` (:math:`m = |F|` answers
:math:`y_i`, each a row of M output coordinates):

1. predict every answer from the others with the scheme's own decoding curve: :math:`\hat
   y_{-i}` is the curve fitted to the answers of :math:`F \setminus \{i\}` at their betas,
   evaluated at :math:`\beta_i`. NeRCC: the smoothing spline with the decoder lambda the pattern
   gets on :math:`F` (the fixed ``lam_dec``, or from ``df_dec`` or GCV on the current :math:`F`);
   BACC: Berrut's interpolant of the other answers (signs alternating over them);
2. score :math:`e_i = \|y_i - \hat y_{-i}\|_2` over all output coordinates;
3. cut :math:`c = \max(\mathrm{med}(e) + s \cdot 1.4826\, \mathrm{MAD}(e),\ 10^{-9}\, r)`, with
   :math:`s` the ``screen`` argument, :math:`\mathrm{MAD}(e) = \mathrm{med}|e - \mathrm{med}(e)|`
   (1.4826 MAD estimates a normal standard deviation) and :math:`r` the root mean square of the
   answers' norms :math:`\|y_i\|_2` (the floor keeps an exact fit, all :math:`e_i` at rounding
   level, from flagging rounding noise);
4. among the answers whose score exceeds :math:`c`, drop the one an error most likely sits at
   (flag it): with :math:`L` the leave-one-out operator (:math:`\hat y_{-i} = \sum_j L_{ij} y_j`,
   :math:`L_{ii} = 0`), :math:`G = I - L` and residuals :math:`R = G Y`, an error :math:`\delta`
   in answer :math:`j` alone leaves :math:`R = g_j \delta^T` (:math:`g_j` column j of G), so the
   one whose column matches the residuals best, :math:`\arg\max_j \|g_j^T R\|_2 / \|g_j\|_2`.
   The largest score is not always that answer: an error also shows in the residuals of its
   neighbours, through their leave-one-out weights on it, and an end point extrapolated from an
   erroneous neighbour can score higher than the error itself;
5. start again at 1 on the answers left; stop when no score exceeds the cut or
   :math:`\lfloor (m - K)/2 \rfloor` answers were dropped (so at least :math:`K`, and at least
   half the answers beyond :math:`K`, always remain; a pattern with at most :math:`K + 1`
   answers is never screened).

What it assumes: the honest leave-one-out residuals are of one size, so that an error far above
it stands out. Where the decoder reproduces the honest answers exactly (NeRCC: answers linear in
beta; Berrut: constants) gross errors are located exactly. On a real f the honest residuals
vary along the betas (larger at the ends and where workers straggle), and a cut at
``screen = 4`` also drops honest answers from their upper tail (at most the cap; the estimate
then comes from fewer answers): ``screen`` trades these against missed adversaries.

Answers holding a NaN or an infinity are flagged before step 1 (they count towards the cap),
unless every answer of the pattern does. The estimate is then the plain scheme's decoding of the
pattern ``available & ~flagged``, so that when exactly the adversaries are flagged it equals the
plain decoding of the honest answers. What is screened depends on the outputs, not only on the
pattern: :meth:`~nercc.coding.CodingScheme.decoder_matrix` and
:meth:`~nercc.coding.CodingScheme.decoder_matrices` return the *plain* decoder of a pattern (what
it decodes with when nothing is flagged; an adversary aims a targeted attack with them), while
:meth:`~nercc.coding.CodingScheme.decode`, :meth:`~nercc.coding.CodingScheme.decode_each` and
:meth:`~nercc.coding.CodingScheme.decode_each_with_params` decode the screened answers and
:meth:`~nercc.coding.CodingScheme.decode_each_flagged` reports which were dropped.

Cost: patterns of one answer count are screened together, each round one batched fit of the
:math:`p m` leave-one-out curves (:math:`m - 1` sites, one target each) of the :math:`p` patterns
still screening, assembled into :math:`p` matrices :math:`L` (:math:`m \times m`) applied to the
answers; a round per dropped answer, plus one.
"""

from __future__ import annotations

import math
import numbers
from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np

from nercc.coding import arrays
from nercc.coding.bacc import BACC
from nercc.coding.base import CodingScheme
from nercc.coding.nercc import NeRCC
from nercc.coding.params import Tunable
from nercc.coding.point_scheme import PointScheme
from nercc.coding.splines import smoothing_spline_matrices

__all__ = ["MAD_SCALE", "SCREEN_FLOOR", "RobustBACC", "RobustNeRCC"]

#: 1.4826 MAD estimates the standard deviation of normally distributed scores.
MAD_SCALE = 1.4826

#: The cut never falls below this fraction of the root mean square of the answers' norms.
SCREEN_FLOOR = 1e-9

#: At most this many entries in the leave-one-out matrices of one batch (p m^2; 64 MB).
_LOO_CHUNK_ENTRIES = 1 << 23

SCREEN = Tunable(
    name="screen",
    side="decoder",
    meaning="the MAD multiplier of the screening cut: an answer whose leave-one-out residual "
    "exceeds median + screen x 1.4826 MAD of the pattern's residuals is dropped",
    low=0.0,
    low_open=True,
    log=False,
    search=(1.5, 10.0),
    grid=(2.0, 3.0, 4.0, 6.0),
    per_pattern="never",
)


def check_screen(value: object) -> float:
    """Return the screening multiplier as a float if it is a finite number > 0."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
        if math.isfinite(number) and number > 0:
            return number
    raise ValueError(f"screen must be a finite number > 0, got {value!r}")


def screening_cut(scores: np.ndarray, norms: np.ndarray, screen: float) -> np.ndarray:
    r"""Return the screening cut of each row of leave-one-out scores.

    :math:`c = \max(\mathrm{med}(e) + s \cdot 1.4826\, \mathrm{med}|e - \mathrm{med}(e)|,\
    10^{-9} \sqrt{\mathrm{mean}_i \|y_i\|^2})` per row.

    Parameters
    ----------
    scores : ndarray of shape (p, m)
        The scores :math:`e_i \ge 0` of p patterns of m answers.
    norms : ndarray of shape (p, m)
        The norms of the answers :math:`\|y_i\|_2`.
    screen : float
        The MAD multiplier :math:`s`.

    Returns
    -------
    ndarray of shape (p,)
    """
    median = np.median(scores, axis=1)
    mad = np.median(np.abs(scores - median[:, None]), axis=1)
    floor = SCREEN_FLOOR * row_norms(norms) / math.sqrt(norms.shape[1])
    return np.maximum(median + screen * MAD_SCALE * mad, floor)


def row_norms(values: np.ndarray) -> np.ndarray:
    """The 2-norms along the last axis, without overflow for entries up to the largest double
    (scaled by each row's largest magnitude first); inf where a row holds an infinity."""
    top = np.max(np.abs(values), axis=-1, keepdims=True)
    scale = np.where((top > 0) & np.isfinite(top), top, 1.0)
    return np.where(
        np.isfinite(top[..., 0]),
        scale[..., 0] * np.sqrt(np.sum((values / scale) ** 2, axis=-1)),
        np.inf,
    )


class _Screening(PointScheme):
    """What RobustNeRCC and RobustBACC share: the screening of the answers and the decoding of
    what is left (see the module's docstring). A subclass gives :meth:`_loo_fit` and sets
    ``screen``."""

    screens: ClassVar[bool] = True
    screen: float

    # -- the leave-one-out curves -------------------------------------------------------------
    @abstractmethod
    def _loo_fit(
        self, masks: np.ndarray, sites: np.ndarray, answers: np.ndarray, loo_sites: np.ndarray
    ) -> np.ndarray:
        """Operators (p m, 1, m - 1): the decoding curve of each ``loo_sites`` row (the sites of
        pattern ``r // m`` without its site ``r % m``) at the site left out."""

    def _loo_operators(
        self, masks: np.ndarray, sites: np.ndarray, answers: np.ndarray
    ) -> np.ndarray:
        """Matrices (p, m, m) with zero diagonal: row i predicts answer i from the others."""
        p, m = sites.shape
        others = np.array([[j for j in range(m) if j != i] for i in range(m)], dtype=np.intp)
        loo_sites = sites[:, others].reshape(p * m, m - 1)
        rows = self._loo_fit(masks, sites, answers, loo_sites).reshape(p, m, m - 1)
        operators = np.zeros((p, m, m))
        operators[:, np.arange(m)[:, None], others] = rows
        return operators

    def _worst(self, values: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For patterns ``current`` (a, N) of answers ``values`` (a, N, M): the worker to drop
        of each (a,), and whether there is one (a score above the cut; steps 1 to 4)."""
        worst = np.zeros(len(current), dtype=np.intp)
        exceeds = np.zeros(len(current), dtype=bool)
        for chosen, masks, sites in self._by_size(current):
            p, m = sites.shape
            workers = np.nonzero(masks)[1].reshape(p, m)
            step = max(1, _LOO_CHUNK_ENTRIES // (m * m))
            for start in range(0, p, step):
                part = slice(start, start + step)
                answers = values[chosen[part]][masks[part]].reshape(-1, m, values.shape[2])
                loo = self._loo_operators(masks[part], sites[part], answers)
                signatures = np.eye(m) - loo  # column i: the residuals an error at i leaves
                residuals = signatures @ answers
                scores = row_norms(residuals)
                matched = row_norms(signatures.transpose(0, 2, 1) @ residuals)
                matched /= np.maximum(
                    row_norms(signatures.transpose(0, 2, 1)), np.finfo(float).tiny
                )
                above = scores > screening_cut(scores, row_norms(answers), self.screen)[:, None]
                top = np.argmax(np.where(above, matched, -1.0), axis=1)
                rows, here = chosen[part], np.arange(len(top))
                worst[rows] = workers[part][here, top]
                exceeds[rows] = above[here, top]
        return worst, exceeds

    def _flag(self, values: np.ndarray, available: np.ndarray) -> np.ndarray:
        """The answers dropped (P, N) of float64 ``values`` (P, N, M) and patterns (P, N)."""
        counts = available.sum(axis=1)
        cap = np.maximum((counts - self.num_inputs) // 2, 0)
        broken = available & ~np.isfinite(values).all(axis=2)
        flagged = broken & (broken.sum(axis=1) < counts)[:, None]  # never every answer
        removed = flagged.sum(axis=1)
        active = np.flatnonzero((removed < cap) & ~np.any(broken & ~flagged, axis=1))
        while active.size:
            current = available[active] & ~flagged[active]
            worst, exceeds = self._worst(values[active], current)
            hit = active[exceeds]
            flagged[hit, worst[exceeds]] = True
            removed[hit] += 1
            active = hit[removed[hit] < cap[hit]]
        return flagged

    # -- decoding -----------------------------------------------------------------------------
    def _decode_each_flagged(
        self, outputs: Any, available: np.ndarray, with_params: bool
    ) -> tuple[Any, dict[str, np.ndarray], np.ndarray]:
        flagged = self._flag(arrays.as_float64(outputs), available)
        estimates, params = self._decode_each(outputs, available & ~flagged, with_params)
        if with_params:
            params = {k: v for k, v in params.items() if k != "screen"}
            params["screen"] = np.full(available.shape[0], self.screen)
        return estimates, params, flagged

    def _decode(self, outputs: Any, shape: tuple[int, ...], mask: np.ndarray) -> Any:
        # One set of outputs, one pattern or several: screened like decode_each.
        rows = np.atleast_2d(mask)
        count = rows.shape[0]
        if arrays.is_tensor(outputs):
            stacked = outputs.unsqueeze(0).expand(count, *shape)
        else:
            stacked = np.broadcast_to(outputs, (count, *shape))
        flat = stacked.reshape(count, self.num_workers, -1)
        estimates, _, _ = self._decode_each_flagged(flat, rows, False)
        estimates = estimates.reshape((count, self.num_inputs, *shape[1:]))
        return estimates[0] if mask.ndim == 1 else estimates

    # -- description --------------------------------------------------------------------------
    def params(self) -> dict[str, float]:
        return {**super().params(), "screen": self.screen}

    def decoder_key(self) -> tuple[Any, ...]:
        # What is flagged depends on the outputs (summed over the output coordinates): outputs of
        # other encoders decoded side by side would join it, so the key keeps every setting.
        return CodingScheme.decoder_key(self)

    def _describe(self) -> dict[str, Any]:
        return {**super()._describe(), "screen": self.screen}


class RobustNeRCC(_Screening, NeRCC):
    """NeRCC whose decoder screens out adversarial answers (see :mod:`nercc.coding.robust`).

    Each pattern's answers are screened by their leave-one-out residuals under the pattern's
    smoothing spline (the decoder lambda it gets: ``lam_dec``, or from ``df_dec``, or with
    ``lam_dec="gcv"`` chosen by GCV on the answers still in, again after every drop), and the
    rest decoded as :class:`~nercc.coding.NeRCC` decodes them.

    Parameters
    ----------
    num_inputs, num_workers, lam_enc, lam_dec, points, df_enc, df_dec, lam_grid
        As :class:`~nercc.coding.NeRCC`.
    screen : float
        The MAD multiplier of the screening cut, finite and > 0 (4 by default): an answer is
        dropped while its leave-one-out residual exceeds median + screen x 1.4826 MAD of the
        pattern's residuals.

    Attributes
    ----------
    screen : float
    """

    tunables: ClassVar[tuple[Tunable, ...]] = (*NeRCC.tunables, SCREEN)
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
        screen: float = 4.0,
    ) -> None:
        super().__init__(
            num_inputs, num_workers, lam_enc, lam_dec, points, df_enc, df_dec, lam_grid
        )
        self.screen = check_screen(screen)

    def _loo_fit(
        self, masks: np.ndarray, sites: np.ndarray, answers: np.ndarray, loo_sites: np.ndarray
    ) -> np.ndarray:
        m = sites.shape[1]
        lam, _ = self._decoder_setting(masks, sites, answers, with_df=False)
        lam = np.repeat(lam, m) if isinstance(lam, np.ndarray) else lam
        targets = sites.reshape(-1, 1)
        return smoothing_spline_matrices(loo_sites, targets, lam)


class RobustBACC(_Screening, BACC):
    """BACC whose decoder screens out adversarial answers (see :mod:`nercc.coding.robust`).

    Each pattern's answers are screened by their leave-one-out residuals under Berrut's
    interpolant of the others, and the rest decoded as :class:`~nercc.coding.BACC` decodes them.

    Parameters
    ----------
    num_inputs, num_workers, points
        As :class:`~nercc.coding.BACC`.
    screen : float
        The MAD multiplier of the screening cut, finite and > 0 (4 by default).

    Attributes
    ----------
    screen : float
    """

    tunables: ClassVar[tuple[Tunable, ...]] = (*BACC.tunables, SCREEN)
    reported: ClassVar[tuple[str, ...]] = (*BACC.reported, "screen")

    def __init__(
        self, num_inputs: int, num_workers: int, points: str = "chebyshev", screen: float = 4.0
    ) -> None:
        super().__init__(num_inputs, num_workers, points)
        self.screen = check_screen(screen)

    def _loo_fit(
        self, masks: np.ndarray, sites: np.ndarray, answers: np.ndarray, loo_sites: np.ndarray
    ) -> np.ndarray:
        return self._fit(loo_sites, sites.reshape(-1, 1), decoder=True)
