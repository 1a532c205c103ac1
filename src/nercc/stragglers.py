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

The latency model is two pieces that the serving layer uses apart: :class:`DelayModel`, the
delay each worker takes (a worker sleeps it), and :class:`WaitPolicy`, when the master stops
waiting (the frontend waits by it). :class:`LatencyStragglers` composes them for the offline
evaluation: ``wait.keep(delays.times(...))``.

A pattern always keeps at least one worker: with a deadline the master waits for the first answer.

What each model accepts is declared on its class: ``settings``, a tuple of :class:`Setting`
(name, default, range or choices, and whether giving it makes S a label only). The config checks
(:mod:`nercc.runtime.checks`) read those declarations; this module imports torch only when it
draws, so that reading them costs no torch import.
"""

from __future__ import annotations

import math
import weakref
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = [
    "Availability",
    "BernoulliStragglers",
    "DelayModel",
    "FixedStragglers",
    "LatencyStragglers",
    "Setting",
    "StragglerModel",
    "WaitPolicy",
    "WorstCaseStragglers",
    "several_s_refusal",
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


def _check_served(num_stragglers: int | None, num_workers: int) -> None:
    """Refuse S > N - 1: at least one worker must answer."""
    if num_stragglers is not None and num_stragglers > num_workers - 1:
        raise ValueError(
            f"num_stragglers must be at most num_workers - 1 = {num_workers - 1} "
            f"(at least one worker must answer), got {num_stragglers}"
        )


def _check_count(value: Any, name: str, low: int) -> int:
    """``value`` as an int if it is an integer >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _is_real(value: Any) -> bool:
    """A real number (not a bool), possibly infinite or NaN."""
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _is_finite(value: Any) -> bool:
    return _is_real(value) and math.isfinite(value)


@dataclass(frozen=True)
class Setting:
    """One setting a model accepts, declared on its class (``settings``) and read by the checks.

    Parameters
    ----------
    name : str
        The constructor argument (and the config key below the model's node).
    default : Any
        Its value when not given.
    options : tuple, optional
        The values allowed (a choice). Without options the setting is a finite number in the
        range given by ``low`` and ``high`` (each end open where ``low_open`` / ``high_open``).
    low, high : float, optional
        The ends of the range (None: unbounded).
    low_open, high_open : bool
        Whether the end itself is refused.
    optional : bool
        None is allowed (the setting is off).
    ignores_s : str, optional
        Set where giving the setting (not None) makes S a label only, the patterns the same for
        every S: the words naming it in the refusal of several S (e.g. ``"a deadline"``).
    fix : str
        What to do instead of several S; ``{key}`` stands for the setting's config key.
    """

    name: str
    default: Any = None
    options: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    optional: bool = False
    ignores_s: str | None = None
    fix: str = "give one S"

    def refusal(self, value: Any) -> str | None:
        """What is wrong with ``value`` (``"must be ..."``), or None where it is accepted."""
        if value is None and self.optional:
            return None
        null = "null or " if self.optional else ""
        if self.options:
            if isinstance(value, bool) or value not in self.options:
                shown = [repr(o) for o in self.options]
                listed = f"{', '.join(shown[:-1])} or {shown[-1]}" if len(shown) > 1 else shown[0]
                return f"must be {null}{listed}"
            return None
        ok = _is_finite(value)
        if ok and self.low is not None:
            ok = value > self.low if self.low_open else value >= self.low
        if ok and self.high is not None:
            ok = value < self.high if self.high_open else value <= self.high
        if ok:
            return None
        low, high = self.low, self.high
        if low is not None and high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            interval = f" in {left}{low:g}, {high:g}{right}"
        elif low is not None:
            interval = f" {'>' if self.low_open else '>='} {low:g}"
        elif high is not None:
            interval = f" {'<' if self.high_open else '<='} {high:g}"
        else:
            interval = ""
        return f"must be {null}a finite number{interval}"

    def check(self, value: Any) -> None:
        """Raise ``ValueError`` naming the setting and ``value`` unless it is accepted."""
        problem = self.refusal(value)
        if problem is not None:
            raise ValueError(f"{self.name} {problem}, got {value!r}")


def _uses_s(model: Any) -> bool:
    """False where a declared setting that makes S a label is given (see :class:`Setting`)."""
    return not any(
        s.ignores_s is not None and getattr(model, s.name) is not None for s in model.settings
    )


