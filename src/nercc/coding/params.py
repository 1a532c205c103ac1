"""What a coding scheme declares about its tunable parameters, so that evaluation, tuning, reports,
serving and the config checks know a scheme only through its declaration.

Each scheme class lists its parameters in ``CodingScheme.tunables``, one :class:`Tunable` each:
the side of the code it sets, the values it accepts (numbers in a range, and words such as
``lam_dec="gcv"``, each a :class:`Choice`), what a search tries by default, which other parameter
it is another way to give (NeRCC's ``df_enc`` for ``lam_enc``), whether a run may calibrate it
(``auto``, a request handled outside the coding core) and whether the value a pattern is decoded
with changes from pattern to pattern.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = ["CODE_SIZES", "Choice", "PerPattern", "Side", "Tunable"]

#: The side of the code a parameter sets: the encoder, the decoder, or both (one value for both).
Side = Literal["encoder", "decoder", "both"]

#: Whether the value a pattern is decoded with changes from pattern to pattern: ``"never"`` (fixed
#: for the scheme), ``"always"``, or ``"unless_fixed"`` (unless the scheme's
#: :meth:`~nercc.coding.CodingScheme.params` hold it as a number: NeRCC's ``lam_dec`` is fixed
#: when given as a number, chosen per pattern with ``"gcv"`` or ``df_dec``).
PerPattern = Literal["never", "always", "unless_fixed"]

#: The code sizes a bound may name instead of a number (the scheme's argument of that name).
CODE_SIZES = ("num_inputs", "num_workers")


@dataclass(frozen=True)
class Choice:
    """A word a parameter accepts besides numbers.

    Attributes
    ----------
    value : str
        The word (``"gcv"``).
    meaning : str
        What it does, one line (``"chosen per pattern by cross-validation on the answers"``).
    in_grid : bool
        Whether it may stand in a list beside numbers (a grid point of its own).
    from_outputs : bool
        Whether decoding then depends on the workers' outputs, so that the scheme has no decoder
        matrix per pattern (``decoder_matrix`` refuses; a placement that attacks decoder matrices
        cannot be used).
    """

    value: str
    meaning: str
    in_grid: bool = True
    from_outputs: bool = False


@dataclass(frozen=True)
class Tunable:
    """One tunable parameter of a scheme: a keyword argument of its constructor.

    Attributes
    ----------
    name : str
        The argument's name (``lam_enc``).
    side : {"encoder", "decoder", "both"}
        The side of the code it sets.
    meaning : str
        What it is, one line (for messages and help).
    low, high : float or str
        The numbers a config may give lie between these; ``high`` (or ``low``) may name a code
        size, ``"num_inputs"`` or ``"num_workers"`` (:data:`CODE_SIZES`), the scheme's argument
        of that name. The scheme may refuse numbers within them that its sites cannot carry
        (a lambda past :func:`nercc.coding.lam_bound`: build it to be sure), and may take some
        beyond them (NeRCC reads a df_enc above K as interpolation).
    low_open, high_open : bool
        Whether ``low`` (``high``) itself is excluded.
    integer : bool
        Whether only integers are accepted (an integral float such as ``2.0`` included).
    log : bool
        Whether a search spreads its values on a log scale.
    search : tuple of (low, high), optional
        The range a search draws from (Optuna); None where the parameter is not searched.
    grid : tuple of numbers
        The values a tuning grid tries when none are given; empty where it is not tuned.
    alternative_of : str, optional
        The parameter this one is another way to give (``df_enc``: ``lam_enc``): the two set
        one *setting*, named by that parameter, and at most one of them is given.
    choices : tuple of Choice
        The words it accepts besides numbers.
    auto : bool
        Whether a run may calibrate it (the value ``"auto"``, handled outside the coding core).
    auto_candidates : tuple of numbers
        The values a calibration tries, where they are fixed numbers; empty where the scheme
        computes them from its code (:meth:`~nercc.coding.CodingScheme.auto_candidates` gives
        them in every case).
    per_pattern : {"never", "always", "unless_fixed"}
        Whether the value a pattern is decoded with changes from pattern to pattern
        (:meth:`varies`).
    """

    name: str
    side: Side
    meaning: str
    low: float | str = 0.0
    high: float | str = math.inf
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    log: bool = False
    search: tuple[float, float] | None = None
    grid: tuple[float, ...] = ()
    alternative_of: str | None = None
    choices: tuple[Choice, ...] = ()
    auto: bool = False
    auto_candidates: tuple[float, ...] = ()
    per_pattern: PerPattern = "never"

    def __post_init__(self) -> None:
        if self.side not in ("encoder", "decoder", "both"):
            raise ValueError(f"side must be encoder, decoder or both, got {self.side!r}")
        if self.per_pattern not in ("never", "always", "unless_fixed"):
            raise ValueError(
                f"per_pattern must be never, always or unless_fixed, got {self.per_pattern!r}"
            )
        for bound in (self.low, self.high):
            if isinstance(bound, str) and bound not in CODE_SIZES:
                raise ValueError(f"a bound must be a number or one of {CODE_SIZES}, got {bound!r}")

    @property
    def setting(self) -> str:
        """The setting this parameter gives: the parameter it is an alternative of, else its own
        name (``df_enc`` and ``lam_enc``: ``lam_enc``)."""
        return self.alternative_of or self.name

    def limits(
        self, num_inputs: int | None = None, num_workers: int | None = None
    ) -> tuple[float, float]:
        """Return ``(low, high)`` as numbers, a code size replaced by its value.

        Parameters
        ----------
        num_inputs, num_workers : int, optional
            The code's K and N, needed where a bound names them.

        Returns
        -------
        tuple of float
        """
        sizes = {"num_inputs": num_inputs, "num_workers": num_workers}

        def resolve(bound: float | str) -> float:
            if isinstance(bound, str):
                value = sizes[bound]
                if value is None:
                    raise ValueError(f"{self.name}: its bound {bound} needs {bound}=, got None")
                return float(value)
            return float(bound)

        return resolve(self.low), resolve(self.high)

    def choice(self, value: object) -> Choice | None:
        """Return the :class:`Choice` of the word ``value``, or None where it is not one."""
        if isinstance(value, str):
            for choice in self.choices:
                if choice.value == value:
                    return choice
        return None

    def accepts(
        self, value: object, num_inputs: int | None = None, num_workers: int | None = None
    ) -> bool:
        """Return whether one value (not a list) is a number in range, or one of the words.

        ``"auto"`` is not among them: whether it may be asked for is :attr:`auto`. A number in
        range may still be refused by a scheme whose sites cannot carry it; building the scheme
        is the final check.

        Parameters
        ----------
        value : object
        num_inputs, num_workers : int, optional
            The code's K and N, needed where a bound names them.
        """
        if isinstance(value, str):
            return self.choice(value) is not None
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        number = float(value)
        if not math.isfinite(number):
            return False
        if self.integer and not number.is_integer():
            return False
        low, high = self.limits(num_inputs, num_workers)
        above = number > low if self.low_open else number >= low
        below = number < high if self.high_open else number <= high
        return above and below

    def varies(self, settings: Mapping[str, object]) -> bool:
        """Return whether the value a pattern is decoded with changes from pattern to pattern,
        for a scheme whose fixed settings are ``settings``
        (:meth:`~nercc.coding.CodingScheme.params`). Decided by the settings, not by values, so
        that a run's result columns depend on its config only."""
        if self.per_pattern == "always":
            return True
        return self.per_pattern == "unless_fixed" and self.name not in settings
