"""Scheme configs to the variants an evaluation runs: lists of parameter values expand into one
variant per combination, and a table of tuned parameters gives one variant per distinct setting,
each used only at its straggler counts (or, for a table tuned per S and A, only in its (S, A)
cells)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from nercc.coding import CodingScheme
from nercc.evaluation.variants import SchemeVariant, build_scheme, scheme_class
from nercc.tuning.tables import ParamTable

__all__ = ["TABLE_KEY", "expand_schemes", "format_params", "open_settings"]

#: Key of a scheme entry that chooses its table of tuned parameters (not a scheme argument):
#: ``published``, ``none`` or a path.
TABLE_KEY = "lambdas"


def _setting(node: Mapping[str, Any], key: str) -> str:
    """The setting a parameter of the scheme entry ``node`` gives, as its scheme declares it
    (:attr:`nercc.coding.Tunable.setting`: NeRCC's ``df_enc`` and ``lam_enc`` give ``lam_enc``);
    the key itself where the scheme declares no such parameter."""
    scheme = scheme_class(node)
    if scheme is not None and key in {t.name for t in scheme.tunables}:
        return scheme.tunable(key).setting
    return key


def open_settings(node: Mapping[str, Any]) -> list[str]:
    """The settings a scheme entry leaves open: listed, but null under each of their names.

    ``{"lam_enc": None, "df_enc": None, "lam_dec": 1e-3, "df_dec": None}`` leaves ``lam_enc``
    open (a table fills it, else the scheme's default); ``df_dec: null`` beside a given lam_dec
    only says that df_dec is not used. A setting is named by the parameter its alternatives
    stand for, as the scheme of ``node['_target_']`` declares (:class:`nercc.coding.Tunable`).
    """
    given = {_setting(node, k) for k, v in node.items() if v is not None}
    nulls = [_setting(node, k) for k, v in node.items() if v is None]
    return [k for k in dict.fromkeys(nulls) if k not in given]


def format_params(params: Mapping[str, Any]) -> str:
    """``lam_enc=1e-08,lam_dec=0``: parameters as a label."""
    return ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def expand_schemes(
    schemes: Mapping[str, Any],
    stragglers: Sequence[int] | None = None,
    tables: Mapping[str, ParamTable | None] | None = None,
    adversaries: Sequence[int] | None = None,
) -> list[SchemeVariant]:
    """Instantiate every scheme config as one or more variants.

    A scheme entry's parameter may be a number or a string (``lam_dec="gcv"``: one value, not a
    grid), a list (every combination of the listed values is a variant: a grid) or null (not passed
    to the scheme). NeRCC's smoothing of each side is one *setting*, given by its lambda or by its
    degrees of freedom (the alternatives its scheme declares: ``lam_enc`` or ``df_enc``,
    ``lam_dec`` or ``df_dec``). A setting whose parameters are all null is taken, per S, from the
    scheme's table in ``tables`` when there is one (a setting given in the config always wins over
    the table: ``df_enc=6`` leaves the table's ``lam_enc`` unused, and the table still fills
    ``lam_dec`` if the config leaves the decoder open), and otherwise is left to the scheme's
    default (``source="default"``). A table's df columns are used the same way, only if it has
    them.

    Given ``adversaries`` (the run's A list), a table tuned per (S, A) (one with per-A entries,
    :attr:`~nercc.tuning.tables.ParamTable.by_adversaries`) gives one variant per distinct
    setting that runs only in the (S, A) cells whose choice it is
    (:meth:`~nercc.tuning.tables.ParamTable.params_at_cell`): its ``stragglers`` holds those
    cells. Without ``adversaries`` (serving, which does not know A), or for a table without per-A
    entries, the table is read per S (``params_by_stragglers``), as above.

    Parameters
    ----------
    schemes : mapping of name to ``_target_`` config
    stragglers : sequence of int, optional
        The S values of the evaluation (needed when a table is used).
    tables : mapping of scheme name to ParamTable or None, optional
    adversaries : sequence of int, optional
        The A values of the evaluation: read tables per (S, A) cell.

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
        setting = node.pop(TABLE_KEY, None)
        # published:<other> takes the table of scheme <other> (a robust NeRCC takes NeRCC's)
        owner = setting.partition(":")[2] if isinstance(setting, str) else ""
        table = (tables or {}).get(name)
        found = _variants(name, node, table, list(stragglers or []), adversaries)
        if table is not None:
            _check_table(name, table, found[0].scheme, node, owner or name)
        variants += found
    sizes = {v.scheme.num_inputs for v in variants}
    if len(sizes) != 1:
        raise ValueError(f"all schemes must code the same num_inputs, got {sorted(sizes)}")
    return variants


def _check_table(
    name: str, table: ParamTable, scheme: CodingScheme, node: DictConfig, owner: str
) -> None:
    """Refuse a table tuned for another scheme than ``owner`` (``name`` itself, or the scheme
    of ``published:<owner>``) or another code than ``scheme``'s, or one that sets parameters the
    scheme does not have (``node``: the config entry, without nulls)."""
    where = f"scheme.{name}.{TABLE_KEY}: {table.path}"
    if table.scheme != owner:
        raise ValueError(f"{where} was tuned for scheme {table.scheme!r}, not {owner!r}")
    # The scheme's settings, given either way (a table's lam_dec fits a run with df_dec or gcv).
    declared = {t.name for t in type(scheme).tunables}
    known = {_setting(node, k) for k in scheme.params()}
    known |= {_setting(node, k) for k in node if k in declared}
    tuned = table.by_stragglers[min(table.by_stragglers)]
    unknown = sorted(k for k in tuned if _setting(node, k) not in known)
    if unknown:
        raise ValueError(f"{where} sets {', '.join(unknown)}, not parameters of scheme.{name}")
    for key, value in table.code.items():
        if getattr(scheme, key, value) != value:
            raise ValueError(
                f"{where} was tuned for {key}={value}, this run has {key}={getattr(scheme, key)}"
            )


def _variants(
    name: str,
    node: DictConfig,
    table: ParamTable | None,
    stragglers: list[int],
    adversaries: Sequence[int] | None = None,
) -> list[SchemeVariant]:
    grid = {k: list(v) for k, v in node.items() if isinstance(v, ListConfig)}
    unset = set(open_settings(node))  # filled by the table, else the scheme's defaults
    given = {_setting(node, k) for k, v in node.items() if v is not None}
    for key in [k for k, v in node.items() if v is None]:  # null: not passed to the scheme
        del node[key]
    # (values from the table, the S or (S, A) cells they serve or None for every S, source)
    # per distinct setting
    settings: list[tuple[dict[str, float], frozenset | None, str]]
    tuned = set(table.by_stragglers[min(table.by_stragglers)]) if table is not None else set()
    if table is not None and unset & {_setting(node, k) for k in tuned}:
        per_cell = adversaries is not None and bool(table.by_adversaries)
        where: list = (
            [(int(s), int(a)) for s in stragglers for a in adversaries]
            if per_cell and adversaries is not None
            else [int(s) for s in stragglers]
        )
        by_values: dict[tuple, set] = {}
        for at in where:
            params = table.params_at_cell(*at)[0] if per_cell else table.params_at(at)[0]
            chosen = {k: v for k, v in params.items() if _setting(node, k) in unset}
            by_values.setdefault(tuple(chosen.items()), set()).add(at)
        # a tuned setting the config gives itself (by either name)
        overridden = any(_setting(node, k) in given for k in tuned)
        source = f"{'config+' if overridden else ''}table:{table.path}"
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
