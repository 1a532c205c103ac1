"""Which published table each scheme of a config takes: the one lookup that evaluation, tuning
and serving share.

A scheme node names its table under :data:`~nercc.tuning.grid.TABLE_KEY` (``lambdas``:
``published``, ``published:<scheme>`` (another scheme's), ``none`` or a path).
:func:`scheme_tables` resolves it for the node's code (or the code a caller gives, e.g. serving's
``coding`` node) and turns a bad setting or a broken file into one
:class:`~nercc.utils.errors.ConfigError` naming ``scheme.<name>.lambdas``.
:func:`table_notes` words what an evaluation says about the table it took (or did not find).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any

from omegaconf import DictConfig

from nercc.evaluation.variants import scheme_class
from nercc.tuning.grid import TABLE_KEY, open_settings
from nercc.tuning.tables import ParamTable, arrangement_of, resolve_table
from nercc.utils.errors import ConfigError

__all__ = ["code_key", "scheme_tables", "table_notes", "untuned"]


def code_key(node: Mapping[str, Any], coding: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The code a scheme node describes, as a table records it: ``num_inputs``,
    ``num_workers`` and ``points`` (the scheme class's default layout when the node names
    none), and the arrangement of the inputs, ``coding``'s ``order`` and ``grouping`` (the
    defaults, :data:`~nercc.tuning.tables.ARRANGEMENT_DEFAULTS`, when not given)."""
    points = node.get("points")
    if points is None:
        scheme = scheme_class(node)
        argument = inspect.signature(scheme).parameters.get("points") if scheme else None
        points = argument.default if argument is not None else None
    return {
        "num_inputs": node.get("num_inputs"),
        "num_workers": node.get("num_workers"),
        "points": points,
        **arrangement_of(coding or {}),
    }


def scheme_tables(
    cfg: DictConfig, names: Iterable[str], code: Mapping[str, Any] | None = None
) -> dict[str, ParamTable | None]:
    """The table each scheme of ``names`` takes (``cfg.scheme.<name>.lambdas``).

    Parameters
    ----------
    cfg : DictConfig
        A checked config with ``scheme``, ``paths.lambdas_dir``, ``model_name`` and ``data.name``.
    names : iterable of str
        Schemes of ``cfg.scheme`` to look up.
    code : mapping, optional
        ``num_inputs`` and ``num_workers`` of every scheme (serving's ``coding`` node); by
        default each node's own. ``points`` is always the node's (:func:`code_key`).

    Returns
    -------
    dict
        ``name -> ParamTable``, or None where the node names no table, says ``none``, or says
        ``published`` and none is published yet for this classifier, scheme and code
        (:func:`untuned`; each scheme has its own table,
        :func:`~nercc.tuning.tables.table_path`).

    Raises
    ------
    ConfigError
        A setting that is not ``published``, ``none`` or a path, or a table file that cannot be
        read, named as ``scheme.<name>.lambdas``.
    """
    tables: dict[str, ParamTable | None] = {}
    for name in names:
        node = cfg.scheme[name]
        if TABLE_KEY not in node:
            tables[name] = None
            continue
        key = code_key(node, cfg.get("coding"))
        if code is not None:
            key.update(num_inputs=code["num_inputs"], num_workers=code["num_workers"])
        try:
            tables[name] = resolve_table(
                node[TABLE_KEY], cfg.paths.lambdas_dir, cfg.model_name, cfg.data.name, name, key
            )
        except ValueError as error:
            raise ConfigError(f"scheme.{name}.{TABLE_KEY}", str(error)) from None
        table = tables[name]
        wanted = arrangement_of(key)
        if table is not None and arrangement_of(table.code) != wanted:
            tuned = arrangement_of(table.code)
            raise ConfigError(
                f"scheme.{name}.{TABLE_KEY}",
                f"{table.path} was tuned with the inputs ordered {tuned['order']}, grouped "
                f"{tuned['grouping']}; this run orders them {wanted['order']}, groups them "
                f"{wanted['grouping']} (lambdas depend on it): tune for it with python -m "
                f"nercc.tune coding.order={wanted['order']} coding.grouping={wanted['grouping']}",
            )
    return tables


def untuned(node: Mapping[str, Any], table: ParamTable | None) -> bool:
    """Whether ``node`` asked for a published table (its own or another scheme's) and none
    exists yet."""
    setting = node.get(TABLE_KEY)
    return table is None and isinstance(setting, str) and setting.split(":")[0] == "published"


def table_notes(cfg: DictConfig, name: str, table: ParamTable | None) -> list[str]:
    """What an evaluation notes about scheme ``name``'s table: none published while settings are
    open (they take the scheme's defaults), a table left unused by settings the config gives,
    straggler counts the table lacks (and, for a table tuned per (S, A), the A it lacks; for one
    tuned per S, that a run with adversaries takes its choice per S at every A), or a table tuned
    for another classifier or dataset."""
    node = cfg.scheme[name]
    code = code_key(node, cfg.get("coding"))
    notes = []
    unset = open_settings(node)  # lam_enc=1e-6 with df_enc=null leaves nothing open
    if untuned(node, table) and unset:
        notes.append(
            f"no tuned table for {cfg.model_name} on {cfg.data.name} with "
            f"K={code['num_inputs']}, N={code['num_workers']}, {code['points']} points"
            f"{_arranged(code)} in {cfg.paths.lambdas_dir}: "
            f"{name} runs with its defaults for {', '.join(unset)} (0: interpolation). "
            f"Tune them with: python -m nercc.tune"
        )
    elif table is not None and not unset:
        notes.append(f"{name}: parameters given in the config; the table {table.path} is unused")
    elif table is not None:
        missing = sorted({s for s in cfg.stragglers if s not in table.by_stragglers})
        for s in missing:
            notes.append(f"{table.path} has no S={s}: {name} uses S={table.params_at(s)[1]}'s")
        adversaries = [int(a) for a in cfg.get("adversaries") or [0]]
        if table.by_adversaries:
            for s in sorted({table.params_at(s)[1] for s in cfg.stragglers}):
                for a in (a for a in adversaries if a not in table.by_adversaries[s]):
                    nearest = table.params_at_cell(s, a)[1][1]
                    notes.append(f"{table.path} has no A={a} at S={s}: {name} uses A={nearest}'s")
        elif max(adversaries) > 0:
            notes.append(
                f"{table.path} was tuned per S only: {name} takes its choice per S at every A"
            )
        if table.model != cfg.model_name or table.dataset != cfg.data.name:
            notes.append(
                f"scheme.{name}.{TABLE_KEY}: {table.path} was tuned for {table.model} on "
                f"{table.dataset}, this run evaluates {cfg.model_name} on {cfg.data.name}"
            )
    return notes


def _arranged(code: Mapping[str, Any]) -> str:
    """``, inputs ordered <order>, grouped <grouping>`` for an arrangement other than the
    default, else nothing."""
    arrangement = arrangement_of(code)
    if arrangement == arrangement_of({}):
        return ""
    return f", inputs ordered {arrangement['order']}, grouped {arrangement['grouping']}"
