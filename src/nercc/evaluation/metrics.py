"""Sums behind the coded-inference metrics, reduced across processes by torchmetrics."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

__all__ = [
    "INTERVAL_Z",
    "CodedMetrics",
    "DetectionStats",
    "ParamStats",
    "lower_median",
    "ratio_standard_error",
]

#: Half-width of the reported intervals in standard errors: 95 %, normal approximation.
INTERVAL_Z = 1.96


def ratio_standard_error(
    total: float,
    total_sq: float,
    cross: float,
    size: float,
    size_sq: float,
    draws: float,
) -> float:
    """Standard error of the ratio ``R = sum_d y_d / sum_d n_d`` over independent draws d.

    ``y_d`` is a draw's total (its squared error summed over its real inputs, or its number
    correct) and ``n_d`` its number of real inputs, so that ``R`` is the mean over inputs and
    ``m_d = y_d / n_d`` the draw's own mean. From the sums ``total = sum y_d``,
    ``total_sq = sum y_d^2``, ``cross = sum y_d n_d``, ``size = sum n_d``,
    ``size_sq = sum n_d^2`` and the number of draws D, the ratio (linearisation) estimator
    ::

        SE(R)^2 = sum_d n_d^2 (m_d - R)^2 / (D (D - 1) nbar^2),   nbar = size / D,

    with ``sum_d n_d^2 (m_d - R)^2 = total_sq - 2 R cross + R^2 size_sq``. When every draw has
    the same number of real inputs it is exactly the n-1 sample standard deviation of the
    per-draw means ``m_d`` over ``sqrt(D)``, and ``R`` their plain mean; a draw with fewer real
    inputs (the padded remainder group) weighs in proportion to them, as it does in ``R``.

    NaN for fewer than two draws (no spread to estimate) or no inputs. The sums are exact
    under a distributed reduction; the difference of sums loses about
    ``log10(1 + R^2 / var)`` digits of float64's 16, and a tiny negative result of rounding
    (every draw the same) is taken as 0.
    """
    if draws < 2 or size <= 0:
        return float("nan")
    ratio = total / size
    spread = total_sq - 2.0 * ratio * cross + ratio * ratio * size_sq
    mean_size = size / draws
    return math.sqrt(max(spread, 0.0) / (draws * (draws - 1.0))) / mean_size


class CodedMetrics(Metric):
    """Accumulates, over inputs and straggler patterns, what method.md's metrics need.

    ``update`` takes decoded outputs and references for a set of (input, pattern) pairs;
    ``compute`` returns ``mse`` (mean over pairs and logits of the squared error), ``acc``,
    ``base_acc``, ``rel_acc = acc / base_acc``, ``agreement`` and the counts. An input that a
    scheme lost (a baseline's straggler) counts as wrong. ``patterns`` counts the (group, pattern)
    draws, ``stragglers_mean`` and ``stragglers_max`` the workers that did not answer in them
    (the realised counts: for a model that draws a random number of stragglers they differ from
    the S asked for), ``few_answers`` the fraction of draws decoded from fewer answers than
    inputs (underdetermined: see :meth:`nercc.coding.CodingScheme.underdetermined`). All states
    are sums, but for the maximum, so DDP reduces them exactly. Estimates or references that are
    not finite are refused (``ValueError``): a NaN's argmax is class 0, an accuracy from it a lie.

    Error bars (method.md, "Error bars"): each (group, pattern) draw is one observation, with
    its mean squared error over its real (non-padded) inputs and logits and its fraction
    correct. ``mse`` and ``acc`` stay means over *inputs* (as before: a draw weighs by its
    number of real inputs), and their standard errors are the ratio estimator's of
    :func:`ratio_standard_error` over the draws, which is the plain sd of the per-draw values
    over sqrt(draws) when every draw has K real inputs. In the module every draw has K real
    inputs but those of a batch's remainder group (at most one group per batch; with batch
    sizes that are multiples of K, only the last batch's), which weigh less. ``compute`` adds

    - ``mse_se``; ``mse_lo``, ``mse_hi`` = ``mse -/+ 1.96 mse_se``;
    - ``rel_acc_se = SE(acc) / base_acc`` (base_acc is fixed for the input set, so it is not a
      source of error here); ``rel_acc_lo``, ``rel_acc_hi`` = ``rel_acc -/+ 1.96 rel_acc_se``.

    The intervals are 95 % under the normal approximation (``INTERVAL_Z = 1.96``), symmetric and
    not clipped to the metric's range: a lower end below 0 says the approximation is poor (few
    draws, a heavy-tailed MSE at large S), so draw more patterns. Draws that all have the same
    value (every one all correct, say) give SE 0 and an interval of width 0. With fewer than two
    draws every one of these is NaN (as ``rel_acc`` is when base_acc is 0).

    Where ``update`` is told which pairs were reconstructed (``reconstructed``), ``compute``
    adds ``recon_share``, ``recon_agreement`` and ``recon_acc`` with their intervals, measured
    on those pairs only (:meth:`_reconstructed`).

    The draws of one group share its inputs: as an estimate for other inputs than these, the
    draw-level SE ignores that correlation when T > 1 patterns are drawn per group (it is the
    usual SE with T = 1, eval's default); for these inputs, it also counts the spread between
    groups, which only the patterns' variability would not.
    """

    full_state_update = False

    #: Sums (all reduced by "sum"): per pair, then per (group, pattern) draw.
    SUMS = (
        "squared_error", "pairs", "correct", "base_correct", "agree", "patterns", "stragglers",
        "few_answers",
        # per draw d with total squared error E_d, number correct c_d and real inputs n_d:
        # sum E_d^2, sum E_d n_d, sum c_d^2, sum c_d n_d, sum n_d^2
        "draw_squared_error_sq", "draw_squared_error_pairs", "draw_correct_sq",
        "draw_correct_pairs", "draw_pairs_sq",
        # the same over the reconstructed pairs only (see update's ``reconstructed``)
        "recon_pairs", "recon_correct", "recon_agree", "draw_recon_correct_sq",
        "draw_recon_correct_pairs", "draw_recon_agree_sq", "draw_recon_agree_pairs",
        "draw_recon_pairs_sq", "recon_updates",
    )  # fmt: skip

    def __init__(self) -> None:
        super().__init__()
        for name in self.SUMS:
            self.add_state(name, torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        # Counts are >= 0, so 0 is the neutral start of a maximum (a process without a batch).
        self.add_state("stragglers_max", torch.zeros((), dtype=torch.float64), dist_reduce_fx="max")

    def update(
        self,
        estimates: torch.Tensor,
        reference: torch.Tensor,
        labels: torch.Tensor,
        valid: torch.Tensor,
        lost: torch.Tensor,
        patterns: int,
        stragglers: torch.Tensor | None = None,
        few_answers: torch.Tensor | None = None,
        reconstructed: torch.Tensor | None = None,
    ) -> None:
        """Add pairs.

        Parameters
        ----------
        estimates : (..., K, C) decoded logits, one per (input, pattern) pair; the leading axes
            index the (group, pattern) draws, the K axis a draw's inputs.
        reference : (..., K, C) the classifier's logits on the original inputs, broadcast to
            the pairs.
        labels : (..., K) true labels.
        valid : (..., K) bool, pairs to count (padding of a remainder group is not).
        lost : (..., K) bool, inputs the scheme could not estimate.
        patterns : the number of (group, pattern) draws these pairs come from: the product of
            the leading axes.
        stragglers : (patterns,) optional, how many workers did not answer in each draw.
        few_answers : (patterns,) bool, optional, which draws were decoded from fewer answers
            than inputs.
        reconstructed : (..., K) bool, optional, the pairs whose estimate is a reconstruction
            (no answering worker computed the input alone): the ``recon_*`` metrics are
            measured on these only.

        Raises
        ------
        ValueError
            If ``estimates`` or ``reference`` hold NaN or infinities, or a count has the wrong
            shape.
        """
        shape = torch.broadcast_shapes(
            estimates.shape[:-1], reference.shape[:-1], labels.shape, valid.shape, lost.shape
        )
        if not shape or math.prod(shape[:-1]) != patterns:
            raise ValueError(
                f"patterns must be the number of draws, the product of the leading axes of the "
                f"pairs' shape {tuple(shape)} (all but the last, a draw's inputs), got {patterns}"
            )
        for name, values in (("estimates", estimates), ("reference", reference)):
            if not bool(torch.isfinite(values).all()):
                bad = int((~torch.isfinite(values)).sum())
                raise ValueError(
                    f"{name} must be finite (no metric is computed from NaN or inf), got {bad} "
                    f"non-finite of {values.numel()} values"
                )
        valid = valid.to(torch.float64)
        error = (estimates.double() - reference.double()).pow(2).mean(dim=-1)
        predicted = estimates.argmax(dim=-1)
        reference_predicted = reference.argmax(dim=-1)
        kept = (~lost).to(torch.float64)
        correct = (predicted == labels).double() * kept * valid
        # Per draw: its totals over its real inputs, reduced over the draw's inputs (last axis).
        draw_error = (error * valid).expand(shape).sum(dim=-1)
        draw_correct = correct.expand(shape).sum(dim=-1)
        draw_pairs = valid.expand(shape).sum(dim=-1)
        self.squared_error += draw_error.sum()
        self.pairs += draw_pairs.sum()
        self.correct += draw_correct.sum()
        self.base_correct += ((reference_predicted == labels).double() * valid).sum()
        self.agree += ((predicted == reference_predicted).double() * kept * valid).sum()
        self.patterns += patterns
        self.draw_squared_error_sq += draw_error.pow(2).sum()
        self.draw_squared_error_pairs += (draw_error * draw_pairs).sum()
        self.draw_correct_sq += draw_correct.pow(2).sum()
        self.draw_correct_pairs += (draw_correct * draw_pairs).sum()
        self.draw_pairs_sq += draw_pairs.pow(2).sum()
        if reconstructed is not None:
            self.recon_updates += 1.0
            recon = reconstructed.to(torch.float64).expand(shape) * valid
            agree = (predicted == reference_predicted).double() * kept
            draw_agree = (agree * recon).sum(dim=-1)
            draw_recon_correct = (correct * recon).sum(dim=-1)
            draw_recon = recon.sum(dim=-1)
            self.recon_pairs += draw_recon.sum()
            self.recon_correct += draw_recon_correct.sum()
            self.recon_agree += draw_agree.sum()
            self.draw_recon_correct_sq += draw_recon_correct.pow(2).sum()
            self.draw_recon_correct_pairs += (draw_recon_correct * draw_recon).sum()
            self.draw_recon_agree_sq += draw_agree.pow(2).sum()
            self.draw_recon_agree_pairs += (draw_agree * draw_recon).sum()
            self.draw_recon_pairs_sq += draw_recon.pow(2).sum()
        if stragglers is not None:
            stragglers = torch.as_tensor(stragglers).to(self.stragglers.device, torch.float64)
            if stragglers.shape != (patterns,):
                raise ValueError(
                    f"stragglers must have shape ({patterns},) (one count per pattern), "
                    f"got shape {tuple(stragglers.shape)}"
                )
            if patterns:
                self.stragglers += stragglers.sum()
                self.stragglers_max = torch.maximum(self.stragglers_max, stragglers.max())
        if few_answers is not None:
            few = torch.as_tensor(few_answers).to(self.few_answers.device)
            if few.shape != (patterns,) or few.dtype != torch.bool:
                raise ValueError(
                    f"few_answers must be a bool tensor of shape ({patterns},) (one per pattern), "
                    f"got {few.dtype} of shape {tuple(few.shape)}"
                )
            self.few_answers += few.sum(dtype=torch.float64)

    def compute(self) -> dict[str, float | None]:
        pairs = self.pairs.clamp_min(1.0)
        mse = float(self.squared_error / pairs)
        acc = float(self.correct / pairs)
        base_acc = float(self.base_correct / pairs)
        rel_acc = acc / base_acc if base_acc > 0 else float("nan")
        size = (float(self.pairs), float(self.draw_pairs_sq), float(self.patterns))
        mse_se = ratio_standard_error(
            float(self.squared_error),
            float(self.draw_squared_error_sq),
            float(self.draw_squared_error_pairs),
            *size,
        )
        acc_se = ratio_standard_error(
            float(self.correct), float(self.draw_correct_sq), float(self.draw_correct_pairs), *size
        )
        rel_acc_se = acc_se / base_acc if base_acc > 0 else float("nan")
        # the recon_* keys where update was told which pairs were reconstructed (the evaluation
        # module always tells)
        recon = self._reconstructed() if float(self.recon_updates) > 0 else {}
        return {
            "mse": mse,
            **_interval("mse", mse, mse_se),
            "acc": acc,
            "base_acc": base_acc,
            "rel_acc": rel_acc,
            **_interval("rel_acc", rel_acc, rel_acc_se),
            "agreement": float(self.agree / pairs),
            **recon,
            "pairs": int(self.pairs),
            "patterns": int(self.patterns),
            "stragglers_mean": float(self.stragglers / self.patterns.clamp_min(1.0)),
            "stragglers_max": int(self.stragglers_max),
            "few_answers": float(self.few_answers / self.patterns.clamp_min(1.0)),
        }

    def _reconstructed(self) -> dict[str, float | None]:
        """The metrics of the reconstructed pairs: ``recon_share`` (their share of the pairs),
        ``recon_agreement`` (argmax equal to the
        classifier's on the original input; ParM's "reconstruction accuracy") and ``recon_acc``
        (against the labels), each with its ``_se``, ``_lo`` and ``_hi`` over the draws
        (:func:`ratio_standard_error`, a draw's size its reconstructed pairs; draws without any
        weigh 0). None without any reconstructed pair (nothing measured)."""
        size, pairs = float(self.recon_pairs), float(self.pairs)
        sizes = (size, float(self.draw_recon_pairs_sq), float(self.patterns))
        out: dict[str, float | None] = {"recon_share": size / pairs if pairs > 0 else 0.0}
        for name, total, total_sq, cross in (
            ("recon_agreement", self.recon_agree, self.draw_recon_agree_sq,
             self.draw_recon_agree_pairs),
            ("recon_acc", self.recon_correct, self.draw_recon_correct_sq,
             self.draw_recon_correct_pairs),
        ):  # fmt: skip
            if size <= 0:
                out.update(dict.fromkeys((name, f"{name}_se", f"{name}_lo", f"{name}_hi")))
                continue
            value = float(total) / size
            se = ratio_standard_error(float(total), float(total_sq), float(cross), *sizes)
            out[name] = value
            out.update(_interval(name, value, se))
        return out


def _interval(name: str, value: float, se: float) -> dict[str, float]:
    """``name_se``, ``name_lo``, ``name_hi``: the 95 % normal interval ``value -/+ 1.96 se``."""
    half = INTERVAL_Z * se
    return {f"{name}_se": se, f"{name}_lo": value - half, f"{name}_hi": value + half}


def lower_median(values: Any, counts: Any = None) -> float:
    """The lower median of a multiset: its ``ceil(P / 2)``-th smallest of P values (of the two
    middle ones of an even count, the smaller), so always one of the values themselves.

    ``counts`` (optional, same length) say how often each value occurs (a histogram).
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    counts = np.ones_like(values) if counts is None else np.asarray(counts, np.float64).reshape(-1)
    if values.size == 0 or counts.sum() <= 0:
        return float("nan")
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(counts[order])
    rank = (cumulative[-1] - 1) // 2  # 0-based rank of the lower median
    return float(values[order][np.searchsorted(cumulative, rank, side="right")])


class ParamStats(Metric):
    """The parameters every (group, pattern) draw was decoded with, for exact order statistics.

    ``update`` takes, per parameter name, one value per draw (what
    :meth:`nercc.coding.CodingScheme.decode_each_with_params` reports: NeRCC's ``lam_enc``,
    ``lam_dec``, ``df_enc``, ``df_dec``); ``compute`` returns, per name, the lower median over
    all draws (:func:`lower_median`: one of the values used, e.g. a lambda of the GCV grid, never
    the mean of two) and the minimum and maximum.

    The state is a histogram kept as one ``cat`` list: per update and name, the distinct values
    with how many draws used each, as flat triples (name index, value, count) in float64 (counts
    are exact integers up to 2^53). Under DDP the processes' triples are concatenated, and
    ``compute`` merges equal values by summing their counts: the multiset of values, hence the
    median, minimum and maximum, is exactly the one process's, in any order of the processes. A
    fixed parameter costs one triple per batch; one that varies (GCV's lambdas: at most the grid's
    values; the decoder's df: up to one per draw) at most one per draw.
    Every process must update at least once before ``compute`` (the evaluation gives each one a
    batch, see :func:`nercc.runtime.checks.check_batches`).
    """

    full_state_update = False

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__()
        self.names = tuple(names)
        self.add_state("triples", default=[], dist_reduce_fx="cat")

    def update(self, params: Mapping[str, Any]) -> None:
        """Add the draws' parameters: ``{name: values of shape (draws,)}`` (ndarray or tensor);
        every name of ``names``, no other."""
        if set(params) != set(self.names):
            raise ValueError(
                f"params must give exactly {list(self.names)} (the names this metric was built "
                f"for), got {sorted(params)}"
            )
        parts = []
        for index, name in enumerate(self.names):
            values = params[name]
            if isinstance(values, torch.Tensor):
                values = values.detach().cpu().numpy()
            distinct, counts = np.unique(np.asarray(values, np.float64), return_counts=True)
            part = np.empty((distinct.size, 3))
            part[:, 0], part[:, 1], part[:, 2] = index, distinct, counts
            parts.append(part.reshape(-1))
        flat = torch.as_tensor(
            np.concatenate([np.zeros(0), *parts]), dtype=torch.float64, device=self.device
        )
        self.triples.append(flat)

    def compute(self) -> dict[str, dict[str, float]]:
        """``{name: {"median": ..., "min": ..., "max": ...}}`` over every draw (NaN without
        any)."""
        state = self.triples
        if isinstance(state, list):
            state = dim_zero_cat(state) if state else torch.zeros(0, dtype=torch.float64)
        triples = state.detach().cpu().double().numpy().reshape(-1, 3)
        result = {}
        for index, name in enumerate(self.names):
            mine = triples[triples[:, 0] == index]
            distinct, inverse = np.unique(mine[:, 1], return_inverse=True)
            counts = np.bincount(inverse.reshape(-1), weights=mine[:, 2], minlength=distinct.size)
            empty = distinct.size == 0
            result[name] = {
                "median": lower_median(distinct, counts),
                "min": float("nan") if empty else float(distinct[0]),
                "max": float("nan") if empty else float(distinct[-1]),
            }
        return result


class DetectionStats(Metric):
    """How well a screening decoder found the adversarial answers, over (group, pattern) draws.

    ``update`` takes, per draw, the answers the decoder flagged and those that were adversarial
    (both (P, N) bool); the sums are exact under a distributed reduction. :meth:`compute` gives

    - ``detection_precision``: flagged adversaries / flagged answers (None when nothing was
      flagged: no claim made, none wrong);
    - ``detection_recall``: flagged adversaries / adversaries (None without adversaries);
    - ``flagged_mean``: flagged answers per draw (honest answers dropped at A = 0 show here).
    """

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        for name in ("flagged", "caught", "adversarial", "draws"):
            self.add_state(name, torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, flagged: Any, adversarial: Any) -> None:
        flagged = torch.as_tensor(np.asarray(flagged, dtype=bool))
        adversarial = torch.as_tensor(np.asarray(adversarial, dtype=bool))
        if flagged.shape != adversarial.shape or flagged.ndim != 2:
            raise ValueError(
                f"flagged and adversarial must both be (P, N), got {tuple(flagged.shape)} and "
                f"{tuple(adversarial.shape)}"
            )
        self.flagged += flagged.sum().double().to(self.flagged.device)
        self.caught += (flagged & adversarial).sum().double().to(self.caught.device)
        self.adversarial += adversarial.sum().double().to(self.adversarial.device)
        self.draws += float(flagged.shape[0])

    def compute(self) -> dict[str, float | None]:
        flagged, caught = float(self.flagged), float(self.caught)
        adversarial, draws = float(self.adversarial), float(self.draws)
        return {
            "detection_precision": caught / flagged if flagged > 0 else None,
            "detection_recall": caught / adversarial if adversarial > 0 else None,
            "flagged_mean": flagged / draws if draws > 0 else None,
        }
