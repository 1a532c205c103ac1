"""Coded-inference evaluation: ``python -m nercc.eval experiment=<name>`` (conf/eval.yaml).

Loads the published classifier for (model, data), checks the whole config before any work, runs
:class:`~nercc.evaluation.CodedInferenceModule` with Lightning on one or more devices, and writes
``results.csv``, ``results.json``, ``mse_vs_stragglers.png`` and ``rel_acc_vs_stragglers.png`` in
the run directory beside Hydra's resolved config. NeRCC's lambdas come from the published table of
the classifier and code (``scheme.nercc.lambdas``) unless the config gives them. ``main`` returns
the ``optimized_metric`` to a sweeper. With ``logger=wandb`` the metrics (one step per S), the
results table, the plots and the objective go to W&B too.
"""

from __future__ import annotations

import collections
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, open_dict

from nercc.evaluation.variants import SchemeVariant
from nercc.paths import CONFIG_DIR
from nercc.runtime.checks import (
    check_batches,
    check_checkpoint_exists,
    check_eval,
    check_hardware,
    expected_input,
)
from nercc.runtime.resolvers import is_multirun
from nercc.runtime.wrapper import task_wrapper
from nercc.tuning import (
    TABLE_KEY,
    ParamTable,
    check_objective,
    expand_schemes,
    objective_value,
    resolve_table,
)
from nercc.tuning.auto import (
    AUTO,
    DECODER_CANDIDATES,
    auto_candidates,
    auto_table,
    best_per_stragglers,
)
from nercc.tuning.grid import open_settings
from nercc.utils.errors import ConfigError
from nercc.utils.instantiate import build, build_all, build_checked, plain

# Lightning, torch and the evaluation module load after the config is checked (see evaluate).

__all__ = ["Plan", "check_config", "evaluate", "run_coded"]

log = logging.getLogger("nercc.eval")  # not __main__ under python -m

#: The row keys logged per S as coded/<variant>/<key> (besides the scheme's parameters).
LOGGED = (
    "mse", "mse_se", "mse_lo", "mse_hi", "acc", "base_acc", "rel_acc", "rel_acc_se",
    "rel_acc_lo", "rel_acc_hi", "agreement", "stragglers_mean", "few_answers",
)  # fmt: skip
PLOTS = {"mse": "mse_vs_stragglers.png", "rel_acc": "rel_acc_vs_stragglers.png"}


@dataclass
class Plan:
    """What a checked config evaluates: the variants, the straggler factory, the tables used,
    whether the objective can be computed, and notes for the log."""

    variants: list[SchemeVariant]
    straggler_factory: Any
    tables: dict[str, ParamTable | None]
    objective: str | None
    notes: list[str] = field(default_factory=list)
    #: The lambdas chosen by a calibration on validation images (``auto``), by scheme.
    auto: dict[str, list[str]] = field(default_factory=dict)


def _tables(cfg: DictConfig, notes: list[str]) -> dict[str, ParamTable | None]:
    """The table of every scheme that names one (``scheme.<name>.lambdas``)."""
    tables = {}
    for name, node in cfg.scheme.items():
        if TABLE_KEY not in node or _auto_params(node):  # auto: calibrated in the run
            continue
        code = {
            "num_inputs": node.get("num_inputs"),
            "num_workers": node.get("num_workers"),
            "points": node.get("points", "chebyshev"),
        }
        where = f"scheme.{name}.{TABLE_KEY}"
        try:
            table = resolve_table(
                node[TABLE_KEY], cfg.paths.lambdas_dir, cfg.model_name, cfg.data.name, code
            )
        except ValueError as error:
            raise ConfigError(where, str(error)) from None
        unset = open_settings(node)  # lam_enc=1e-6 with df_enc=null leaves nothing open
        if table is None and node[TABLE_KEY] == "published" and unset:
            notes.append(
                f"no tuned table for {cfg.model_name} on {cfg.data.name} with "
                f"K={code['num_inputs']}, N={code['num_workers']}, {code['points']} points "
                f"in {cfg.paths.lambdas_dir}: "
                f"{name} runs with its defaults for {', '.join(unset)} (0: interpolation). "
                f"Tune them with: python -m nercc.tune"
            )
        elif table is not None and not unset:
            notes.append(
                f"{name}: parameters given in the config; the table {table.path} is unused"
            )
        elif table is not None:
            missing = sorted({s for s in cfg.stragglers if s not in table.by_stragglers})
            for s in missing:
                notes.append(f"{table.path} has no S={s}: {name} uses S={table.params_at(s)[1]}'s")
            if table.model != cfg.model_name or table.dataset != cfg.data.name:
                notes.append(
                    f"{where}: {table.path} was tuned for {table.model} on {table.dataset}, "
                    f"this run evaluates {cfg.model_name} on {cfg.data.name}"
                )
        tables[name] = table
    return tables


