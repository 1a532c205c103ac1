"""The coded-inference evaluation task (``python -m nercc.eval``, conf/eval.yaml).

:func:`check_config` checks the whole config and builds its :class:`Plan` before any data or model
is loaded; :func:`evaluate` loads the published classifier for (model, data), calibrates ``auto``
parameters when asked, runs the variants with Lightning on one or more devices
(:func:`nercc.evaluation.runner.run_coded`), and :func:`report` writes ``results.csv``,
``results.json``, ``mse_vs_stragglers.png`` and ``rel_acc_vs_stragglers.png`` in the run folder
and logs the metrics (one step per S), the results table, the plots and the objective.
"""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from nercc.evaluation.runner import run_coded
from nercc.evaluation.variants import SchemeVariant
from nercc.runtime.checks import check_eval
from nercc.runtime.loggers import log_run
from nercc.runtime.resolvers import is_multirun
from nercc.tasks.setup import load_task_inputs
from nercc.tuning import TABLE_KEY, ParamTable, check_objective, expand_schemes, objective_value
from nercc.tuning.calibration import auto_params, calibrate_auto, placeholders, with_params
from nercc.tuning.planning import scheme_tables, table_notes
from nercc.utils.errors import ConfigError
from nercc.utils.instantiate import build_all, build_checked, plain

# Lightning, torch and the evaluation module load after the config is checked (see evaluate).

__all__ = ["LOGGED", "PLOTS", "Plan", "check_config", "evaluate", "report"]

log = logging.getLogger("nercc.eval")  # the command's logger: its lines keep their name

#: The row keys logged per S as coded/<variant>/<key> (besides the scheme's parameters).
LOGGED = (
    "mse", "mse_se", "mse_lo", "mse_hi", "acc", "base_acc", "rel_acc", "rel_acc_se",
    "rel_acc_lo", "rel_acc_hi", "agreement", "stragglers_mean", "few_answers", "recon_share",
    "recon_agreement", "recon_agreement_lo", "recon_agreement_hi", "recon_acc",
)  # fmt: skip
#: The plots of the run folder, by the metric they show.
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
    #: The parameters chosen by a calibration on validation images (``auto``), by scheme.
    auto: dict[str, list[str]] = field(default_factory=dict)
    #: The A values (adversarial workers among those that answer) and how they answer.
    adversaries: list[int] = field(default_factory=lambda: [0])
    adversary: Any = None


def check_config(cfg: DictConfig) -> Plan:
    """Check every setting (:func:`nercc.runtime.checks.check_eval`), then build the schemes,
    tables and straggler models, before any data or model is loaded.

    Parameters
    ----------
    cfg : DictConfig
        A composed evaluation config (conf/eval.yaml).

    Returns
    -------
    Plan

    Raises
    ------
    ConfigError
        A setting that cannot run, named by its key.
    """
    check_eval(cfg)
    notes: list[str] = []
    auto = {name: auto_params(node) for name, node in cfg.scheme.items() if auto_params(node)}
    # a scheme whose parameters say auto is calibrated in the run: it takes no table
    named = [name for name, node in cfg.scheme.items() if TABLE_KEY in node and name not in auto]
    tables = scheme_tables(cfg, named)
    for name, table in tables.items():
        notes.extend(table_notes(cfg, name, table))
    standing = {name: placeholders(cfg.scheme[name], params) for name, params in auto.items()}
    adversaries = [int(a) for a in cfg.get("adversaries") or [0]]
    variants = expand_schemes(
        with_params(cfg.scheme, standing), list(cfg.stragglers), tables, adversaries
    )
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
    node = cfg.get("adversary")
    adversary = build_checked("adversary", node) if node is not None else None
    return Plan(variants, factory, tables, objective, notes, auto, adversaries, adversary)


