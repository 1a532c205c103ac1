"""Adversary models: which answering workers are Byzantine, and what they answer instead.

An adversary takes the workers' outputs of P patterns, ``outputs`` (P, N, *mid, C) (C output
coordinates, e.g. logits; ``mid`` e.g. several encoders' outputs side by side, possibly absent),
the answering workers ``available`` (P, N) and a count A, and returns new outputs in which
exactly A answering workers per pattern answer adversarially (:class:`Attack`). A is passed to
:meth:`Adversary.attack` (it comes from the ``adversaries`` list, swept like the S list).

- :class:`NoAdversary` (``none``): every answer is honest (A must be 0).
- :class:`GaussianAdversary` (``gaussian``): answer + ``scale`` * sigma * N(0, 1) per coordinate.
- :class:`SignFlipAdversary` (``sign_flip``): answer -> -``scale`` * answer.
- :class:`ConstantAdversary` (``constant``): the fixed vector ``value`` * e_``target_class``.
- :class:`LabelFlipAdversary` (``label_flip``): the answer with its largest coordinate swapped
  with a random other one (realistic logits of another class).
- :class:`TargetedAdversary` (``targeted``): the push that moves the plain decoded estimate of
  one input (drawn per pattern) from its top class towards its runner-up the most.

sigma is the standard deviation of a pattern's answers: per pattern and per ``mid`` index, over
that pattern's answering workers and the C coordinates (population form, ddof 0). Every random
draw is made on the caller's CPU generator in float64, shaped (P, N), (P, N, C) or (P,), and
broadcast over ``mid``: attacking a stack of E encoders' outputs gives, slice by slice, what
attacking each slice alone gives. The draws, in order: the target inputs (targeted), the
placement (``placement="random"``), then the kind's own draw (gaussian: (P, N, C) normals;
label_flip: (P, N, C) uniforms). A = 0 draws nothing.

Placement: ``"random"`` picks the A workers uniformly among each pattern's answering workers;
``"adversarial"`` picks the A answering workers with the largest decoder column norms
``||D[:, n]||`` (the plain decoder ``D = scheme.decoder_matrices(available)``, (P, K, N)): those
whose answers weigh most in the estimates (targeted: the largest ``|D[k, n]|`` of its target
input k). Ties go to the lower worker index.

What each model accepts is declared on its class (``settings``, :class:`nercc.stragglers.Setting`)
for the config checks; this module imports torch only when it attacks.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from nercc.stragglers import Setting

if TYPE_CHECKING:
    import torch

__all__ = [
    "ADVERSARIES",
    "Adversary",
    "Attack",
    "ConstantAdversary",
    "GaussianAdversary",
    "LabelFlipAdversary",
    "NoAdversary",
    "SignFlipAdversary",
    "TargetedAdversary",
]

PLACEMENT = Setting("placement", "random", options=("random", "adversarial"))


@dataclass
class Attack:
    """The attacked outputs of P patterns.

    Attributes
    ----------
    outputs : torch.Tensor
        (P, N, *mid, C), the same shape, dtype and device as the outputs attacked (a new tensor).
    adversarial : numpy.ndarray
        (P, N) bool, True at the A adversarial workers of each pattern (all answering).
    targets : numpy.ndarray or None
        (P,) int64, the input each pattern's targeted attack aims at (``targeted`` only).
    """

    outputs: torch.Tensor
    adversarial: np.ndarray
    targets: np.ndarray | None = None


def _check_count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise ValueError(f"num_adversaries must be an integer >= 0, got {value!r}")
    return int(value)


class Adversary(ABC):
    """Replaces the answers of A answering workers per pattern. Subclasses implement
    :meth:`_corrupt`.

    Parameters
    ----------
    placement : {"random", "adversarial"}
        Where the A adversaries sit among the answering workers: uniformly at random, or at the
        workers whose answers weigh most in the scheme's plain decoder (see the module's text).
    """

    #: The model's name in configs and result rows (``adversary=<kind>``).
    kind: ClassVar[str]
    #: What the model accepts (the config keys below ``adversary``), in constructor order.
    settings: ClassVar[tuple[Setting, ...]] = (PLACEMENT,)

    def __init__(self, placement: str = "random") -> None:
        PLACEMENT.check(placement)
        self.placement = placement

    @property
    def depends_on_scheme(self) -> bool:
        """Whether the attack depends on the scheme decoding it (then made per scheme): True
        for the targeted model and for ``placement="adversarial"``."""
        return self.placement == "adversarial"

    def describe(self) -> dict[str, str]:
        """The columns of a result row: ``adversary`` (the kind) and ``adversary_placement``."""
        return {"adversary": self.kind, "adversary_placement": self.placement}

    def attack(
        self,
        outputs: torch.Tensor,
        available: Any,
        num_adversaries: int,
        generator: torch.Generator,
        scheme: Any = None,
    ) -> Attack:
        """Return ``outputs`` with A answering workers per pattern answering adversarially.

        Parameters
        ----------
        outputs : torch.Tensor
            (P, N, *mid, C) floating, the workers' answers; rows of stragglers are ignored (they
            may hold anything, NaN included) and come back unchanged. Never modified.
        available : numpy.ndarray of bool
            (P, N), True at the answering workers.
        num_adversaries : int
            A >= 0, the adversaries per pattern; at most the smallest answer count.
        generator : torch.Generator
            A CPU generator, the source of every random draw.
        scheme : CodingScheme, optional
            The scheme decoding the answers (:meth:`CodingScheme.decoder_matrices`); needed by
            ``placement="adversarial"`` and by the targeted model.

        Returns
        -------
        Attack
            The new outputs and the (P, N) adversary mask (and the targets, for targeted).

        Raises
        ------
        ValueError
            For bad arguments, A larger than some pattern's answer count, A > 0 without an
            adversary kind (:class:`NoAdversary`), or a scheme without decoder matrices where
            they are needed.
        """
        import torch

        mask = self._check(outputs, available, generator)
        count = _check_count(num_adversaries)
        if count == 0:
            return Attack(outputs.clone(), np.zeros(mask.shape, dtype=bool))
        self._refuse_some(count)
        if mask.shape[0] == 0:  # no pattern: nothing to attack
            return Attack(outputs.clone(), np.zeros(mask.shape, dtype=bool))
        smallest = int(mask.sum(axis=1).min())
        if count > smallest:
            raise ValueError(
                f"num_adversaries must be at most the smallest answer count of a pattern, "
                f"{smallest}, got {count}"
            )
        shape = tuple(outputs.shape)
        p, n, c = shape[0], shape[1], shape[-1]
        flat = outputs.reshape(p, n, -1, c)  # (P, N, M, C), M the mid dims together
        answering = torch.as_tensor(mask, device=outputs.device)[:, :, None, None]
        answers = torch.where(
            answering, flat, torch.zeros((), dtype=flat.dtype, device=flat.device)
        )
        targets = self._targets(p, scheme, generator)
        adversarial = self._place(mask, count, generator, scheme, targets)
        corrupted = self._corrupt(flat, answers, answering, mask, generator, scheme, targets)
        chosen = torch.as_tensor(adversarial, device=outputs.device)[:, :, None, None]
        attacked = torch.where(chosen, corrupted, flat).reshape(shape)
        return Attack(attacked, adversarial, targets)

    # -- pieces ---------------------------------------------------------------------------------
    def _refuse_some(self, count: int) -> None:
        """Raise where the model cannot place any adversary (only :class:`NoAdversary`)."""
        return None

    def _targets(self, p: int, scheme: Any, generator: torch.Generator) -> np.ndarray | None:
        """The input each pattern aims at (targeted only; drawn before the placement)."""
        return None

    def _place(
        self,
        mask: np.ndarray,
        count: int,
        generator: torch.Generator,
        scheme: Any,
        targets: np.ndarray | None,
    ) -> np.ndarray:
        """The (P, N) mask of the ``count`` adversaries of each pattern, all answering."""
        import torch

        p, n = mask.shape
        if self.placement == "random":
            keys = torch.rand(p, n, generator=generator, dtype=torch.float64).numpy()
        else:
            weights = _decoders(scheme, mask, f"placement='adversarial' of {self.kind}")
            if targets is None:
                keys = -np.linalg.norm(weights, axis=1)  # (P, N) column norms
            else:
                keys = -np.abs(weights[np.arange(p), targets])  # (P, N) |D[k, n]|
        keys = np.where(mask, keys, np.inf)
        order = np.argsort(keys, axis=1, kind="stable")[:, :count]
        chosen = np.zeros((p, n), dtype=bool)
        np.put_along_axis(chosen, order, True, axis=1)
        return chosen

    @abstractmethod
    def _corrupt(
        self,
        flat: torch.Tensor,
        answers: torch.Tensor,
        answering: torch.Tensor,
        mask: np.ndarray,
        generator: torch.Generator,
        scheme: Any,
        targets: np.ndarray | None,
    ) -> torch.Tensor:
        """The adversarial answers of every worker, (P, N, M, C) (only the chosen are used).

        ``flat`` holds the outputs (P, N, M, C), ``answers`` the same with the stragglers' rows
        zeroed, ``answering`` the (P, N, 1, 1) bool tensor of the answering workers.
        """

    def _check(self, outputs: Any, available: Any, generator: Any) -> np.ndarray:
        import torch

        if not isinstance(outputs, torch.Tensor) or not outputs.is_floating_point():
            is_tensor = isinstance(outputs, torch.Tensor)
            got = f"dtype {outputs.dtype}" if is_tensor else f"a {type(outputs).__name__}"
            raise ValueError(f"outputs must be a floating torch tensor, got {got}")
        if outputs.ndim < 3:
            raise ValueError(
                f"outputs must have shape (P, N, ..., C), got shape {tuple(outputs.shape)}"
            )
        if isinstance(available, torch.Tensor):
            available = available.detach().cpu().numpy()
        mask = np.asarray(available)
        if mask.dtype != np.bool_ or mask.shape != tuple(outputs.shape[:2]):
            raise ValueError(
                f"available must be a bool array of shape {tuple(outputs.shape[:2])} (P, N of "
                f"outputs), got {mask.dtype} of shape {mask.shape}"
            )
        if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
            raise ValueError(f"generator must be a CPU torch.Generator, got {generator!r}")
        return mask

    def __repr__(self) -> str:
        values = ", ".join(f"{s.name}={getattr(self, s.name)!r}" for s in self.settings)
        return f"{type(self).__name__}({values})"


def _decoders(scheme: Any, mask: np.ndarray, who: str) -> np.ndarray:
    """The plain decoders (P, K, N) of ``scheme`` for the patterns ``mask``."""
    if scheme is None:
        raise ValueError(f"{who} needs the scheme's decoder matrices, got scheme=None")
    try:
        return np.asarray(scheme.decoder_matrices(mask), dtype=np.float64)
    except ValueError as error:
        raise ValueError(
            f"{who} needs decoder matrices, and {scheme!r} has none ({error})"
        ) from error


def _slice_sums(values: torch.Tensor) -> torch.Tensor:
    """Sums (P, 1, M, 1) of (P, N, M, C) values over N and C, each mid slice summed as one
    contiguous row, so that a slice alone sums in the same order as inside a stack."""
    p, n, m, c = values.shape
    rows = values.permute(0, 2, 1, 3).contiguous().reshape(p, m, n * c)
    return rows.sum(dim=-1)[:, None, :, None]


def _sigma(answers: torch.Tensor, answering: torch.Tensor) -> torch.Tensor:
    """The std (ddof 0) of each pattern's answers per mid index: (P, 1, M, 1)."""
    import torch

    count = answering.sum(dim=1, keepdim=True) * answers.shape[-1]
    mean = _slice_sums(answers) / count
    spread = torch.where(answering, answers - mean, answers.new_zeros(()))
    return (_slice_sums(spread.square()) / count).sqrt()


