"""Straggler models: which workers answer, as boolean availability masks of shape (P, N).

Every model draws from a caller's seeded ``torch.Generator``, so the same seed gives the same
patterns. ``num_stragglers`` (S) is the number of workers that do not answer; models that draw a
random count (Bernoulli, latency with a deadline) take S as the expected count or ignore it, and
say which through :attr:`StragglerModel.uses_num_stragglers`.

- :class:`FixedStragglers`: exactly S of N, uniformly at random (the paper's setting).
- :class:`BernoulliStragglers`: each worker independently with probability p (default S/N).
- :class:`WorstCaseStragglers`: S workers adjacent in beta order, at the offset that hurts the
  scheme most, or at a random offset.
- :class:`LatencyStragglers`: per-worker response times; the master keeps the first N - S answers,
  or those that arrive before a deadline. The times come back too.

A pattern always keeps at least one worker: with a deadline the master waits for the first answer.
"""

from __future__ import annotations

import math
import weakref
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

__all__ = [
    "Availability",
    "BernoulliStragglers",
    "FixedStragglers",
    "LatencyStragglers",
    "StragglerModel",
    "WorstCaseStragglers",
]


@dataclass
class Availability:
    """Drawn patterns: ``available`` (P, N) bool, and per-worker ``times`` (P, N) when modelled."""

    available: torch.Tensor
    times: torch.Tensor | None = None


def _check_stragglers(num_stragglers: Any, name: str = "num_stragglers") -> int | None:
    if num_stragglers is None:
        return None
    if isinstance(num_stragglers, bool) or not isinstance(num_stragglers, int | np.integer):
        raise ValueError(f"{name} must be an integer >= 0, got {num_stragglers!r}")
    if num_stragglers < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {num_stragglers}")
    return int(num_stragglers)


class StragglerModel(ABC):
    """Draws availability patterns. Subclasses implement :meth:`_draw`."""

    #: Whether the patterns depend on the scheme being attacked (then drawn per scheme).
    depends_on_scheme = False

    def __init__(self, num_stragglers: int | None = None) -> None:
        self.num_stragglers = _check_stragglers(num_stragglers)

    @property
    def uses_num_stragglers(self) -> bool | Literal["expected"]:
        """How the drawn patterns honour ``num_stragglers`` (S).

        - ``True``: every pattern has exactly S stragglers (fixed, worst case, latency keeping
          the N - S fastest).
        - ``"expected"``: S is the expected number; each pattern draws its own count (Bernoulli
          with ``p=None``, i.e. p = S / N).
        - ``False``: S is ignored, a label only (Bernoulli with a given ``p``, latency with a
          ``deadline``); models for different S draw the same patterns.

        Truthy exactly when S changes the patterns, so a caller can refuse a list of several S
        with ``if not model.uses_num_stragglers``.
        """
        return True

    def check(self, num_workers: int) -> None:
        """Raise ``ValueError`` if the model cannot serve ``num_workers`` workers."""
        s = self.num_stragglers
        if s is not None and s > num_workers - 1:
            raise ValueError(
                f"num_stragglers must be at most num_workers - 1 = {num_workers - 1} "
                f"(at least one worker must answer), got {s}"
            )

    def sample(
        self,
        num_patterns: int,
        num_workers: int,
        generator: torch.Generator,
        scheme: Any = None,
    ) -> Availability:
        """Draw ``num_patterns`` patterns over ``num_workers`` workers.

        Parameters
        ----------
        num_patterns : int
            P, the number of patterns.
        num_workers : int
            N.
        generator : torch.Generator
            The source of randomness (CPU).
        scheme : CodingScheme, optional
            The scheme being attacked (used by the worst-case model).
        """
        self.check(num_workers)
        drawn = self._draw(num_patterns, num_workers, generator, scheme)
        assert drawn.available.shape == (num_patterns, num_workers)
        return drawn

    @abstractmethod
    def _draw(self, p: int, n: int, generator: torch.Generator, scheme: Any) -> Availability:
        """Draw P patterns over N workers (the parameters are already checked)."""

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


def _first(order: torch.Tensor, count: int) -> torch.Tensor:
    """Mask (P, N) that is True at the first ``count`` entries of each row of ``order``."""
    mask = torch.zeros(order.shape, dtype=torch.bool)
    mask.scatter_(1, order[:, :count], True)
    return mask


class FixedStragglers(StragglerModel):
    """Exactly ``num_stragglers`` of the N workers straggle, chosen uniformly at random."""

    def __init__(self, num_stragglers: int = 0) -> None:
        super().__init__(num_stragglers)

    def _draw(self, p: int, n: int, generator: torch.Generator, scheme: Any) -> Availability:
        order = torch.rand(p, n, generator=generator).argsort(dim=1)
        return Availability(~_first(order, self.num_stragglers))


class BernoulliStragglers(StragglerModel):
    """Each worker straggles independently with probability ``p`` (default S/N).

    A pattern in which every worker straggled is redrawn (the master needs one answer). With ``p``
    given, ``num_stragglers`` is only a label (:attr:`uses_num_stragglers` is False).
    """

    def __init__(self, num_stragglers: int | None = None, p: float | None = None) -> None:
        super().__init__(num_stragglers)
        if p is not None and not (isinstance(p, int | float) and 0.0 <= p < 1.0):
            raise ValueError(f"p must lie in [0, 1), got {p!r}")
        if p is None and num_stragglers is None:
            raise ValueError("p or num_stragglers must be given, got neither")
        self.p = None if p is None else float(p)

    @property
    def uses_num_stragglers(self) -> bool | Literal["expected"]:
        return "expected" if self.p is None else False

    uses_num_stragglers.__doc__ = StragglerModel.uses_num_stragglers.__doc__

    def probability(self, num_workers: int) -> float:
        return self.p if self.p is not None else self.num_stragglers / num_workers

    def _draw(self, p: int, n: int, generator: torch.Generator, scheme: Any) -> Availability:
        prob = self.probability(n)
        available = torch.rand(p, n, generator=generator) >= prob
        empty = ~available.any(dim=1)
        while bool(empty.any()):
            available[empty] = torch.rand(int(empty.sum()), n, generator=generator) >= prob
            empty = ~available.any(dim=1)
        return Availability(available)