def check_config(cfg: DictConfig) -> Plan:
    """Check every setting (:func:`nercc.runtime.checks.check_eval`), then build the schemes,
    tables and straggler models, before any data or model is loaded."""
    check_eval(cfg)
    notes: list[str] = []
    tables = _tables(cfg, notes)
    auto = {name: _auto_params(node) for name, node in cfg.scheme.items() if _auto_params(node)}
    placeholders = {name: dict.fromkeys(params, 0.0) for name, params in auto.items()}
    variants = expand_schemes(_with_params(cfg.scheme, placeholders), list(cfg.stragglers), tables)
    objective = cfg.get("optimized_metric")
    if objective is not None:
        runs: dict[str, list] = {}
        for v in variants:
            runs.setdefault(v.name, []).append(v.stragglers)
        try:
            reason = check_objective(objective, runs, list(cfg.stragglers), cfg.get("optimized_at"))
        except ValueError as error:
            key = "optimized_metric" if "coded/<scheme>" in str(error) else "optimized_at"
            raise ConfigError(key, str(error)) from None
        if reason is not None:
            if is_multirun():
                raise ConfigError("optimized_metric", reason, objective)
            notes.append(f"optimized_metric {objective} is not computed: {reason}")
            objective = None
    from nercc.evaluation.module import straggler_models  # imports torch

    factory = build_checked("straggler", cfg.straggler)
    try:
        straggler_models(factory, list(cfg.stragglers), variants)
    except TypeError as error:  # an argument the model does not take
        raise ConfigError("straggler", str(error)) from None
    except ValueError as error:  # "<key>: ...": an S the model cannot serve
        key, _, what = str(error).partition(": ")
        raise ConfigError(key, what) from None
    return Plan(variants, factory, tables, objective, notes, auto)


def _auto_params(node: Any) -> list[str]:
    """The lambdas of a scheme node that say ``auto``."""
    return [p for p in ("lam_enc", "lam_dec") if node.get(p) == AUTO]


def _with_params(schemes: DictConfig, values: dict[str, dict[str, Any]]) -> DictConfig:
    """``schemes`` with ``values[name][param]`` set (the placeholders of ``auto`` while the
    config is checked, the candidates while it is calibrated, null for the table after)."""
    schemes = schemes.copy()
    with open_dict(schemes):
        for name, params in values.items():
            for param, value in params.items():
                schemes[name][param] = value
    return schemes


