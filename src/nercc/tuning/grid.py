"""Scheme configs to the variants an evaluation runs: lists of parameter values expand into one
variant per combination, and a table of tuned parameters gives one variant per distinct setting,
each used only at its straggler counts."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from nercc.coding import CodingScheme
from nercc.evaluation.variants import SchemeVariant, build_scheme
from nercc.tuning.tables import ParamTable

__all__ = ["TABLE_KEY", "expand_schemes", "format_params"]

#: Key of a scheme entry that chooses its table of tuned parameters (not a scheme argument):
#: ``published``, ``none`` or a path.
TABLE_KEY = "lambdas"


def format_params(params: Mapping[str, Any]) -> str:
    """``lam_enc=1e-08,lam_dec=0``: parameters as a label."""
    return ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def expand_schemes(
    schemes: Mapping[str, Any],
    stragglers: Sequence[int] | None = None,
    tables: Mapping[str, ParamTable | None] | None = None,
) -> list[SchemeVariant]:
    """Instantiate every scheme config as one or more variants.

    A scheme entry's parameter may be a number, a list (every combination of the listed values is
    a variant: a grid) or null. A null parameter is taken, per S, from the scheme's table in
    ``tables`` when there is one (a parameter given in the config always wins over the table),
    and otherwise is left to the scheme's default (``source="default"``).

    Parameters
    ----------
    schemes : mapping of name to ``_target_`` config
    stragglers : sequence of int, optional
        The S values of the evaluation (needed when a table is used).
    tables : mapping of scheme name to ParamTable or None, optional

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
        node.pop(TABLE_KEY, None)
        table = (tables or {}).get(name)
        found = _variants(name, node, table, list(stragglers or []))
        if table is not None:
            _check_table(name, table, found[0].scheme)
        variants += found
    sizes = {v.scheme.num_inputs for v in variants}
    if len(sizes) != 1:
        raise ValueError(f"all schemes must code the same num_inputs, got {sorted(sizes)}")
    return variants


def _check_table(name: str, table: ParamTable, scheme: CodingScheme) -> None:
    """Refuse a table tuned for another scheme or another code than ``scheme``'s."""
    where = f"scheme.{name}.{TABLE_KEY}: {table.path}"
    if table.scheme != name:
        raise ValueError(f"{where} was tuned for scheme {table.scheme!r}, not {name!r}")
    unknown = sorted(set(table.by_stragglers[min(table.by_stragglers)]) - set(scheme.params()))
    if unknown:
        raise ValueError(f"{where} sets {', '.join(unknown)}, not parameters of scheme.{name}")
    for key, value in table.code.items():
        if getattr(scheme, key, value) != value:
            raise ValueError(
                f"{where} was tuned for {key}={value}, this run has {key}={getattr(scheme, key)}"
            )


def _variants(
    name: str, node: DictConfig, table: ParamTable | None, stragglers: list[int]
) -> list[SchemeVariant]:
    grid = {k: list(v) for k, v in node.items() if isinstance(v, ListConfig)}
    unset = [k for k, v in node.items() if v is None]
    for key in unset:
        del node[key]
    # (values from the table, the S they serve or None for every S, source) per distinct setting
    settings: list[tuple[dict[str, float], frozenset[int] | None, str]]
    tuned = set(table.by_stragglers[min(table.by_stragglers)]) if table is not None else set()
    if table is not None and set(unset) & tuned:
        by_values: dict[tuple, set[int]] = {}
        for s in stragglers:
            params, _ = table.params_at(s)
            chosen = {k: params[k] for k in unset if k in params}
            by_values.setdefault(tuple(chosen.items()), set()).add(int(s))
        given = any(k in node for k in tuned)  # a tuned parameter the config sets itself
        source = f"{'config+' if given else ''}table:{table.path}"
        settings = [(dict(values), frozenset(at), source) for values, at in by_values.items()]
    else:
        settings = [({}, None, "default" if unset else "config")]
    combos = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    variants = []
    for from_table, at, source in settings:
        for combo in combos:
            scheme = build_scheme(name, node, **from_table, **combo)
            label = f"{name}({format_params(combo)})" if len(combos) > 1 else name
            variants.append(SchemeVariant(name, scheme, label, at, source))
    return variants