class WorstCaseStragglers(StragglerModel):
    """``num_stragglers`` workers adjacent in beta order.

    ``placement="adversarial"`` puts the block where the scheme recovers worst: the offset that
    maximises ``||D_F E - I||_F``, the error of decoding the encoded inputs when f is the identity
    (for schemes whose decoders differ by offset; ties go to the first). ``placement="random"``
    draws the offset uniformly.
    """

    def __init__(self, num_stragglers: int = 0, placement: str = "adversarial") -> None:
        super().__init__(num_stragglers)
        if placement not in ("adversarial", "random"):
            raise ValueError(f"placement must be 'adversarial' or 'random', got {placement!r}")
        self.placement = placement
        self.depends_on_scheme = placement == "adversarial"
        self._worst: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()

    def _blocks(self, n: int) -> torch.Tensor:
        s = self.num_stragglers
        offsets = torch.arange(n - s + 1)
        masks = torch.ones(len(offsets), n, dtype=torch.bool)
        index = offsets[:, None] + torch.arange(s)[None, :]
        masks.scatter_(1, index, False)
        return masks

    def worst_offset(self, scheme: Any) -> int:
        """The offset of the block that maximises the identity-recovery error of ``scheme``."""
        if scheme not in self._worst:
            blocks = self._blocks(scheme.num_workers).numpy()
            decoders = scheme.decoder_matrices(blocks)
            error = decoders @ scheme.encoder_matrix() - np.eye(scheme.num_inputs)
            self._worst[scheme] = int(np.argmax(np.sum(error**2, axis=(1, 2))))
        return self._worst[scheme]

    def _draw(self, p: int, n: int, generator: torch.Generator, scheme: Any) -> Availability:
        blocks = self._blocks(n)
        if self.placement == "random" or scheme is None:
            if self.placement == "adversarial":
                raise ValueError("placement='adversarial' needs the scheme, got scheme=None")
            offsets = torch.randint(0, len(blocks), (p,), generator=generator)
        else:
            offsets = torch.full((p,), self.worst_offset(scheme), dtype=torch.long)
        return Availability(blocks[offsets])


class LatencyStragglers(StragglerModel):
    """Per-worker response times; the first ``N - S`` answers, or those before ``deadline``.

    Parameters
    ----------
    num_stragglers : int, optional
        S: keep the N - S fastest workers. With a ``deadline`` too, S is only a label (the
        deadline decides, :attr:`uses_num_stragglers` is False). At least one of the two.
    deadline : float, optional
        Keep the workers whose time is at most the deadline (at least the fastest one).
    distribution : {"shifted_exponential", "pareto"}
        ``shift + Exp(rate)``, or Pareto with ``scale`` (minimum) and ``shape``.
    shift, rate, scale, shape : float
        Parameters of the distribution (times in milliseconds, say).
    """

    def __init__(
        self,
        num_stragglers: int | None = None,
        deadline: float | None = None,
        distribution: str = "shifted_exponential",
        shift: float = 1.0,
        rate: float = 1.0,
        scale: float = 1.0,
        shape: float = 2.0,
    ) -> None:
        if num_stragglers is None and deadline is None:
            raise ValueError("num_stragglers or deadline must be given, got neither")
        super().__init__(num_stragglers)
        if distribution not in ("shifted_exponential", "pareto"):
            raise ValueError(
                f"distribution must be 'shifted_exponential' or 'pareto', got {distribution!r}"
            )
        for name, value in (("rate", rate), ("scale", scale), ("shape", shape)):
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if not (isinstance(shift, int | float) and math.isfinite(shift) and shift >= 0):
            raise ValueError(f"shift must be a finite number >= 0, got {shift!r}")
        if deadline is not None and not (isinstance(deadline, int | float) and deadline > 0):
            raise ValueError(f"deadline must be a number > 0, got {deadline!r}")
        self.deadline = None if deadline is None else float(deadline)
        self.distribution = distribution
        self.shift, self.rate, self.scale, self.shape = shift, rate, scale, shape

    @property
    def uses_num_stragglers(self) -> bool | Literal["expected"]:
        return self.deadline is None

    uses_num_stragglers.__doc__ = StragglerModel.uses_num_stragglers.__doc__

    def times(self, p: int, n: int, generator: torch.Generator) -> torch.Tensor:
        """Response times (P, N), float64."""
        u = torch.rand(p, n, generator=generator, dtype=torch.float64).clamp_min(1e-300)
        if self.distribution == "shifted_exponential":
            return self.shift - torch.log(u) / self.rate
        return self.scale * u.pow(-1.0 / self.shape)  # inverse CDF of Pareto(scale, shape)

    def _draw(self, p: int, n: int, generator: torch.Generator, scheme: Any) -> Availability:
        times = self.times(p, n, generator)
        if self.deadline is None:
            order = times.argsort(dim=1)
            return Availability(_first(order, n - self.num_stragglers), times)
        available = times <= self.deadline
        fastest = times.argmin(dim=1)
        available[torch.arange(p), fastest] = True
        return Availability(available, times)
