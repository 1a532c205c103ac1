"""The tuning task (``python -m nercc.tune``, conf/tune.yaml): a scheme's parameters per S, or
per (S, A) cell when the run has adversarial workers (``adversaries`` above 0).

What is tuned is what the scheme (``tune.scheme``) declares (:attr:`nercc.coding.CodingScheme.
tunables`): every setting over its declared grid or search range, unless ``tune.grid`` or
``tune.optuna.ranges`` name its parameter (:func:`nercc.tuning.search.search_space`). On the
validation split (``tune.split``), :func:`tune` evaluates a grid of settings
(``tune.search=grid``: one classifier pass per encoder setting, every decoder setting, S, A and
pattern reusing it) or Optuna's TPE (``tune.search=optuna``: one study per (S, A) cell, every
trial evaluated in every cell), picks the best setting per (S, A) cell of ``stragglers`` x
``adversaries`` by ``tune.objective``, writes ``grid.csv``, ``table.json`` and heatmaps in the run
folder, publishes the table, then runs the coded evaluation of the run's own ``table.json`` on
``eval.split`` in ``<run>/test``, each cell with its own setting.

With A = [0] only (no adversary), the table maps S to its setting (``params_by_stragglers``).
With some A above 0, it also maps S and A to theirs (``params_by_adversaries``), records the
adversary (kind, settings, placement) in ``found_by.adversary``, and its
``params_by_stragglers`` keeps, per S, the choice at the smallest A of the run (A = 0 when the
list has it): what serving reads, as it does not know A.

``grid.csv`` is rewritten after every evaluation round or trial, so an interrupted search keeps
the rows it finished.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from nercc.evaluation.runner import run_coded
from nercc.evaluation.variants import SchemeVariant, build_scheme, scheme_class
from nercc.runtime.checks import check_tune
from nercc.runtime.loggers import log_run
from nercc.tasks.evaluate import check_config as check_eval_config
from nercc.tasks.evaluate import evaluate
from nercc.tasks.setup import load_task_inputs
from nercc.tuning import TABLE_KEY, publish_table
from nercc.tuning.planning import code_key
from nercc.tuning.search import (
    OBJECTIVES,
    best_by_cells,
    grid_values,
    neighbours,
    refine_step,
    search_space,
    tpe_search,
)
from nercc.tuning.tables import table_document
from nercc.utils.instantiate import build_all, plain
from nercc.utils.io import write_csv, write_json

__all__ = ["check_config", "tune", "upper_half_ratio"]

log = logging.getLogger("nercc.tune")  # the command's logger: its lines keep their name


def check_config(cfg: DictConfig) -> tuple[DictConfig, dict[str, list[float]]]:
    """Check ``cfg.tune`` (:func:`nercc.runtime.checks.check_tune`) and derive the validation
    config of the search.

    Parameters
    ----------
    cfg : DictConfig
        A composed tuning config (conf/tune.yaml).

    Returns
    -------
    val : DictConfig
        The evaluation config of the search: the tuned scheme (its grid, or the low ends of its
        Optuna ranges, and no table) and the baseline, on ``tune.split`` with ``tune.limit``
        images and ``tune.num_patterns`` patterns, without an objective.
    space : dict of str to list of float
        The search space: each tuned parameter's grid values, or its Optuna ``[low, high]``,
        as given in ``tune`` or declared by the scheme.

    Raises
    ------
    ConfigError
        A setting of ``tune`` that cannot run, named by its key.
    """
    check_tune(cfg, OBJECTIVES)
    t = cfg.tune
    scheme = scheme_class(cfg.scheme[t.scheme])
    assert scheme is not None  # checked
    if t.search == "grid":
        given = search_space(scheme, t.grid, "grid")
        space = {
            name: grid_values(name, list(values), scheme.tunable(name))
            for name, values in given.items()
        }
    else:
        space = {
            name: list(b) for name, b in search_space(scheme, t.optuna.ranges, "search").items()
        }
    val = cfg.copy()
    with open_dict(val):
        node = val.scheme[t.scheme]
        for name in space:
            node[name] = space[name] if t.search == "grid" else space[name][0]
        node[TABLE_KEY] = "none"
        val.scheme = {k: v for k, v in val.scheme.items() if k in (t.scheme, t.baseline)}
        val.eval.split = t.split
        val.eval.limit = t.limit
        val.eval.num_patterns = t.num_patterns
        val.optimized_metric = None
    return val, space


def tune(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Tune, publish and test.

    Parameters
    ----------
    cfg : DictConfig
        A composed tuning config (conf/tune.yaml).

    Returns
    -------
    metrics : dict
        ``table`` (the table's content), ``table_path`` (the run's ``table.json``),
        ``published_table`` when published, and with ``tune.test`` the test evaluation's metrics
        (``rows``, the objective) and ``ratio_upper_half``.
    objects : dict
        ``data``, ``classifier`` and ``rows`` (every validation row).
    """
    started = time.time()  # a table published after this is another run's (see publish_table)
    val, space = check_config(cfg)
    plan = check_eval_config(val)
    t = cfg.tune
    names = list(space)
    loaded = load_task_inputs(cfg, batches=val)
    data, classifier = loaded.data, loaded.classifier
    loggers = build_all(cfg.get("logger"))
    out = Path(cfg.paths.output_dir)
    rows, grid_rows = _search(cfg, val, plan, space, data, classifier)
    best = best_by_cells(rows, t.scheme, names, t.objective)
    cells = [(int(s), int(a)) for s in cfg.stragglers for a in plan.adversaries]
    missing = [cell for cell in cells if cell not in best]
    if missing:
        where = (
            f"S={[s for s, _ in missing]}"
            if not per_a(plan.adversaries)
            else "(S, A)=" + ", ".join(f"({s}, {a})" for s, a in missing)
        )
        raise ValueError(f"tune: no finite {t.objective} of {t.scheme} at {where}")
    summary = _summary(t, rows, best, per_a(plan.adversaries))
    content = _table_content(cfg, plan, space, rows, best, summary, classifier.info)
    write_csv(out / "grid.csv", rows)
    write_json(out / "table.json", table_document(content))
    heatmaps = _heatmaps(cfg, grid_rows, best, names, out, plan.adversaries)
    _print_summary(cfg, summary, per_a(plan.adversaries))
    tuned = [r for r in rows if r["scheme"] == t.scheme]
    counts = (
        ["num_stragglers", "num_adversaries"] if per_a(plan.adversaries) else ["num_stragglers"]
    )
    grid_columns = [*counts, *names, "mse", "acc", "rel_acc", "agreement"]
    best_columns = list(summary[0])
    log_run(
        loggers,
        plain(cfg),
        tables={
            "tune/grid": (grid_columns, [[r.get(c) for c in grid_columns] for r in tuned]),
            "tune/best": (best_columns, [[r.get(c) for c in best_columns] for r in summary]),
        },
        images={f"tune/{t.objective}_{cell}": path for cell, path in heatmaps.items()},
    )
    # the test reads the run's own table: a concurrent tuner may replace the published one
    table_file = out / "table.json"
    metrics: dict[str, Any] = {"table": content, "table_path": str(table_file)}
    if t.publish:
        metrics["published_table"] = _publish(content, cfg.paths.lambdas_dir, started, table_file)
    if t.test:
        metrics.update(_test(cfg, table_file, names, out / "test"))
    write_json(out / "metrics.json", {k: v for k, v in metrics.items() if k != "table"})
    return metrics, {"data": data, "classifier": classifier, "rows": rows}


