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
    scheme lost (a baseline's straggler) counts as wrong. ``patterns`` counts the (group, pattern)
    draws, ``stragglers_mean`` and ``stragglers_max`` the workers that did not answer in them
    (the realised counts: for a model that draws a random number of stragglers they differ from
    the S asked for). All states are sums, but for the maximum, so DDP reduces them exactly.
    """

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        for name in (
            "squared_error", "pairs", "correct", "base_correct", "agree", "patterns", "stragglers",
        ):  # fmt: skip
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
        stragglers : (patterns,) optional, how many workers did not answer in each draw.
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
            "stragglers_mean": float(self.stragglers / self.patterns.clamp_min(1.0)),
            "stragglers_max": int(self.stragglers_max),
        }
