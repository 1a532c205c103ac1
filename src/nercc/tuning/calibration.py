"""The in-run calibration of ``auto`` parameters: chosen per S on validation images, then used.

A scheme node whose parameters say ``auto`` (:func:`auto_params`: those its scheme declares with
``auto=True``, :class:`nercc.coding.Tunable`) is checked with placeholders (:func:`placeholders`,
:func:`with_params`), then :func:`calibrate_auto` evaluates the scheme's candidates
(:meth:`nercc.coding.CodingScheme.auto_candidates`) on ``eval.auto_images`` validation images with
the evaluation's runner and builds the run's variants from the table of the choices.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, open_dict

from nercc.coding import CodingScheme, Tunable
from nercc.evaluation.runner import run_coded
from nercc.evaluation.variants import SchemeVariant, scheme_class
from nercc.tuning.auto import AUTO, auto_table, best_rows
from nercc.tuning.grid import TABLE_KEY, expand_schemes
from nercc.tuning.tables import ParamTable, arrangement_of

__all__ = ["auto_params", "calibrate_auto", "placeholders", "with_params"]


def auto_params(node: Any) -> list[str]:
    """The parameters of a scheme node that say ``auto``, among those its scheme declares may be
    calibrated (:attr:`nercc.coding.Tunable.auto`), in declared order."""
    scheme = scheme_class(node)
    if scheme is None:
        return []
    return [t.name for t in scheme.tunables if t.auto and node.get(t.name) == AUTO]


def placeholders(node: Any, params: list[str]) -> dict[str, Any]:
    """A value of each ``auto`` parameter of ``node`` that its scheme accepts, standing in for
    ``auto`` while the config is checked: the first of its declared candidates, else of its
    grid, else its lower bound (NeRCC's lambdas: 0)."""
    scheme = scheme_class(node)
    assert scheme is not None  # auto_params found them
    return {name: _placeholder(scheme.tunable(name)) for name in params}


def _placeholder(tunable: Tunable) -> Any:
    for value in (*tunable.auto_candidates, *tunable.grid, tunable.low):
        try:
            if tunable.accepts(value):
                return float(value)
        except ValueError:  # a bound that names a code size
            continue
    raise ValueError(f"{tunable.name} declares no value to stand in for auto")


def with_params(schemes: DictConfig, values: dict[str, dict[str, Any]]) -> DictConfig:
    """``schemes`` with ``values[name][param]`` set (the placeholders of ``auto`` while the
    config is checked, the candidates while it is calibrated, null for the table after)."""
    schemes = schemes.copy()
    with open_dict(schemes):
        for name, params in values.items():
            for param, value in params.items():
                schemes[name][param] = value
    return schemes


def calibrate_auto(
    cfg: DictConfig,
    auto: Mapping[str, list[str]],
    variants: list[SchemeVariant],
    tables: Mapping[str, ParamTable | None],
    straggler_factory: Any,
    data: Any,
    classifier: Any,
) -> tuple[list[SchemeVariant], dict[str, Any]]:
    """Choose the ``auto`` parameters per S of every scheme of ``auto`` on ``eval.auto_images``
    validation images (never the test split), and return the run's variants with the choices.

    The scheme's candidates (:meth:`nercc.coding.CodingScheme.auto_candidates`; every
    combination when several parameters say auto) are evaluated as one grid: one classifier
    pass per encoder candidate, the decoders side by side. The other settings stay as
    configured (e.g. ``lam_dec=gcv``); the lowest mse at each S wins.

    Parameters
    ----------
    cfg : DictConfig
        The checked evaluation config.
    auto : mapping of str to list of str
        The parameters that say ``auto``, by scheme (:func:`auto_params`).
    variants : list of SchemeVariant
        The checked variants, ``auto`` schemes with placeholders.
    tables : mapping
        The tables of the other schemes, by name.
    straggler_factory : callable
        Builds the straggler model of each S.
    data, classifier
        The loaded data and classifier.

    Returns
    -------
    variants : list of SchemeVariant
        The run's variants, in config order.
    summary : dict
        The choices per scheme and S, and ``seconds``, for the log.
    """
    stragglers = list(cfg.stragglers)
    tables = dict(tables)
    start, summary = time.perf_counter(), {}
    for name, params in auto.items():
        placeholder = next(v.scheme for v in variants if v.name == name)
        candidates = {p: placeholder.auto_candidates(p) for p in params}
        val = cfg.copy()
        with open_dict(val):
            grid = with_params(cfg.scheme, {name: {p: candidates[p] for p in params}})
            val.scheme = {name: grid[name]}
            val.scheme[name][TABLE_KEY] = "none"
            val.eval.split = "val"
            val.eval.limit = int(cfg.eval.get("auto_images", 500))
            val.optimized_metric = None
        grid_variants = expand_schemes(val.scheme, stragglers)
        rows, _ = run_coded(val, grid_variants, straggler_factory, data, classifier)
        best = best_rows(rows, name, stragglers, params)
        chosen = {s: {p: float(row[p]) for p in params} for s, row in best.items()}
        found_by = {
            "split": "val", "inputs": rows[0]["num_inputs_evaluated"],
            "candidates": {p: candidates[p] for p in params},
            "model": cfg.model_name, "dataset": cfg.data.name,
        }  # fmt: skip
        code = {k: getattr(placeholder, k, None) for k in ("num_inputs", "num_workers", "points")}
        code |= arrangement_of(cfg.coding)
        reported = {s: _reported(placeholder, params, row) for s, row in best.items()}
        tables[name] = auto_table(name, chosen, code, found_by, reported)
        summary[name] = chosen
    unset = with_params(
        cfg.scheme, {n: {**dict.fromkeys(ps), TABLE_KEY: "none"} for n, ps in auto.items()}
    )
    calibrated = expand_schemes(unset, stragglers, tables)
    summary["seconds"] = time.perf_counter() - start
    return calibrated, summary


def _reported(scheme: CodingScheme, params: list[str], row: Mapping[str, Any]) -> dict[str, float]:
    """What the chosen row reports for the encoder's chosen settings in other words: the
    encoder-side parameters the scheme reports (:attr:`~nercc.coding.CodingScheme.reported`)
    that are alternatives of a chosen setting (NeRCC's ``df_enc`` for ``lam_enc``)."""
    cls = type(scheme)
    declared = {t.name: t for t in cls.tunables}
    settings = {declared[p].setting for p in params}
    return {
        name: float(row[name])
        for name in cls.reported
        if name not in params
        and name in declared
        and declared[name].side == "encoder"
        and declared[name].setting in settings
        and row.get(name) is not None
    }