def per_a(adversaries: list[int]) -> bool:
    """Whether a run with the A list ``adversaries`` is tuned per (S, A): some A above 0."""
    return max(adversaries) > 0


def _search(
    cfg: DictConfig,
    val: DictConfig,
    plan: Any,
    space: dict[str, list[float]],
    data: Any,
    classifier: Any,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run the search of ``cfg.tune`` on the validation config ``val``: every row (the
    baseline's, the grid's or the trials', then the refinement's) and the rows before any
    refinement (the heatmaps' grid). Rows are kept in ``<run>/grid.csv`` as they are found, so
    that an interrupted search keeps them."""
    t = cfg.tune
    names = list(space)
    out = Path(cfg.paths.output_dir)
    finished: list[dict[str, Any]] = []
    attack = {"adversaries": plan.adversaries, "adversary": plan.adversary}

    def save(new: list[dict[str, Any]]) -> list[dict[str, Any]]:
        finished.extend(new)
        if finished:
            write_csv(out / "grid.csv", finished)
        return new

    if t.search == "grid":
        rows, _ = run_coded(val, plan.variants, plan.straggler_factory, data, classifier, **attack)
        save(rows)
        return rows + _refine(val, plan, data, classifier, rows, names, save), list(rows)
    baseline = [v for v in plan.variants if v.name != t.scheme]
    rows, _ = (
        run_coded(val, baseline, plan.straggler_factory, data, classifier, **attack)
        if baseline
        else ([], None)
    )
    save(rows)

    def trial(params: dict[str, float]) -> list[dict[str, Any]]:
        one = val.copy()
        with open_dict(one):
            one.scheme = {t.scheme: {**OmegaConf.to_container(val.scheme[t.scheme]), **params}}
        variants = check_eval_config(one).variants
        found, _ = run_coded(one, variants, plan.straggler_factory, data, classifier, **attack)
        return save(found)

    scheme = scheme_class(cfg.scheme[t.scheme])
    rows += tpe_search(
        trial,
        space,
        list(cfg.stragglers),
        t.objective,
        t.optuna.n_trials,
        t.optuna.seed,
        {name: scheme.tunable(name) for name in names},  # type: ignore[union-attr]
        plan.adversaries,
    )
    return rows, list(rows)


def _summary(
    t: DictConfig,
    rows: list[dict[str, Any]],
    best: dict[tuple[int, int], dict[str, Any]],
    with_a: bool,
) -> list[dict[str, Any]]:
    """One row per (S, A) cell: the chosen setting, its validation objective, mse and rel_acc,
    and the baseline's beside them; ``num_adversaries`` only when ``with_a`` (some A above 0)."""
    baseline_rows = {
        (r["num_stragglers"], r.get("num_adversaries") or 0): r
        for r in rows
        if r["scheme"] == t.baseline
    }
    return [
        {
            "num_stragglers": s,
            **({"num_adversaries": a} if with_a else {}),
            **chosen["params"],
            t.objective: chosen["row"][t.objective],
            "mse": chosen["row"]["mse"],
            "rel_acc": chosen["row"]["rel_acc"],
            **(
                {
                    f"{t.baseline}_mse": baseline_rows[s, a]["mse"],
                    f"{t.baseline}_rel_acc": baseline_rows[s, a]["rel_acc"],
                }
                if (s, a) in baseline_rows
                else {}
            ),
        }
        for (s, a), chosen in best.items()
    ]


def _table_content(
    cfg: DictConfig,
    plan: Any,
    space: dict[str, list[float]],
    rows: list[dict[str, Any]],
    best: dict[tuple[int, int], dict[str, Any]],
    summary: list[dict[str, Any]],
    classifier: dict[str, Any],
) -> dict[str, Any]:
    """The table's content: the setting per S, its validation row, and how it was found
    (``classifier``: the classifier's ``info``, its checkpoint and content hash). A run with some
    A above 0 adds the setting and the validation row per S and A, and the adversary; per S it
    keeps the choice at the smallest A (see the module's docstring)."""
    t = cfg.tune
    smallest = {s: min(a for (t_s, a) in best if t_s == s) for s, _ in best}
    by_s = {str(s): best[s, a]["params"] for s, a in smallest.items()}
    validation = {
        str(row["num_stragglers"]): row
        for row in summary
        if row.get("num_adversaries", 0) == smallest[row["num_stragglers"]]
    }
    per_cell: dict[str, Any] = {}
    if per_a(plan.adversaries):
        per_cell["params_by_adversaries"] = {
            str(s): {str(a): chosen["params"] for (t_s, a), chosen in best.items() if t_s == s}
            for s in smallest
        }
        per_cell["validation_by_adversaries"] = {
            str(s): {str(r["num_adversaries"]): r for r in summary if r["num_stragglers"] == s}
            for s in smallest
        }
    return {
        "scheme": t.scheme,
        "model": cfg.model_name,
        "dataset": cfg.data.name,
        "code": code_key(cfg.scheme[t.scheme], cfg.coding),
        "checkpoint_sha256": classifier["sha256"],
        "params_by_stragglers": by_s,
        **per_cell,
        "validation": validation,
        "found_by": {
            "split": t.split,
            "inputs": rows[0]["num_inputs_evaluated"],
            "patterns_per_group": t.num_patterns,
            "search": t.search,
            "space": space,
            "trials": t.optuna.n_trials if t.search == "optuna" else None,
            "refine_rounds": t.refine if t.search == "grid" else None,
            "objective": t.objective,
            "straggler": plain(cfg.straggler) if OmegaConf.is_dict(cfg.straggler) else None,
            **(_adversary_found_by(cfg, plan) if per_a(plan.adversaries) else {}),
            "seed": cfg.seed,
            "checkpoint": classifier["path"],
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        },
    }


def _adversary_found_by(cfg: DictConfig, plan: Any) -> dict[str, Any]:
    """How the adversarial workers of a run answered: the A list and the adversary's kind, its
    settings and its placement."""
    described = plan.adversary.describe()
    node = plain(cfg.adversary) if OmegaConf.is_dict(cfg.adversary) else {}
    settings = {k: v for k, v in node.items() if not k.startswith("_") and k != "placement"}
    return {
        "adversaries": list(plan.adversaries),
        "adversary": {
            "kind": described["adversary"],
            "settings": settings,
            "placement": described["adversary_placement"],
        },
    }


def _publish(content: dict[str, Any], directory: Any, started: float, table_file: Path) -> str:
    """Publish the table in ``directory``; say what it replaced (another run's table published
    since ``started``: a warning). Returns the published path."""
    published, backup, replaced_at = publish_table(content, directory, since=started)
    log.info(f"published {published}")
    if replaced_at is not None:
        when = replaced_at.isoformat(timespec="seconds")
        log.warning(
            f"replaced a table published by another run at {when} (kept as {backup}); "
            f"this run's table is also in {table_file}"
        )
    elif backup is not None:
        log.info(f"note: it replaces the previous table, kept as {backup}")
    return str(published)


def _test(cfg: DictConfig, table_file: Path, names: list[str], folder: Path) -> dict[str, Any]:
    """Evaluate the run's table on ``eval.split`` in ``folder``: the evaluation's metrics and
    ``ratio_upper_half`` (the tuned scheme's mse over the baseline's, upper half of S)."""
    t = cfg.tune
    test = cfg.copy()
    with open_dict(test):
        test.scheme[t.scheme][TABLE_KEY] = str(table_file)
        for name in names:
            test.scheme[t.scheme][name] = None
        test.paths.output_dir = str(folder)
    metrics, _ = evaluate(test)
    metrics["ratio_upper_half"] = upper_half_ratio(
        metrics["rows"], t.scheme, t.baseline, list(cfg.stragglers)
    )
    if metrics["ratio_upper_half"] is not None:
        log.info(
            f"test: mean {t.scheme}/{t.baseline} mse ratio over the upper half of S "
            f"{metrics['ratio_upper_half']:.3f}"
        )
    return metrics


def _refine(
    val: DictConfig,
    plan: Any,
    data: Any,
    classifier: Any,
    rows: list[dict[str, Any]],
    names: list[str],
    save: Any,
) -> list[dict[str, Any]]:
    """``tune.refine`` rounds around each (S, A) cell's best setting, each parameter moved as its
    scheme declares it (:func:`nercc.tuning.search.neighbours`): a log-scale parameter times
    10^-h, 1 and 10^h (h half a grid step, halved each round; 0 stays), an integer by -1, 0 and
    +1, another number by -h, 0 and +h, within its range; evaluated only in that cell (with
    A = [0] only, at that S). Each round's rows are passed to ``save`` as soon as they are
    found."""
    t = val.tune
    found: list[dict[str, Any]] = []
    node = {k: v for k, v in val.scheme[t.scheme].items() if k not in (*names, TABLE_KEY)}
    scheme = scheme_class(val.scheme[t.scheme])
    assert scheme is not None  # checked
    tunables = [scheme.tunable(name) for name in names]
    sizes = (node.get("num_inputs"), node.get("num_workers"))
    tuned = [r for r in rows if r["scheme"] == t.scheme]
    steps = [refine_step(tunable, [r[tunable.name] for r in tuned]) for tunable in tunables]
    with_a = per_a(plan.adversaries)
    attack = {"adversaries": plan.adversaries, "adversary": plan.adversary}
    for round_ in range(int(t.refine)):
        best = best_by_cells(rows + found, t.scheme, names, t.objective)
        tried = {tuple(r[n] for n in names) for r in rows + found if r["scheme"] == t.scheme}
        wanted: dict[tuple[float, ...], set] = {}
        for (s, a), chosen in best.items():
            around = [
                neighbours(tunable, v, step, round_, *sizes)
                for tunable, v, step in zip(tunables, chosen["params"].values(), steps, strict=True)
            ]
            for setting in itertools.product(*around):
                if setting not in tried:
                    wanted.setdefault(setting, set()).add((s, a) if with_a else s)
        if not wanted:
            break
        variants = [
            SchemeVariant(
                t.scheme,
                build_scheme(t.scheme, node, **dict(zip(names, setting, strict=True))),
                f"{t.scheme}(refine)",
                frozenset(at),
                "tune",
            )
            for setting, at in wanted.items()
        ]
        refined, _ = run_coded(val, variants, plan.straggler_factory, data, classifier, **attack)
        found += save(refined)
    return found


def upper_half_ratio(
    rows: list[dict[str, Any]], scheme: str, baseline: str | None, stragglers: list[int]
) -> float | None:
    """Mean over the upper half of the S list (and every A) of ``scheme``'s mse / ``baseline``'s
    mse.

    Parameters
    ----------
    rows : list of dict
        Result rows (``scheme``, ``num_stragglers``, ``mse``; ``num_adversaries``, A = 0 where
        absent).
    scheme, baseline : str
        The tuned scheme and the one it is compared with (None: no ratio).
    stragglers : list of int
        The S list, in order; its upper half is ``stragglers[len // 2:]``.

    Returns
    -------
    float or None
        The mean ratio over the (S, A) cells of the upper half of S that both have, or None (no
        baseline, or no such cell).
    """
    if baseline is None:
        return None
    mse = {
        (r["scheme"], r["num_stragglers"], r.get("num_adversaries") or 0): r["mse"] for r in rows
    }
    upper = set(stragglers[len(stragglers) // 2 :])
    ratios = [
        value / mse[(baseline, s, a)]
        for (name, s, a), value in mse.items()
        if name == scheme and s in upper and (baseline, s, a) in mse
    ]
    return sum(ratios) / len(ratios) if ratios else None


def _heatmaps(
    cfg: DictConfig,
    rows: list[dict[str, Any]],
    best: dict[tuple[int, int], dict[str, Any]],
    names: list[str],
    out: Path,
    adversaries: list[int],
) -> dict[str, Path]:
    """Heatmaps of the validation objective over the two tuned parameters at a few S
    (``heatmap_S<S>.png``); with some A above 0, at the smallest and the largest A of each
    (``heatmap_S<S>_A<A>.png``). Keyed by ``S<S>`` or ``S<S>_A<A>``."""
    count = int(cfg.tune.heatmaps)
    if count <= 0 or len(names) != 2:
        return {}
    from nercc.tuning.plots import plot_search

    stragglers = list(cfg.stragglers)
    chosen = sorted(
        {stragglers[round(i * (len(stragglers) - 1) / max(count - 1, 1))] for i in range(count)}
    )
    with_a = per_a(adversaries)
    paths = {}
    for s in chosen:
        for a in sorted({min(adversaries), max(adversaries)}):
            at = [
                r
                for r in rows
                if r["scheme"] == cfg.tune.scheme
                and r["num_stragglers"] == s
                and (r.get("num_adversaries") or 0) == a
            ]
            cell = f"S{s}_A{a}" if with_a else f"S{s}"
            title = (
                f"{cfg.model_name} on {cfg.data.name} ({cfg.tune.split}), "
                f"K={at[0]['num_inputs']}, N={at[0]['num_workers']}, S={s}"
                f"{f', A={a}' if with_a else ''}: {cfg.tune.scheme} {cfg.tune.objective}"
            )
            paths[cell] = plot_search(
                at,
                names,
                cfg.tune.objective,
                best[s, a]["params"],
                out / f"heatmap_{cell}.png",
                title,
            )
    return paths


def _print_summary(cfg: DictConfig, summary: list[dict[str, Any]], with_a: bool) -> None:
    """The chosen setting of every S (of every (S, A) cell when ``with_a``), as a table."""
    from rich.console import Console
    from rich.table import Table

    where = "(S, A)" if with_a else "S"
    table = Table(
        title=(
            f"best {cfg.tune.scheme} parameters per {where} ({cfg.tune.split}, "
            f"{cfg.tune.objective})"
        )
    )
    for column in summary[0]:
        table.add_column(column, justify="right")
    for row in summary:
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row.values()))
    Console(width=140).print(table)