def several_s_refusal(what: str, stragglers: Sequence[int], fix: str = "give one S") -> str | None:
    """Why a model that ignores S refuses the S list ``stragglers``; None for a single S.

    The one rule for every model whose patterns do not depend on S (``uses_num_stragglers``
    False: a Bernoulli ``p``, a latency ``deadline``): its rows for several S would be one
    experiment under several labels.

    Parameters
    ----------
    what : str
        The model or the setting that ignores S, as the reason names it (``"a deadline"``).
    stragglers : sequence of int
        The S list asked for.
    fix : str
        What to do instead.
    """
    if len({int(s) for s in stragglers}) < 2:
        return None
    return (
        f"{what} ignores S, so the rows of stragglers={list(stragglers)} would be the same run "
        f"under different labels; {fix}"
    )


class StragglerModel(ABC):
    """Draws availability patterns. Subclasses implement :meth:`_draw`."""

    #: Whether the patterns depend on the scheme being attacked (then drawn per scheme).
    depends_on_scheme = False
    #: What the model accepts besides ``num_stragglers`` (S comes from the S list).
    settings: ClassVar[tuple[Setting, ...]] = ()

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
        with ``if not model.uses_num_stragglers`` (:func:`several_s_refusal`). Derived from the
        declared :attr:`settings` (``Setting.ignores_s``).
        """
        return _uses_s(self)

    def check(self, num_workers: int) -> None:
        """Raise ``ValueError`` if the model cannot serve ``num_workers`` workers."""
        _check_served(self.num_stragglers, num_workers)

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
    import torch

    mask = torch.zeros(order.shape, dtype=torch.bool, device=order.device)
    mask.scatter_(1, order[:, :count], True)
    return mask


class FixedStragglers(StragglerModel):
    """Exactly ``num_stragglers`` of the N workers straggle, chosen uniformly at random."""

    def __init__(self, num_stragglers: int = 0) -> None:
        super().__init__(num_stragglers)

    def _draw(self, p: int, n: int, generator: torch.Generator, scheme: Any) -> Availability:
        import torch

        order = torch.rand(p, n, generator=generator).argsort(dim=1)
        return Availability(~_first(order, self.num_stragglers))


class BernoulliStragglers(StragglerModel):
    """Each worker straggles independently with probability ``p`` (default S/N).

    A pattern in which every worker straggled is redrawn (the master needs one answer). With ``p``
    given, ``num_stragglers`` is only a label (:attr:`uses_num_stragglers` is False).
    """

    settings = (
        Setting("p", None, low=0.0, high=1.0, high_open=True, optional=True,
                ignores_s="a fixed probability",
                fix="give one S or {key}=null (p = S / N, S stragglers in expectation)"),
    )  # fmt: skip

    def __init__(self, num_stragglers: int | None = None, p: float | None = None) -> None:
        super().__init__(num_stragglers)
        self.settings[0].check(p)
        if p is None and num_stragglers is None:
            raise ValueError("p or num_stragglers must be given, got neither")
        self.p = None if p is None else float(p)

    @property
    def uses_num_stragglers(self) -> bool | Literal["expected"]:
        return "expected" if super().uses_num_stragglers else False

    uses_num_stragglers.__doc__ = StragglerModel.uses_num_stragglers.__doc__

    def probability(self, num_workers: int) -> float:
        return self.p if self.p is not None else self.num_stragglers / num_workers

    def _draw(self, p: int, n: int, generator: torch.Generator, scheme: Any) -> Availability:
        import torch

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

    settings = (Setting("placement", "adversarial", options=("adversarial", "random")),)

    def __init__(self, num_stragglers: int = 0, placement: str = "adversarial") -> None:
        super().__init__(num_stragglers)
        self.settings[0].check(placement)
        self.placement = placement
        self.depends_on_scheme = placement == "adversarial"
        self._worst: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()

    def _blocks(self, n: int) -> torch.Tensor:
        import torch

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
        import torch

        blocks = self._blocks(n)
        if self.placement == "random" or scheme is None:
            if self.placement == "adversarial":
                raise ValueError("placement='adversarial' needs the scheme, got scheme=None")
            offsets = torch.randint(0, len(blocks), (p,), generator=generator)
        else:
            offsets = torch.full((p,), self.worst_offset(scheme), dtype=torch.long)
        return Availability(blocks[offsets])


@dataclass(frozen=True)
class DelayModel:
    """Per-worker response delays (milliseconds by convention), a fraction of the workers slower.

    A delay is ``shift + Exp(rate)`` (shifted exponential) or Pareto with minimum ``scale`` and
    tail index ``shape``, both drawn by inverse CDF from one uniform ``u`` per worker::

        shift - log(u) / rate            scale * u ** (-1 / shape)

    The :meth:`slow_count` slow workers then take ``slow_factor`` times as long; and every
    answer, independently, with probability ``slow_probability`` (a passing hiccup rather than a
    slow machine), takes ``slow_factor`` times as long again.

    Parameters
    ----------
    distribution : {"shifted_exponential", "pareto"}
        The delay distribution.
    shift : float
        The least delay of the shifted exponential, >= 0.
    rate : float
        The rate of its exponential part (mean ``shift + 1 / rate``), > 0.
    scale : float
        The least delay of the Pareto distribution, > 0.
    shape : float
        The Pareto tail index, > 0 (the mean is finite for ``shape > 1``).
    slow_fraction : float
        The fraction of the N workers that are slow, in [0, 1).
    slow_factor : float
        How many times slower a slow worker (or a slow answer) is, >= 1.
    slow_probability : float
        The probability, in [0, 1), that an answer is ``slow_factor`` times slower, drawn
        independently per answer (per worker and pattern), on top of the slow workers: a slow
        worker's slow answer takes ``slow_factor ** 2`` times its base delay. The mean delay is
        the base mean times ``1 + slow_probability * (slow_factor - 1)`` (no slow workers).

    Examples
    --------
    Each serving worker sleeps its own delays; a fixed set of machines stays slow:

    >>> delays = DelayModel(shift=1.0, rate=2.0, slow_fraction=0.2)
    >>> g = torch.Generator().manual_seed(0)
    >>> slow = delays.slow_workers(10, g)
    >>> int(slow.sum()), delays.times(5, 10, g, slow=slow).shape
    (2, torch.Size([5, 10]))
    """

    distribution: str = "shifted_exponential"
    shift: float = 1.0
    rate: float = 1.0
    scale: float = 1.0
    shape: float = 2.0
    slow_fraction: float = 0.0
    slow_factor: float = 10.0
    slow_probability: float = 0.0

    #: The settings above, as the checks read them (in the order of the fields).
    settings: ClassVar[tuple[Setting, ...]] = (
        Setting("distribution", "shifted_exponential", options=("shifted_exponential", "pareto")),
        Setting("shift", 1.0, low=0.0),
        Setting("rate", 1.0, low=0.0, low_open=True),
        Setting("scale", 1.0, low=0.0, low_open=True),
        Setting("shape", 2.0, low=0.0, low_open=True),
        Setting("slow_fraction", 0.0, low=0.0, high=1.0, high_open=True),
        Setting("slow_factor", 10.0, low=1.0),
        Setting("slow_probability", 0.0, low=0.0, high=1.0, high_open=True),
    )

    def __post_init__(self) -> None:
        for setting in self.settings:
            setting.check(getattr(self, setting.name))
        for setting in self.settings[1:]:
            object.__setattr__(self, setting.name, float(getattr(self, setting.name)))

    def slow_count(self, n: int) -> int:
        """How many of ``n`` workers are slow: ``slow_fraction * n`` rounded half up.

        That is ``floor(slow_fraction * n + 0.5)``, so 0.25 of 10 workers is 3 and 0.05 of 10
        is 1 (Python's ``round`` would give 2 and 0).
        """
        n = _check_count(n, "n", 1)
        return math.floor(self.slow_fraction * n + 0.5)

    def slow_workers(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """A fixed set of :meth:`slow_count` slow workers, uniformly at random.

        For a serving run in which the same machines stay slow: pass the mask to :meth:`times`.
        Draws nothing from ``generator`` when no worker is slow.

        Parameters
        ----------
        n : int
            N, the number of workers.
        generator : torch.Generator
            The source of randomness (CPU).

        Returns
        -------
        torch.Tensor
            (N,) bool, True at the slow workers.
        """
        import torch

        count = self.slow_count(n)
        if count == 0:
            return torch.zeros(n, dtype=torch.bool)
        order = torch.rand(1, n, generator=generator, dtype=torch.float64).argsort(dim=1)
        return _first(order, count)[0]

    def times(
        self,
        p: int,
        n: int,
        generator: torch.Generator,
        slow: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Response delays of ``n`` workers in ``p`` patterns.

        The base delays use ``p * n`` uniforms from ``generator`` (float64). Then the slow
        workers' delays are multiplied by ``slow_factor``: those ``slow`` names, or, when
        ``slow`` is None, :meth:`slow_count` workers per pattern drawn uniformly from the same
        generator after the base delays (nothing more is drawn when that count is 0). Last,
        with ``slow_probability`` > 0, ``p * n`` more uniforms ``v`` (float64) from the same
        generator: the delays where ``v < slow_probability`` are multiplied by ``slow_factor``
        (again, for a slow worker). With ``slow_probability`` 0 nothing more is drawn.

        Parameters
        ----------
        p : int
            P, the number of patterns (requests), >= 0.
        n : int
            N, the number of workers, >= 1.
        generator : torch.Generator
            The source of randomness (CPU).
        slow : torch.Tensor, optional
            Bool mask (N,) or (P, N) of the slow workers (a serving worker knows whether it is
            slow). Honoured as given, whatever ``slow_fraction`` says.

        Returns
        -------
        torch.Tensor
            (P, N) float64.
        """
        import torch

        p = _check_count(p, "p", 0)
        n = _check_count(n, "n", 1)
        if slow is not None:
            slow = _check_slow(slow, p, n)
        u = torch.rand(p, n, generator=generator, dtype=torch.float64).clamp_min(1e-300)
        if self.distribution == "shifted_exponential":
            times = self.shift - torch.log(u) / self.rate
        else:
            times = self.scale * u.pow(-1.0 / self.shape)  # inverse CDF of Pareto(scale, shape)
        if slow is None:
            count = self.slow_count(n)
            if count > 0:
                order = torch.rand(p, n, generator=generator, dtype=torch.float64).argsort(dim=1)
                slow = _first(order, count)
        if slow is not None:
            times = torch.where(slow.to(times.device), times * self.slow_factor, times)
        if self.slow_probability > 0:
            v = torch.rand(p, n, generator=generator, dtype=torch.float64)
            times = torch.where(v < self.slow_probability, times * self.slow_factor, times)
        return times


def _check_slow(slow: Any, p: int, n: int) -> torch.Tensor:
    """``slow`` as a bool tensor of shape (N,) or (P, N)."""
    import torch

    try:
        mask = torch.as_tensor(slow)
    except (TypeError, ValueError, RuntimeError):
        mask = None
    if mask is None or mask.dtype != torch.bool or tuple(mask.shape) not in ((n,), (p, n)):
        got = f"{mask.dtype} of shape {tuple(mask.shape)}" if mask is not None else repr(slow)
        raise ValueError(f"slow must be a bool mask of shape ({n},) or ({p}, {n}), got {got}")
    return mask


@dataclass(frozen=True)
class WaitPolicy:
    """When the master stops waiting: for the first N - S answers, or until a deadline.

    Parameters
    ----------
    num_stragglers : int, optional
        S: without a deadline, wait for the first N - S answers (S is required then). With a
        ``deadline`` too, S is only a label (:attr:`uses_num_stragglers` is False).
    deadline : float, optional
        Keep every answer that arrives by the deadline (> 0, in the delays' unit), and at least
        the fastest one: with nobody on time the master waits for the first answer.

    Examples
    --------
    >>> times = torch.tensor([[3.0, 1.0, 2.0, 5.0]])
    >>> WaitPolicy(num_stragglers=1).keep(times)
    tensor([[ True,  True,  True, False]])
    >>> WaitPolicy(deadline=0.5).keep(times)
    tensor([[False,  True, False, False]])
    """

    num_stragglers: int | None = None
    deadline: float | None = None

    settings: ClassVar[tuple[Setting, ...]] = (
        Setting("deadline", None, low=0.0, low_open=True, optional=True, ignores_s="a deadline",
                fix="give one S (a label) or no deadline"),
    )  # fmt: skip

    def __post_init__(self) -> None:
        if self.num_stragglers is None and self.deadline is None:
            raise ValueError("num_stragglers or deadline must be given, got neither")
        object.__setattr__(self, "num_stragglers", _check_stragglers(self.num_stragglers))
        self.settings[0].check(self.deadline)
        if self.deadline is not None:
            object.__setattr__(self, "deadline", float(self.deadline))

    @property
    def uses_num_stragglers(self) -> bool:
        """Whether S decides the answers kept (no deadline); see
        :attr:`StragglerModel.uses_num_stragglers`."""
        return _uses_s(self)

    def check(self, n: int) -> None:
        """Raise ``ValueError`` unless ``n`` workers can serve the policy (S <= N - 1)."""
        _check_served(self.num_stragglers, _check_count(n, "n", 1))

    def quorum(self, n: int) -> int:
        """How many answers of ``n`` workers end the wait early.

        N - S without a deadline; N with one (all answers before the deadline end it too).
        """
        self.check(n)
        return n if self.deadline is not None else n - self.num_stragglers

    def keep(self, times: torch.Tensor) -> torch.Tensor:
        """Which answers the master uses, given every worker's response time (offline).

        Without a deadline the first :meth:`quorum` answers by time; with one those whose time
        is at most the deadline, and the fastest answer in every pattern.

        Parameters
        ----------
        times : torch.Tensor
            (P, N) response times.

        Returns
        -------
        torch.Tensor
            (P, N) bool, True at the answers kept.
        """
        import torch

        times = torch.as_tensor(times)
        if times.ndim != 2:
            raise ValueError(f"times must have shape (p, n), got shape {tuple(times.shape)}")
        p, n = times.shape
        self.check(n)
        if self.deadline is None:
            return _first(times.argsort(dim=1), n - self.num_stragglers)
        available = times <= self.deadline
        available[torch.arange(p, device=times.device), times.argmin(dim=1)] = True
        return available


def _part(piece: str, name: str) -> property:
    """A read-only view of ``self.<piece>.<name>``."""
    return property(
        lambda self: getattr(getattr(self, piece), name), doc=f"``self.{piece}.{name}``."
    )


class LatencyStragglers(StragglerModel):
    """Per-worker response times; the first ``N - S`` answers, or those before ``deadline``.

    The composition ``wait.keep(delays.times(...))`` of a :class:`DelayModel` (``delays``) and
    a :class:`WaitPolicy` (``wait``); their parameters read through as attributes.

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
    slow_fraction : float
        A fraction in [0, 1) of the workers, drawn per pattern, is ``slow_factor`` (>= 1) times
        slower (see :meth:`DelayModel.times`).
    slow_factor : float
        How many times slower a slow worker is.
    slow_probability : float
        In [0, 1): each answer, independently, is ``slow_factor`` times slower with this
        probability (see :meth:`DelayModel.times`).
    """

    settings = WaitPolicy.settings + DelayModel.settings

    num_stragglers = _part("wait", "num_stragglers")
    deadline = _part("wait", "deadline")
    distribution = _part("delays", "distribution")
    shift = _part("delays", "shift")
    rate = _part("delays", "rate")
    scale = _part("delays", "scale")
    shape = _part("delays", "shape")
    slow_fraction = _part("delays", "slow_fraction")
    slow_factor = _part("delays", "slow_factor")
    slow_probability = _part("delays", "slow_probability")

    def __init__(
        self,
        num_stragglers: int | None = None,
        deadline: float | None = None,
        distribution: str = "shifted_exponential",
        shift: float = 1.0,
        rate: float = 1.0,
        scale: float = 1.0,
        shape: float = 2.0,
        slow_fraction: float = 0.0,
        slow_factor: float = 10.0,
        slow_probability: float = 0.0,
    ) -> None:
        # S lives in the wait policy (StragglerModel.__init__ would store a second copy).
        self.wait = WaitPolicy(num_stragglers, deadline)
        self.delays = DelayModel(
            distribution, shift, rate, scale, shape, slow_fraction, slow_factor, slow_probability
        )

    def check(self, num_workers: int) -> None:
        """Raise ``ValueError`` if the model cannot serve ``num_workers`` workers."""
        self.wait.check(num_workers)

    def times(self, p: int, n: int, generator: torch.Generator) -> torch.Tensor:
        """Response times (P, N), float64: :meth:`DelayModel.times` of ``delays``."""
        return self.delays.times(p, n, generator)

    def _draw(self, p: int, n: int, generator: torch.Generator, scheme: Any) -> Availability:
        times = self.delays.times(p, n, generator)
        return Availability(self.wait.keep(times), times)

    def __repr__(self) -> str:
        values = {"num_stragglers": self.num_stragglers, "deadline": self.deadline}
        values.update((f.name, getattr(self.delays, f.name)) for f in fields(self.delays))
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in values.items())})"
