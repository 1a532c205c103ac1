"""A scheme under evaluation: its config name, its parameters and where they came from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nercc.coding import CodingScheme
from nercc.utils.instantiate import build_checked

__all__ = ["SPREAD_SUFFIXES", "SchemeVariant", "build_scheme", "has_spread"]

#: The suffixes of the result columns that give a parameter's spread over a row's patterns
#: (``lam_dec_min``, ``lam_dec_max`` beside ``lam_dec``, the median).
SPREAD_SUFFIXES = ("_min", "_max")


def has_spread(name: str, settings: Mapping[str, Any]) -> bool:
    """Whether result rows give the spread of parameter ``name`` over their patterns, for a
    scheme with the fixed settings ``settings`` (:meth:`~nercc.coding.CodingScheme.params`).

    The decoder's parameters that change from one pattern to the next have one: NeRCC's decoder
    df always (a property of each pattern's answering betas, their count and places; a given
    ``df_dec`` too, since patterns with at most df_dec answers are interpolated), and its lambda
    unless it is a fixed number (``lam_dec="gcv"`` and ``df_dec`` choose one per pattern). The
    encoder's are fixed for the scheme. Decided by the settings, not by the values, so that the
    columns of a run depend on its config only.
    """
    return name == "df_dec" or (name == "lam_dec" and name not in settings)


@dataclass(frozen=True, eq=False)
class SchemeVariant:
    """One scheme with fixed parameters, under its config name (``nercc``, ``bacc``, ...).

    ``label`` names its line in tables and plots; ``stragglers``, when set, are the only S at
    which it is evaluated (parameters tuned per S); ``source`` says where its parameters came
    from (``config``, ``default``, ``table:<path>``, ...) and goes into every result row.
    """

    name: str
    scheme: CodingScheme
    label: str = ""
    stragglers: frozenset[int] | None = None
    source: str = "config"

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", self.name)

    @property
    def params(self) -> dict[str, float]:
        """The scheme's tunable parameters (see :meth:`CodingScheme.params`)."""
        return self.scheme.params()

    def runs_at(self, num_stragglers: int) -> bool:
        return self.stragglers is None or num_stragglers in self.stragglers


def build_scheme(name: str, node: Mapping[str, Any], **overrides: Any) -> CodingScheme:
    """Instantiate the ``_target_`` node of ``scheme.<name>`` and check that it is a scheme.

    An argument the scheme refuses raises ``ValueError('scheme.<name>: <reason>')``.
    """
    scheme = build_checked(f"scheme.{name}", node, **overrides)
    if not isinstance(scheme, CodingScheme):
        raise ValueError(f"scheme.{name} must build a CodingScheme, got {type(scheme).__name__}")
    return scheme
