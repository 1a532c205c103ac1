"""The in-run calibration of ``auto`` lambdas: chosen per S on validation images, then used.

A scheme node whose ``lam_enc`` or ``lam_dec`` says ``auto`` (:func:`auto_params`) is checked with
placeholders (:func:`with_params`), then :func:`calibrate_auto` evaluates the candidates on
``eval.auto_images`` validation images with the evaluation's runner and builds the run's variants
from the table of the choices.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, open_dict

from nercc.evaluation.runner import run_coded
from nercc.evaluation.variants import SchemeVariant
from nercc.tuning.auto import (
    AUTO,
    DECODER_CANDIDATES,
    auto_candidates,
    auto_table,
    best_per_stragglers,
)
from nercc.tuning.grid import TABLE_KEY, expand_schemes
from nercc.tuning.tables import ParamTable

__all__ = ["auto_params", "calibrate_auto", "with_params"]


def auto_params(node: Any) -> list[str]:
    """The lambdas of a scheme node that say ``auto``."""
    return [p for p in ("lam_enc", "lam_dec") if node.get(p) == AUTO]


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
    """Choose the ``auto`` lambdas per S of every scheme of ``auto`` on ``eval.auto_images``
    validation images (never the test split), and return the run's variants with the choices.

    The candidates (:func:`nercc.tuning.auto.auto_candidates` for the encoder,
    :data:`~nercc.tuning.auto.DECODER_CANDIDATES` for the decoder; every pair when both say
    auto) are evaluated as one grid: one classifier pass per encoder candidate, the decoders
    side by side. The other settings stay as configured (e.g. ``lam_dec=gcv``); the lowest mse
    at each S wins.

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
        candidates = {
            "lam_enc": auto_candidates(placeholder.alphas),
            "lam_dec": list(DECODER_CANDIDATES),
        }
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
        chosen = best_per_stragglers(rows, name, stragglers, params)
        found_by = {
            "split": "val", "inputs": rows[0]["num_inputs_evaluated"],
            "candidates": {p: candidates[p] for p in params},
            "model": cfg.model_name, "dataset": cfg.data.name,
        }  # fmt: skip
        code = {k: getattr(placeholder, k) for k in ("num_inputs", "num_workers")}
        code["points"] = cfg.scheme[name].get("points", "chebyshev")
        tables[name] = auto_table(name, chosen, placeholder.alphas, code, found_by)
        summary[name] = chosen
    unset = with_params(
        cfg.scheme, {n: {**dict.fromkeys(ps), TABLE_KEY: "none"} for n, ps in auto.items()}
    )
    calibrated = expand_schemes(unset, stragglers, tables)
    summary["seconds"] = time.perf_counter() - start
    return calibrated, summary