def calibrate_auto(
    cfg: DictConfig, plan: Plan, data: Any, classifier: Any
) -> tuple[list[SchemeVariant], dict[str, Any]]:
    """Choose the ``auto`` lambdas per S of every scheme of ``plan.auto`` on
    ``eval.auto_images`` validation images (never the test split), and return the run's
    variants with the choices.

    The candidates (:func:`nercc.tuning.auto.auto_candidates` for the encoder,
    :data:`~nercc.tuning.auto.DECODER_CANDIDATES` for the decoder; every pair when both say
    auto) are evaluated as one grid: one classifier pass per encoder candidate, the decoders
    side by side. The other settings stay as configured (e.g. ``lam_dec=gcv``); the lowest mse
    at each S wins. Returns the variants (in config order) and a summary for the log.
    """
    import time

    stragglers = list(cfg.stragglers)
    tables = dict(plan.tables)
    start, summary = time.perf_counter(), {}
    for name, params in plan.auto.items():
        placeholder = next(v.scheme for v in plan.variants if v.name == name)
        candidates = {
            "lam_enc": auto_candidates(placeholder.alphas),
            "lam_dec": list(DECODER_CANDIDATES),
        }
        val = cfg.copy()
        with open_dict(val):
            grid = _with_params(cfg.scheme, {name: {p: candidates[p] for p in params}})
            val.scheme = {name: grid[name]}
            val.scheme[name][TABLE_KEY] = "none"
            val.eval.split = "val"
            val.eval.limit = int(cfg.eval.get("auto_images", 500))
            val.optimized_metric = None
        variants = expand_schemes(val.scheme, stragglers)
        rows, _ = run_coded(val, variants, plan.straggler_factory, data, classifier)
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
    unset = _with_params(
        cfg.scheme, {n: {**dict.fromkeys(ps), TABLE_KEY: "none"} for n, ps in plan.auto.items()}
    )
    variants = expand_schemes(unset, stragglers, tables)
    summary["seconds"] = time.perf_counter() - start
    return variants, summary


#: The output cache of each folder, one per process: a cache that turned itself off (a full or
#: read-only folder) stays off, with its one warning, for every evaluation of the run (the
#: calibration of ``auto``, a tuning's searches, the jobs of a multirun in one process).
_CACHES: dict[str, Any] = {}


def _output_cache(folder: str) -> Any:
    """This process's :class:`~nercc.evaluation.cache.OutputCache` of ``folder``."""
    from nercc.evaluation.cache import OutputCache

    key = os.path.abspath(folder)
    if key not in _CACHES:
        _CACHES[key] = OutputCache(folder)
    return _CACHES[key]


def run_coded(
    cfg: DictConfig,
    variants: list[SchemeVariant],
    straggler_factory: Any,
    data: Any,
    classifier: Any,
    loggers: list | None = None,
) -> tuple[list[dict[str, Any]], Any]:
    """Evaluate ``variants`` on ``cfg.eval``'s split with Lightning; return the result rows (on
    every process) and the trainer."""
    from nercc.evaluation import CodedInferenceModule
    from nercc.evaluation.data import CodedEvalData

    module = CodedInferenceModule(
        classifier,
        variants,
        list(cfg.stragglers),
        straggler_factory,
        num_patterns=cfg.eval.num_patterns,
        chunk_size=cfg.eval.chunk_size,
        seed=cfg.seed,
        cache=_output_cache(cfg.paths.cache_dir) if cfg.eval.get("cache", True) else None,
    )
    eval_data = CodedEvalData(data, cfg.eval.split, cfg.eval.batch_size, cfg.eval.get("limit"))
    # CodedEvalData deals whole batches to the processes: Lightning must not re-shard them.
    trainer = build(
        cfg.trainer, logger=loggers or False, callbacks=[], use_distributed_sampler=False
    )
    trainer.test(module, datamodule=eval_data, verbose=False)
    return module.results, trainer


