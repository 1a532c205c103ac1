"""A scheme under evaluation: its config name, its parameters and where they came from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nercc.coding import CodingScheme
from nercc.utils.instantiate import build_checked, target_class

__all__ = ["SPREAD_SUFFIXES", "SchemeVariant", "build_scheme", "scheme_class"]

#: The suffixes of the result columns that give a parameter's spread over a row's patterns
#: (``lam_dec_min``, ``lam_dec_max`` beside ``lam_dec``, the median).
SPREAD_SUFFIXES = ("_min", "_max")


@dataclass(frozen=True, eq=False)
class SchemeVariant:
    """One scheme with fixed parameters, under its config name (``nercc``, ``bacc``, ...).

    ``label`` names its line in tables and plots; ``stragglers``, when set, are the only S at
    which it is evaluated (parameters tuned per S), or the only (S, A) cells (parameters tuned
    per S and number of adversarial workers A); ``source`` says where its parameters came
    from (``config``, ``default``, ``table:<path>``, ...) and goes into every result row.
    """

    name: str
    scheme: CodingScheme
    label: str = ""
    stragglers: frozenset[int] | frozenset[tuple[int, int]] | None = None
    source: str = "config"

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", self.name)

    @property
    def params(self) -> dict[str, float]:
        """The scheme's tunable parameters (see :meth:`CodingScheme.params`)."""
        return self.scheme.params()

    def varies(self, name: str) -> bool:
        """Whether result rows give the spread of parameter ``name`` over their patterns: a
        parameter the scheme reports whose value changes from pattern to pattern with this
        variant's settings (:meth:`nercc.coding.Tunable.varies`; NeRCC's ``df_dec`` always, its
        ``lam_dec`` unless given as a number). Decided by the settings, not by the values, so
        that the columns of a run depend on its config only."""
        scheme = type(self.scheme)
        return name in scheme.reported and scheme.tunable(name).varies(self.params)

    def runs_at(self, num_stragglers: int) -> bool:
        """Whether it is evaluated at S (at every A, or in some (S, A) cell of its own)."""
        if self.stragglers is None:
            return True
        return any((c[0] if isinstance(c, tuple) else c) == num_stragglers for c in self.stragglers)

    def runs_in(self, num_stragglers: int, num_adversaries: int) -> bool:
        """Whether it is evaluated in the cell (S, A): at every A of its S, or in its cells."""
        return self.stragglers is None or any(
            c == (num_stragglers, num_adversaries) if isinstance(c, tuple) else c == num_stragglers
            for c in self.stragglers
        )


def build_scheme(name: str, node: Mapping[str, Any], **overrides: Any) -> CodingScheme:
    """Instantiate the ``_target_`` node of ``scheme.<name>`` and check that it is a scheme.

    An argument the scheme refuses raises ``ValueError('scheme.<name>: <reason>')``.
    """
    scheme = build_checked(f"scheme.{name}", node, **overrides)
    if not isinstance(scheme, CodingScheme):
        raise ValueError(f"scheme.{name} must build a CodingScheme, got {type(scheme).__name__}")
    return scheme


def scheme_class(node: Any) -> type[CodingScheme] | None:
    """The coding scheme class a scheme config's ``_target_`` names (what it declares:
    :attr:`nercc.coding.CodingScheme.tunables`, ...); None where the node names no importable
    scheme class (building it then says why)."""
    if not isinstance(node, Mapping) and not hasattr(node, "get"):
        return None
    found = target_class(str(node.get("_target_", "")))
    return found if found is not None and issubclass(found, CodingScheme) else None