def evaluate(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the coded evaluation of ``cfg``.

    Parameters
    ----------
    cfg : DictConfig
        A composed evaluation config (conf/eval.yaml).

    Returns
    -------
    metrics : dict
        ``rows`` (one result row per variant, S and A) and, when it can be computed, the value of
        ``optimized_metric`` under its name.
    objects : dict
        ``module``-level objects: ``trainer``, ``data``, ``classifier``, ``plan``.
    """
    plan = check_config(cfg)
    loaded = load_task_inputs(cfg, batches=cfg)
    data, classifier = loaded.data, loaded.classifier
    info = data.describe()
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
        plan.variants, found = calibrate_auto(
            cfg, plan.auto, plan.variants, plan.tables, plan.straggler_factory, data, classifier
        )
        for name in plan.auto:
            chosen = "; ".join(
                f"S={s}: " + ", ".join(f"{p} {v:.3g}" for p, v in params.items())
                for s, params in found[name].items()
            )
            log.info(f"note: {name}: auto chose on validation images {chosen}")
        log.info(f"note: the auto calibration took {found['seconds']:.1f} s")
    loggers = build_all(cfg.get("logger"))
    rows, trainer = run_coded(
        cfg,
        plan.variants,
        plan.straggler_factory,
        data,
        classifier,
        loggers,
        adversaries=plan.adversaries,
        adversary=plan.adversary,
    )
    metrics: dict[str, Any] = {"rows": rows}
    objective = None
    if plan.objective is not None:
        objective = objective_value(rows, plan.objective, cfg.get("optimized_at"))
        metrics[plan.objective] = objective
    if trainer.is_global_zero:
        report(cfg, rows, objective, plan.objective, loggers, info, classifier.info, plan.variants)
    return metrics, {"trainer": trainer, "data": data, "classifier": classifier, "plan": plan}


def report(
    cfg: DictConfig,
    rows: list[dict[str, Any]],
    objective: float | None,
    objective_name: str | None,
    loggers: list,
    info: dict,
    model_info: dict,
    variants: list[SchemeVariant],
) -> None:
    """Print the results, write them in the run folder (``results.csv``, ``results.json``, the
    plots of :data:`PLOTS`) and log them (:func:`nercc.runtime.loggers.log_run`).

    Parameters
    ----------
    cfg : DictConfig
        The evaluation's config (``paths.output_dir`` is the run folder).
    rows : list of dict
        The result rows.
    objective : float or None
        The value of ``optimized_metric``, when computed.
    objective_name : str or None
        Its name.
    loggers : list
        The run's Lightning loggers.
    info : dict
        The data's description (``data.describe()``).
    model_info : dict
        The classifier's checkpoint information.
    variants : list of SchemeVariant
        The variants that were run.
    """
    from nercc.evaluation.report import (
        DETECTION_COLUMNS,
        adversary_axis,
        param_columns,
        plot_vs_stragglers,
        print_results,
    )
    from nercc.utils.io import write_csv, write_json

    out = Path(cfg.paths.output_dir)
    title = (
        f"{cfg.model_name} on {cfg.data.name} ({cfg.eval.split}), {rows[0]['num_inputs']} inputs"
    )
    print_results(rows, title)
    summary = {"name": objective_name, "at": cfg.get("optimized_at"), "value": objective}
    write_csv(out / "results.csv", rows)
    write_json(out / "results.json", {"objective": summary, "rows": rows})
    against_a = adversary_axis(rows)
    plots = {
        m: plot_vs_stragglers(
            rows,
            m,
            out / (name.replace("stragglers", "adversaries") if against_a else name),
            f"{title}: {m}",
        )
        for m, name in PLOTS.items()
    }
    # The parameters each variant ran with: in the config when one setting served every S (so
    # that W&B's parallel coordinates see them), and per S among the metrics.
    names = param_columns(rows)
    # A variant's settings as given (params()), not the rows' medians: df_dec changes with S.
    labels = collections.Counter(v.label for v in variants)
    used = {v.label: v.params for v in variants if labels[v.label] == 1 and v.params}
    # One step per S; with several A, each A's metrics under coded/<variant>/A<a>/<metric>.
    several_a = len({r.get("num_adversaries") or 0 for r in rows}) > 1

    def prefix(r: dict[str, Any]) -> str:
        a = f"/A{r.get('num_adversaries') or 0}" if several_a else ""
        return f"coded/{r['variant']}{a}"

    steps = [
        (
            s,
            {
                f"{prefix(r)}/{m}": r[m]
                for r in rows
                if r["num_stragglers"] == s
                for m in (*LOGGED, *DETECTION_COLUMNS, *names)
                if r.get(m) is not None
            },
        )
        for s in dict.fromkeys(r["num_stragglers"] for r in rows)
    ]
    columns = list(dict.fromkeys(c for r in rows for c in r))
    log_run(
        loggers,
        {**plain(cfg), "params": used, "data_source": info, "classifier": model_info},
        steps=steps,
        tables={"coded/results": (columns, [[r.get(c) for c in columns] for r in rows])},
        images={
            f"coded/{metric}_vs_{path.stem.split('_vs_')[1]}": path
            for metric, path in plots.items()
        },
        summary=(
            {"objective": objective, "optimized_metric": objective_name}
            if objective is not None
            else None
        ),
    )
    if objective is not None:
        log.info(f"objective {objective_name}: {objective:.6g}")
    log.info(f"results: {out}")