def _like(draw: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
    """A CPU float64 draw (P, N, C) as (P, N, 1, C) in the dtype and device of ``flat``."""
    return draw[:, :, None, :].to(dtype=flat.dtype, device=flat.device)


class NoAdversary(Adversary):
    """Every answer is honest: A must be 0 (the default ``adversary=none``)."""

    kind = "none"

    @property
    def depends_on_scheme(self) -> bool:
        return False

    depends_on_scheme.__doc__ = Adversary.depends_on_scheme.__doc__

    def describe(self) -> dict[str, str | None]:
        """``adversary`` none and no placement: nobody is placed."""
        return {"adversary": self.kind, "adversary_placement": None}

    def _refuse_some(self, count: int) -> None:
        kinds = ", ".join(k for k in ADVERSARIES if k != "none")
        raise ValueError(
            f"num_adversaries must be 0 without an adversary (NoAdversary answers honestly), "
            f"got {count}; choose an adversary kind ({kinds})"
        )

    def _corrupt(self, flat, answers, answering, mask, generator, scheme, targets):
        raise AssertionError("unreachable: NoAdversary refuses A > 0")


class _Scaled(Adversary):
    """An adversary of one size setting, ``scale`` (its first declared setting says its range)."""

    def __init__(self, scale: float = 1.0, placement: str = "random") -> None:
        self.settings[0].check(scale)
        super().__init__(placement)
        self.scale = float(scale)


class GaussianAdversary(_Scaled):
    """Each adversarial answer is ``answer + scale * sigma * z``, z ~ N(0, 1) per coordinate.

    Parameters
    ----------
    scale : float
        > 0, the noise's std in units of sigma (the std of the pattern's answers).
    placement : {"random", "adversarial"}
    """

    kind = "gaussian"
    settings = (Setting("scale", 1.0, low=0.0, low_open=True), PLACEMENT)

    def _corrupt(self, flat, answers, answering, mask, generator, scheme, targets):
        import torch

        p, n, _, c = flat.shape
        noise = _like(torch.randn(p, n, c, generator=generator, dtype=torch.float64), flat)
        return flat + self.scale * _sigma(answers, answering) * noise


class SignFlipAdversary(_Scaled):
    """Each adversarial answer is ``-scale * answer``.

    Parameters
    ----------
    scale : float
        >= 0 (1: the answer negated; 0: an all-zero answer).
    placement : {"random", "adversarial"}
    """

    kind = "sign_flip"
    settings = (Setting("scale", 1.0, low=0.0), PLACEMENT)

    def _corrupt(self, flat, answers, answering, mask, generator, scheme, targets):
        return -self.scale * flat


class ConstantAdversary(Adversary):
    """Each adversarial answer is the fixed vector ``value * e_target_class``.

    Parameters
    ----------
    value : float
        A finite number, the vote for ``target_class``.
    target_class : int
        >= 0 and below C, the coordinate that gets ``value`` (the others get 0).
    placement : {"random", "adversarial"}
    """

    kind = "constant"
    settings = (Setting("value", 100.0), Setting("target_class", 0, low=0.0), PLACEMENT)

    def __init__(
        self, value: float = 100.0, target_class: int = 0, placement: str = "random"
    ) -> None:
        self.settings[0].check(value)
        if isinstance(target_class, bool) or not isinstance(target_class, int | np.integer):
            raise ValueError(f"target_class must be an integer >= 0, got {target_class!r}")
        self.settings[1].check(target_class)
        super().__init__(placement)
        self.value = float(value)
        self.target_class = int(target_class)

    def _corrupt(self, flat, answers, answering, mask, generator, scheme, targets):
        import torch

        c = flat.shape[-1]
        if self.target_class >= c:
            raise ValueError(
                f"target_class must be below the C={c} output coordinates, got {self.target_class}"
            )
        vector = torch.zeros(c, dtype=flat.dtype, device=flat.device)
        vector[self.target_class] = self.value
        return vector.expand(flat.shape)


def _need_two(kind: str, c: int) -> None:
    if c < 2:
        raise ValueError(f"{kind} needs outputs with C >= 2 coordinates, got C={c}")


class LabelFlipAdversary(Adversary):
    """Each adversarial answer swaps its largest coordinate with a random other one: the same
    values (realistic-looking logits), the top one on another class.

    The other coordinate is the largest of (P, N, C) uniforms among the coordinates that are
    not the answer's top one (uniform over those C - 1).

    Parameters
    ----------
    placement : {"random", "adversarial"}
    """

    kind = "label_flip"

    def _corrupt(self, flat, answers, answering, mask, generator, scheme, targets):
        import torch

        p, n, m, c = flat.shape
        _need_two(self.kind, c)
        top = answers.argmax(dim=-1, keepdim=True)  # (P, N, M, 1)
        u = torch.rand(p, n, c, generator=generator, dtype=torch.float64)
        u = u.to(flat.device)[:, :, None, :].expand(p, n, m, c)
        other = u.scatter(-1, top, -1.0).argmax(dim=-1, keepdim=True)
        swapped = flat.scatter(-1, top, flat.gather(-1, other))
        return swapped.scatter(-1, other, flat.gather(-1, top))


class TargetedAdversary(_Scaled):
    """Moves the plain decoded estimate of one input per pattern from its top class to its
    runner-up as far as a per-answer budget allows.

    A target input k is drawn per pattern (uniformly among the K). With the plain decoder
    ``D = scheme.decoder_matrices(available)`` (P, K, N), the estimate of input k is
    ``sum_n D[k, n] y_n`` (over the answering n); t is its top class and r its runner-up (per
    mid index). Each adversarial answer becomes::

        y_n + sign(D[k, n]) * scale * sigma * sqrt(C) * (e_r - e_t) / sqrt(2)

    a push of norm ``scale * sigma * sqrt(C)`` (the expected norm of the Gaussian adversary's
    noise at the same scale), every one of which lowers the margin of t over r. With
    ``placement="adversarial"`` the adversaries are the answering workers with the largest
    ``|D[k, n]|``, which maximises that shift for the budget.

    Parameters
    ----------
    scale : float
        > 0, the push's size in units of ``sigma * sqrt(C)``.
    placement : {"random", "adversarial"}
    """

    kind = "targeted"
    settings = (Setting("scale", 1.0, low=0.0, low_open=True), PLACEMENT)

    @property
    def depends_on_scheme(self) -> bool:
        return True

    depends_on_scheme.__doc__ = Adversary.depends_on_scheme.__doc__

    def _targets(self, p: int, scheme: Any, generator: torch.Generator) -> np.ndarray:
        import torch

        if scheme is None:
            raise ValueError("targeted needs the scheme's decoder matrices, got scheme=None")
        k = int(scheme.num_inputs)
        return torch.randint(0, k, (p,), generator=generator).numpy().astype(np.int64)

    def _corrupt(self, flat, answers, answering, mask, generator, scheme, targets):
        import torch

        p, _, _, c = flat.shape
        _need_two(self.kind, c)
        decoders = _decoders(scheme, mask, "targeted")
        weights = torch.as_tensor(decoders[np.arange(p), targets], device=flat.device)
        weights = weights.to(flat.dtype)  # (P, N): D[k, n] of each pattern's target k
        terms = (weights[:, :, None, None] * answers).permute(0, 2, 3, 1).contiguous()
        estimate = terms.sum(dim=-1)  # (P, M, C), each a contiguous sum over the N workers
        ranked = estimate.topk(2, dim=-1).indices  # (P, M, 2): t, r
        direction = torch.zeros_like(estimate)
        direction.scatter_(-1, ranked[..., 1:], 1.0)
        direction.scatter_(-1, ranked[..., :1], -1.0)
        size = self.scale * math.sqrt(c) / math.sqrt(2.0) * _sigma(answers, answering)
        push = weights.sign()[:, :, None, None] * size * direction[:, None]
        return flat + push


#: Every adversary model by its kind, in the order configs list them.
ADVERSARIES: dict[str, type[Adversary]] = {
    cls.kind: cls
    for cls in (
        NoAdversary,
        GaussianAdversary,
        SignFlipAdversary,
        ConstantAdversary,
        LabelFlipAdversary,
        TargetedAdversary,
    )
}
