"""Scheme configs to scheme objects: lists of lambdas expand into one variant per pair, and a
table of lambdas per straggler count gives one variant per distinct pair, used only at its S."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from nercc.coding import CodingScheme
from nercc.config import build

__all__ = ["SchemeVariant", "expand_schemes"]

#: Key of a scheme entry that maps S to [lam_enc, lam_dec] (not an argument of the scheme).
PER_S_KEY = "lams_by_stragglers"


@dataclass(frozen=True, eq=False)
class SchemeVariant:
    """One scheme with fixed parameters, under its config name (``nercc``, ``bacc``, ...).

    ``label`` names its line in tables and plots; ``stragglers``, when set, are the only S at
    which it is evaluated (a per-S lambda table).
    """

    name: str
    scheme: CodingScheme
    lam_enc: float | None = None
    lam_dec: float | None = None
    label: str = ""
    stragglers: frozenset[int] | None = None

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", self.name)

    def runs_at(self, num_stragglers: int) -> bool:
        return self.stragglers is None or num_stragglers in self.stragglers


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, ListConfig | list | tuple):
        return list(value)
    return [value]


def _build(name: str, node: DictConfig, overrides: dict[str, float]) -> CodingScheme:
    scheme = build(node, **overrides)
    if not isinstance(scheme, CodingScheme):
        raise ValueError(f"scheme.{name} must build a CodingScheme, got {type(scheme).__name__}")
    return scheme


def expand_schemes(
    schemes: Mapping[str, Any], stragglers: Sequence[int] | None = None
) -> list[SchemeVariant]:
    """Instantiate every scheme config.

    ``lam_enc`` and ``lam_dec`` may be lists (every pair is a variant). A scheme entry may also
    hold ``lams_by_stragglers: {S: [lam_enc, lam_dec], ...}``: at those S the listed pair is used
    (lambdas tuned per straggler count), at the other S of ``stragglers`` the plain
    ``lam_enc``/``lam_dec``.

    Parameters
    ----------
    schemes : mapping of name to ``_target_`` config
    stragglers : sequence of int, optional
        The S values of the evaluation (needed with ``lams_by_stragglers``).

    Returns
    -------
    list of SchemeVariant
        In config order.
    """
    if not schemes:
        raise ValueError(f"scheme must name at least one scheme, got {schemes!r}")
    variants: list[SchemeVariant] = []
    for name, node in schemes.items():
        if not isinstance(node, DictConfig | Mapping) or "_target_" not in node:
            raise ValueError(f"scheme.{name} must be a config with a _target_, got {node!r}")
        node = OmegaConf.create(dict(node)) if not isinstance(node, DictConfig) else node.copy()
        OmegaConf.set_struct(node, False)
        table = node.pop(PER_S_KEY, None)
        if table:
            variants += _per_s_variants(name, node, table, list(stragglers or []))
            continue
        lam_encs = _as_list(node.get("lam_enc")) if "lam_enc" in node else [None]
        lam_decs = _as_list(node.get("lam_dec")) if "lam_dec" in node else [None]
        several = len(lam_encs) * len(lam_decs) > 1
        for lam_enc, lam_dec in itertools.product(lam_encs, lam_decs):
            overrides = {
                k: v for k, v in (("lam_enc", lam_enc), ("lam_dec", lam_dec)) if v is not None
            }
            scheme = _build(name, node, overrides)
            lams = _lams(scheme)
            label = f"{name}(enc={lams[0]:g},dec={lams[1]:g})" if several else name
            variants.append(SchemeVariant(name, scheme, *lams, label=label))
    sizes = {v.scheme.num_inputs for v in variants}
    if len(sizes) != 1:
        raise ValueError(f"all schemes must code the same num_inputs, got {sorted(sizes)}")
    return variants


def _lams(scheme: CodingScheme) -> tuple[float | None, float | None]:
    if hasattr(scheme, "lam_enc"):
        return float(scheme.lam_enc), float(scheme.lam_dec)
    return None, None


def _per_s_variants(
    name: str, node: DictConfig, table: Any, stragglers: list[int]
) -> list[SchemeVariant]:
    where = f"scheme.{name}.{PER_S_KEY}"
    if not isinstance(table, DictConfig | Mapping):
        raise ValueError(f"{where} must map S to [lam_enc, lam_dec], got {table!r}")
    for key in ("lam_enc", "lam_dec"):
        if isinstance(node.get(key), ListConfig | list):
            raise ValueError(
                f"scheme.{name}.{key} must be one number next to {PER_S_KEY}, got "
                f"{list(node.get(key))}; to evaluate a grid, add scheme.{name}.{PER_S_KEY}=null"
            )
    pairs: dict[tuple[float, float], set[int]] = {}
    default = (float(node.get("lam_enc", 0.0)), float(node.get("lam_dec", 0.0)))
    for s in stragglers:
        value = table.get(s, table.get(str(s)))
        if value is None:
            pair = default
        elif isinstance(value, ListConfig | list | tuple) and len(value) == 2:
            pair = (float(value[0]), float(value[1]))
        else:
            raise ValueError(f"{where}.{s} must be [lam_enc, lam_dec], got {value!r}")
        pairs.setdefault(pair, set()).add(int(s))
    variants = []
    for (lam_enc, lam_dec), at in pairs.items():
        scheme = _build(name, node, {"lam_enc": lam_enc, "lam_dec": lam_dec})
        variants.append(
            SchemeVariant(name, scheme, lam_enc, lam_dec, label=name, stragglers=frozenset(at))
        )
    return variants