def evaluate(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the coded evaluation of ``cfg``.

    Returns
    -------
    metrics : dict
        ``rows`` (one result row per variant and S) and, when it can be computed, the value of
        ``optimized_metric`` under its name.
    objects : dict
        ``module``-level objects: ``trainer``, ``data``, ``classifier``, ``plan``.
    """
    plan = check_config(cfg)
    check_checkpoint_exists(cfg)
    processes = check_hardware(cfg)
    import pytorch_lightning as pl

    from nercc.models import load_classifier

    pl.seed_everything(cfg.seed, workers=True)
    data = build(cfg.data)
    data.setup("test")
    check_batches(cfg, len(data.raw_set(cfg.eval.split)), processes)
    info = data.describe()
    classifier = load_classifier(
        cfg.model_name, cfg.data.name, cfg.paths.checkpoint_dir, **expected_input(cfg)
    )
    for table in filter(None, plan.tables.values()):
        stale = table.stale_warning(classifier.info["path"], classifier.info["sha256"])
        if stale is not None:
            plan.notes.append(stale)
    for note in info["notes"] + plan.notes:
        if note.startswith("warning:"):
            log.warning(note)
        else:
            log.info(f"note: {note}")
    if plan.auto:
        plan.variants, found = calibrate_auto(cfg, plan, data, classifier)
        for name in plan.auto:
            chosen = "; ".join(
                f"S={s}: " + ", ".join(f"{p} {v:.3g}" for p, v in params.items())
                for s, params in found[name].items()
            )
            log.info(f"note: {name}: auto chose on validation images {chosen}")
        log.info(f"note: the auto calibration took {found['seconds']:.1f} s")
    loggers = build_all(cfg.get("logger"))
    rows, trainer = run_coded(cfg, plan.variants, plan.straggler_factory, data, classifier, loggers)
    metrics: dict[str, Any] = {"rows": rows}
    objective = None
    if plan.objective is not None:
        objective = objective_value(rows, plan.objective, cfg.get("optimized_at"))
        metrics[plan.objective] = objective
    if trainer.is_global_zero:
        _report(cfg, rows, objective, plan.objective, loggers, info, classifier.info, plan.variants)
    return metrics, {"trainer": trainer, "data": data, "classifier": classifier, "plan": plan}


def _report(
    cfg: DictConfig,
    rows: list[dict[str, Any]],
    objective: float | None,
    objective_name: str | None,
    loggers: list,
    info: dict,
    model_info: dict,
    variants: list[SchemeVariant],
) -> None:
    from nercc.evaluation.report import param_columns, plot_vs_stragglers, print_results
    from nercc.utils.io import write_csv, write_json

    out = Path(cfg.paths.output_dir)
    title = (
        f"{cfg.model_name} on {cfg.data.name} ({cfg.eval.split}), {rows[0]['num_inputs']} inputs"
    )
    print_results(rows, title)
    summary = {"name": objective_name, "at": cfg.get("optimized_at"), "value": objective}
    write_csv(out / "results.csv", rows)
    write_json(out / "results.json", {"objective": summary, "rows": rows})
    plots = {
        m: plot_vs_stragglers(rows, m, out / name, f"{title}: {m}") for m, name in PLOTS.items()
    }
    # The parameters each variant ran with: in the config when one setting served every S (so
    # that W&B's parallel coordinates see them), and per S among the metrics.
    names = param_columns(rows)
    # A variant's settings as given (params()), not the rows' medians: df_dec changes with S.
    labels = collections.Counter(v.label for v in variants)
    used = {v.label: v.params for v in variants if labels[v.label] == 1 and v.params}
    for logger in loggers:
        logger.log_hyperparams(
            {**plain(cfg), "params": used, "data_source": info, "classifier": model_info}
        )
        for s in dict.fromkeys(r["num_stragglers"] for r in rows):
            metrics = {
                f"coded/{r['variant']}/{m}": r[m]
                for r in rows
                if r["num_stragglers"] == s
                for m in (*LOGGED, *names)
                if r.get(m) is not None and not (isinstance(r[m], float) and math.isnan(r[m]))
            }
            logger.log_metrics(metrics, step=s)
        if hasattr(logger, "log_table"):  # W&B
            columns = list(dict.fromkeys(c for r in rows for c in r))
            logger.log_table(
                "coded/results", columns=columns, data=[[r.get(c) for c in columns] for r in rows]
            )
            for metric, path in plots.items():
                logger.log_image(f"coded/{metric}_vs_stragglers", images=[str(path)])
            if objective is not None:
                logger.experiment.summary["objective"] = objective
                logger.experiment.summary["optimized_metric"] = objective_name
        logger.save()
    if objective is not None:
        log.info(f"objective {objective_name}: {objective:.6g}")
    log.info(f"results: {out}")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
@task_wrapper
def main(cfg: DictConfig) -> float | None:
    metrics, _ = evaluate(cfg)
    return metrics.get(cfg.get("optimized_metric"))


if __name__ == "__main__":
    main()
