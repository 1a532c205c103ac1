"""Sums behind the coded-inference metrics, reduced across processes by torchmetrics."""

from __future__ import annotations

import torch
from torchmetrics import Metric

__all__ = ["CodedMetrics"]


class CodedMetrics(Metric):
    """Accumulates, over inputs and straggler patterns, what method.md's metrics need.

    ``update`` takes decoded outputs and references for a set of (input, pattern) pairs;
    ``compute`` returns ``mse`` (mean over pairs and logits of the squared error), ``acc``,
    ``base_acc``, ``rel_acc = acc / base_acc``, ``agreement`` and the counts. An input that a
    scheme lost (a baseline's straggler) counts as wrong. All states are sums, so DDP reduces them
    exactly. ``patterns`` counts the (group, pattern) draws.
    """

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        for name in ("squared_error", "pairs", "correct", "base_correct", "agree", "patterns"):
            self.add_state(name, torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(
        self,
        estimates: torch.Tensor,
        reference: torch.Tensor,
        labels: torch.Tensor,
        valid: torch.Tensor,
        lost: torch.Tensor,
        patterns: int,
    ) -> None:
        """Add pairs.

        Parameters
        ----------
        estimates : (..., C) decoded logits, one per (input, pattern) pair.
        reference : (..., C) the classifier's logits on the original inputs, broadcast to the pairs.
        labels : (...) true labels.
        valid : (...) bool, pairs to count (padding of a remainder group is not).
        lost : (...) bool, inputs the scheme could not estimate.
        patterns : the number of (group, pattern) draws these pairs come from.
        """
        valid = valid.to(torch.float64)
        error = (estimates.double() - reference.double()).pow(2).mean(dim=-1)
        predicted = estimates.argmax(dim=-1)
        reference_predicted = reference.argmax(dim=-1)
        kept = (~lost).to(torch.float64)
        self.squared_error += (error * valid).sum()
        self.pairs += valid.sum()
        self.correct += ((predicted == labels).double() * kept * valid).sum()
        self.base_correct += ((reference_predicted == labels).double() * valid).sum()
        self.agree += ((predicted == reference_predicted).double() * kept * valid).sum()
        self.patterns += patterns

    def compute(self) -> dict[str, float]:
        pairs = self.pairs.clamp_min(1.0)
        acc = float(self.correct / pairs)
        base_acc = float(self.base_correct / pairs)
        return {
            "mse": float(self.squared_error / pairs),
            "acc": acc,
            "base_acc": base_acc,
            "rel_acc": acc / base_acc if base_acc > 0 else float("nan"),
            "agreement": float(self.agree / pairs),
            "pairs": int(self.pairs),
            "patterns": int(self.patterns),
        }
