"""The figures task: check every figure config, run its evaluations, draw it, write summary.md.

``make_figures(cfg) -> (metrics, objects)`` is what ``python -m nercc.figures`` calls (and tests
call directly). Each run is a :class:`~nercc.figures.specs.PlannedRun`: its overrides compose an
``eval`` config exactly as ``python -m nercc.eval <overrides>`` would, and the evaluate task gives
its rows, so that every number of a figure can be regenerated alone with the command written
beside it. Runs share the output cache (``eval.cache``): a run that differs from an earlier one
only in its decoder, S, patterns or straggler model skips the classifier.

The evaluate, train and tune tasks get self-contained configs (:func:`task_config`): every
``${hydra:...}`` of the composed config is replaced by its value and the output folder is set, so
that they run in this process without touching Hydra's global state (the app's own).
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import logging
import re
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from nercc.figures.adversarial import adversary_axis_problem, theory_slope
from nercc.figures.specs import (
    FigureSpec,
    ModelSpec,
    PlannedRun,
    check_figures,
    convergence_stragglers,
    merge_overrides,
    plan_runs,
)
from nercc.paths import CONFIG_DIR
from nercc.runtime.checks import check_checkpoint_exists, check_loggers, check_writable
from nercc.runtime.logs import error_line
from nercc.utils.errors import ConfigError
from nercc.utils.io import write_json

__all__ = [
    "compose_task",
    "figure_file",
    "label_rows",
    "make_figures",
    "task_config",
    "without_hydra",
]

log = logging.getLogger("nercc.figures")

#: What composing a run's overrides raises for a bad one (Hydra's message is kept).
COMPOSE_ERRORS = (HydraException, MissingConfigException, OmegaConfBaseException)
#: The folders an eval run takes from the figures app where they differ from eval's defaults.
FORWARDED_PATHS = ("data_dir", "checkpoint_dir", "lambdas_dir", "cache_dir")
#: ``${hydra:<key>}``, innermost (its key holds no interpolation).
HYDRA_INTERPOLATION = re.compile(r"\$\{hydra:([^${}]+)\}")


# -- composing the eval (train, tune) configs --------------------------------------------------
@contextlib.contextmanager
def _hydra_initialized() -> Iterator[None]:
    """Hydra's config search for ``compose``: the running app's, or a temporary one."""
    if GlobalHydra.instance().is_initialized():
        yield
    else:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            yield


def compose_task(name: str, overrides: Sequence[str]) -> DictConfig:
    """The config ``python -m nercc.<name> <overrides>`` composes, with its ``hydra`` node (whose
    ``runtime.choices`` its ``${hydra:...}`` read); :func:`task_config` makes it runnable."""
    with _hydra_initialized():
        return compose(config_name=name, overrides=list(overrides), return_hydra_config=True)


def without_hydra(cfg: DictConfig) -> DictConfig:
    """A copy of ``cfg`` that needs no Hydra runtime: every ``${hydra:<key>}`` outside the
    ``hydra`` node replaced by the value at ``hydra.<key>`` of ``cfg`` itself, and the ``hydra``
    node dropped.

    Parameters
    ----------
    cfg : DictConfig
        A config composed with ``return_hydra_config=True`` (and ``hydra.runtime.output_dir``
        set where the config reads it).

    Returns
    -------
    DictConfig
        The copy; an interpolation that is the whole value keeps the value's type, one inside a
        string (``${hydra:runtime.output_dir}/published``) is replaced by its text.
    """
    if "hydra" not in cfg:
        raise ValueError(f"cfg must hold Hydra's node (return_hydra_config=True), got {list(cfg)}")
    cfg = copy.deepcopy(cfg)
    hydra_node = cfg.hydra

    def value(match: re.Match) -> Any:
        return OmegaConf.select(hydra_node, match.group(1), throw_on_missing=True)

    def text(match: re.Match) -> str:
        return str(value(match)).replace("${", "\\${")

    def substitute(node: DictConfig | ListConfig, raw: dict | list) -> None:
        keys = raw.keys() if isinstance(raw, dict) else range(len(raw))
        for key in keys:
            item = raw[key]  # type: ignore[index]
            if isinstance(item, dict | list):
                substitute(node[key], item)
            elif isinstance(item, str) and HYDRA_INTERPOLATION.search(item):
                whole = HYDRA_INTERPOLATION.fullmatch(item)
                if whole is not None and not isinstance(value(whole), str):
                    node[key] = value(whole)
                else:
                    node[key] = HYDRA_INTERPOLATION.sub(text, item)

    raw = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(raw, dict)
    del raw["hydra"]
    substitute(cfg, raw)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def task_config(composed: DictConfig, output_dir: str | Path) -> DictConfig:
    """What ``python -m nercc.<task>`` would run from ``composed``, writing in ``output_dir``:
    a self-contained copy (:func:`without_hydra`) with ``paths.output_dir`` set."""
    composed = copy.deepcopy(composed)
    composed.hydra.runtime.output_dir = str(output_dir)
    cfg = without_hydra(composed)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg


def _forwarded_paths(cfg: DictConfig) -> tuple[str, ...]:
    """``paths.<key>=<value>`` for the app's folders that differ from an eval run's defaults, so
    that every run (and its printed command) reads and writes where the app was told to."""
    default = task_config(compose_task("eval", []), "/nonexistent")
    found = []
    for key in FORWARDED_PATHS:
        mine, theirs = str(cfg.paths[key]), str(default.paths[key])
        if mine != theirs:
            found.append(f"paths.{key}={mine}")
    return tuple(found)


def _app_overrides() -> list[str]:
    """The app's own command-line overrides but the figure and model selection and Hydra's own
    (to write the command that regenerates one figure alone)."""
    try:
        given = list(HydraConfig.get().overrides.task)
    except Exception:  # composed without Hydra's runtime
        given = []
    return [o for o in given if not re.match(r"^[+~]*(figure|figures\.only|hydra\.[\w.]+)=", o)]


def _quote(items: Sequence[str]) -> str:
    return " ".join(shlex.quote(i) for i in items)


def figure_file(figure: str, model: str) -> str:
    return f"{figure}_{model}.png"


# -- labelling rows ----------------------------------------------------------------------------
def convergence_panels(fraction: float, fixed: int) -> tuple[str, str]:
    return f"S = {fraction:g} N (fixed fraction)", f"S = {fixed} (fixed)"


def adversary_panel(exponent: str, regime: str) -> str:
    return f"A = round(N^{exponent}), {regime}"


def label_rows(figure: FigureSpec, run: PlannedRun, rows: Sequence[dict]) -> list[dict]:
    """The run's rows that the figure draws, each with ``label`` and ``panel`` (a convergence
    row at both S regimes appears in both panels; under adversaries, a row whose A is
    round(N^a) of two exponents a in both of theirs, with ``exponent``)."""
    labelled = []
    for row in rows:
        label = run.spec.label_of(row["scheme"])
        if label is None:
            continue
        base = {**row, "label": label, "panel": run.panel, "run": run.index}
        if figure.kind == "adversary_convergence":
            if row["num_stragglers"] != run.extra["num_stragglers"]:
                continue
            for i, (exponent, count) in enumerate(run.extra["adversaries"].items()):
                if (row.get("num_adversaries") or 0) == count:
                    panel = adversary_panel(exponent, run.extra["regime"])
                    labelled.append({**base, "panel": panel, "panel_index": i,
                                     "exponent": float(exponent)})  # fmt: skip
            continue
        if figure.kind != "convergence":
            labelled.append(base)
            continue
        n, fraction, fixed = (
            row["num_workers"],
            run.extra["fraction"],
            run.extra["fixed_stragglers"],
        )
        at_fraction, _ = convergence_stragglers(n, fraction, fixed)
        by_fraction, by_fixed = convergence_panels(fraction, fixed)
        if row["num_stragglers"] == at_fraction:
            labelled.append({**base, "panel": by_fraction, "panel_index": 0})
        if row["num_stragglers"] == fixed:
            labelled.append({**base, "panel": by_fixed, "panel_index": 1})
    return labelled


# -- the task ----------------------------------------------------------------------------------
class _Planned:
    """What the checks found: per (figure, model), the runs to evaluate and the notes."""

    def __init__(self) -> None:
        self.runs: dict[tuple[str, str], list[PlannedRun]] = {}
        self.configs: dict[tuple[str, str, int], DictConfig] = {}
        self.notes: dict[tuple[str, str], list[str]] = {}
        self.model_notes: dict[str, list[str]] = {}
        self.train: list[ModelSpec] = []
        # (model, the run's coding overrides: a table is per code and arrangement of inputs)
        self.tune: list[tuple[ModelSpec, tuple[str, ...]]] = []
        self.paths: tuple[str, ...] = ()  # the app's folders, forwarded to every run


def _hydra_line(error: BaseException) -> str:
    """Hydra's message on a bad override, on one line, without its config search path."""
    return " ".join(str(error).split("Config search path")[0].split()).rstrip(":; ")


def _raise_all(errors: Sequence[ConfigError]) -> None:
    """Every error on its own line (``error: <key>: <what>, got <value>``): all but the last
    printed here, the last raised for the task wrapper to print and exit 1 with."""
    if not errors:
        return
    for error in errors[:-1]:
        print(f"error: {error}", file=sys.stderr, flush=True)
    raise errors[-1]


def _plan(
    cfg: DictConfig, models: dict[str, ModelSpec], figures: dict[str, FigureSpec], scratch: Path
) -> _Planned:
    """Compose and check (:func:`nercc.tasks.evaluate.check_config`) every run before any work."""
    from nercc.tasks.evaluate import check_config

    errors: list[ConfigError] = []
    planned = _Planned()
    common = tuple(OmegaConf.to_container(cfg.figures.common, resolve=True) or ())
    paths = planned.paths = _forwarded_paths(cfg)
    switches = OmegaConf.to_container(cfg.figures.switches, resolve=True) or {}
    tune_missing = bool(cfg.figures.tune_missing)
    drawn: dict[str, ModelSpec] = {}
    for name, model in models.items():
        base = merge_overrides(common, paths, model.overrides)
        try:
            model_cfg = task_config(compose_task("eval", base), scratch / "check")
            check_checkpoint_exists(model_cfg)
        except ConfigError as error:
            if model.train is not None:
                planned.train.append(model)
            elif model.optional:
                planned.model_notes.setdefault(name, []).append(f"not drawn: {error}")
                log.info(f"note: {name} not drawn: {error}")
                continue
            else:
                errors.append(ConfigError(f"figures.models.{name}", f"{error} "
                                          "(make figures trains the default models)"))  # fmt: skip
                continue
        except COMPOSE_ERRORS as error:  # a bad override: Hydra's own message
            errors.append(ConfigError(f"figures.models.{name}.overrides", _hydra_line(error)))
            continue
        drawn[name] = model
    for figure in figures.values():
        for name, model in drawn.items():
            if figure.models is not None and name not in figure.models:
                continue
            runs, notes = plan_runs(figure, model, common, paths, switches)
            kept = []
            for run in runs:
                try:
                    composed = compose_task("eval", run.overrides)
                    run_cfg = task_config(composed, scratch / "check")
                    plan = check_config(run_cfg)
                except ValueError as error:  # ConfigError, or a scheme that refuses a value
                    if run.spec.optional:
                        notes.append(f"{', '.join(run.spec.names)}: not drawn: {error}")
                        continue
                    errors.append(ConfigError(run.where, str(error)))
                    continue
                except COMPOSE_ERRORS as error:
                    errors.append(ConfigError(f"{run.where}.overrides", _hydra_line(error)))
                    continue
                if figure.kind == "vs_adversaries":
                    problem = adversary_axis_problem(
                        list(run_cfg.stragglers), list(run_cfg.get("adversaries") or [0])
                    )
                    if problem is not None:
                        errors.append(ConfigError(run.where, problem))
                        continue
                needs = run.spec.needs_table
                if needs is not None and plan.tables.get(needs) is None:
                    coding = tuple(o for o in run.spec.overrides if o.startswith("coding."))
                    if model.tune is not None or tune_missing:
                        if (model, coding) not in planned.tune:
                            planned.tune.append((model, coding))
                    else:
                        names = ", ".join(run.spec.names)
                        tune = _quote(merge_overrides(model.overrides, coding))
                        notes.append(
                            f"{names}: not drawn: no tuned table of {needs} for {name} (K, N "
                            f"and points of this run) in {run_cfg.paths.lambdas_dir}; tune it "
                            f"with: python -m nercc.tune {tune} (or figures.tune_missing=true)"
                        )
                        continue
                kept.append(run)
                planned.configs[(figure.name, name, run.index)] = composed
            # one note per switched-off or refused setting, not one per panel or N
            planned.notes[(figure.name, name)] = list(dict.fromkeys([*notes, *figure.notes]))
            planned.runs[(figure.name, name)] = kept
    _raise_all(errors)
    return planned


def _train_and_tune(cfg: DictConfig, planned: _Planned, run_dir: Path) -> dict[str, float]:
    """Train the models whose ``train`` overrides are given and whose checkpoint is missing (the
    dry mode's), and tune the tables that are missing where tuning is allowed."""
    seconds: dict[str, float] = {}
    paths = planned.paths
    for model in planned.train:
        start = time.perf_counter()
        from nercc.tasks.train import train

        composed = compose_task("train", merge_overrides(paths, model.train))
        train_cfg = task_config(composed, run_dir / "train" / model.name)
        log.info(f"training {model.name}: python -m nercc.train {_quote(model.train or ())}")
        train(train_cfg)
        seconds[f"train {model.name}"] = time.perf_counter() - start
    common = tuple(OmegaConf.to_container(cfg.figures.common, resolve=True) or ())
    for model, coding in planned.tune:
        start = time.perf_counter()
        from nercc.tasks.tune import tune

        overrides = merge_overrides(common, paths, model.overrides, coding, model.tune or ())
        name = "_".join([model.name, *(o.split("=", 1)[1] for o in coding)])
        log.info(f"tuning {model.name}: python -m nercc.tune {_quote(overrides)}")
        tune_cfg = task_config(compose_task("tune", overrides), run_dir / "tune" / name)
        tune(tune_cfg)
        seconds[f"tune {name}"] = time.perf_counter() - start
    return seconds


def _title(figure: FigureSpec, model: ModelSpec, runs: list[dict]) -> str:
    first = runs[0]
    values = {
        "model": model.name,
        "about": model.about or model.name,
        "split": first["split"],
        "images": "/".join(str(n) for n in dict.fromkeys(r["images"] for r in runs)),
        "K": first["num_inputs"],
        "N": first["num_workers"],
        "S": "/".join(str(s) for s in sorted({r["num_stragglers"] for d in runs
                                              for r in d["rows"]})),
    }  # fmt: skip

    class Keep(dict):
        def __missing__(self, key: str) -> str:
            return "{" + key + "}"

    return figure.title.format_map(Keep(values))


def _draw(figure: FigureSpec, rows: list[dict], path: Path, title: str) -> dict[str, Any]:
    from nercc.figures import plots

    if figure.kind == "vs_stragglers":
        return plots.plot_vs_stragglers(rows, figure.metrics, path, title)
    if figure.kind == "vs_adversaries":
        return plots.plot_vs_adversaries(rows, figure.metrics, path, title)
    if figure.kind == "lambda_grid":
        return plots.plot_lambda_grid(rows, path, title, figure.metrics[0])
    if figure.kind == "adversary_convergence":
        theory = {r["panel"]: theory_slope(r["exponent"]) for r in rows}
        anchor = figure.runs[0].names[0] if figure.runs and figure.runs[0].names else None
        return plots.plot_adversary_convergence(rows, path, title, theory, anchor)
    return plots.plot_convergence(rows, path, title)


def _evaluate_figure(
    figure: FigureSpec,
    model: ModelSpec,
    runs: list[PlannedRun],
    planned: _Planned,
    out: Path,
    run_dir: Path,
) -> dict[str, Any]:
    """Evaluate the runs of one figure for one model, draw it, write its data file."""
    from nercc.tasks.evaluate import check_config, evaluate

    start = time.perf_counter()
    notes = list(planned.notes.get((figure.name, model.name), []))
    done: list[dict[str, Any]] = []
    labelled: list[dict] = []
    for run in runs:
        composed = planned.configs[(figure.name, model.name, run.index)]  # by the checks
        folder = run_dir / figure.name / model.name / f"{run.index:02d}"
        cfg = task_config(composed, folder)
        t0 = time.perf_counter()
        needs = run.spec.needs_table
        if needs is not None and check_config(cfg).tables.get(needs) is None:
            notes.append(f"{', '.join(run.spec.names)}: not drawn: no tuned table of {needs}")
            continue
        log.info(f"{figure.name} / {model.name}: run {run.index}: {run.command}")
        try:
            metrics, _ = evaluate(cfg)
        except ValueError as error:  # an optional run the evaluation refuses: a note
            if not run.spec.optional:
                raise
            note = f"{', '.join(run.spec.names)}: not drawn{_panel(run)}: {error_line(error)}"
            log.warning(f"{figure.name} / {model.name}: {note}")
            notes.append(note)
            continue
        rows = metrics["rows"]
        seconds = time.perf_counter() - t0
        done.append({
            "index": run.index,
            "labels": {r["scheme"]: run.spec.label_of(r["scheme"]) for r in rows
                       if run.spec.label_of(r["scheme"]) is not None},
            "panel": run.panel,
            "extra": dict(run.extra),
            "command": run.command,
            "overrides": list(run.overrides),
            "split": str(cfg.eval.split),
            "images": max(r["num_inputs_evaluated"] for r in rows),
            "patterns_per_group": int(cfg.eval.num_patterns),
            "num_inputs": rows[0]["num_inputs"],
            "num_workers": rows[0]["num_workers"],
            "seconds": round(seconds, 2),
            "folder": str(cfg.paths.output_dir),
            "rows": rows,
        })  # fmt: skip
        labelled += label_rows(figure, run, rows)
    data: dict[str, Any] = {
        "figure": figure.name,
        "kind": figure.kind,
        "model": model.name,
        "about": model.about or model.name,
        "metrics": list(figure.metrics),
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "runs": done,
        "notes": notes,
        "file": None,
    }
    labelled.sort(key=lambda r: r.get("panel_index", 0))  # the fixed-fraction panel first
    if labelled:
        path = out / figure_file(figure.name, model.name)
        data.update(_draw(figure, labelled, path, _title(figure, model, done)))
        data["file"] = path.name
        data["title"] = _title(figure, model, done)
    else:
        notes.append("nothing to draw: every run was switched off or refused")
    data["seconds"] = round(time.perf_counter() - start, 2)
    write_json(out / "data" / f"{figure.name}_{model.name}.json", data)
    log.info(f"{figure.name} / {model.name}: {data['file']} ({data['seconds']:.1f} s)")
    return data


def _panel(run: PlannedRun) -> str:
    return f" ({run.panel} stragglers)" if run.panel else ""


def _log_commands(planned: _Planned) -> None:
    """Print, per figure and model, the eval commands that give its rows."""
    for (figure, model), runs in planned.runs.items():
        lines = "\n".join(f"  {run.command}" for run in runs) or "  (no run)"
        log.info(f"{figure} / {model}: its rows come from\n{lines}")
        for note in planned.notes.get((figure, model), []):
            log.info(f"note: {figure} / {model}: {note}")


def make_figures(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Draw every selected figure for every selected model; write summary.md.

    Returns
    -------
    metrics : dict
        ``figures`` (one data dict per figure and model, as written to
        ``<output>/data/<figure>_<model>.json``), ``summary`` (the path of summary.md),
        ``seconds`` (the whole task) and ``slopes``.
    objects : dict
        ``models`` and ``figures`` (the specs).
    """
    start = time.perf_counter()
    errors, models, figures = check_figures(cfg)
    _raise_all(errors)
    out = Path(cfg.figures.output_dir) / ("dry" if cfg.figures.dry else "")
    check_writable("figures.output_dir", out)
    check_loggers(cfg)
    run_dir = Path(cfg.paths.output_dir)
    planned = _plan(cfg, models, figures, run_dir)
    _log_commands(planned)
    from nercc.figures.summary import write_summary

    prepared = _train_and_tune(cfg, planned, run_dir)
    written = []
    for figure in figures.values():
        for name, model in models.items():
            if (figure.name, name) not in planned.runs:
                continue
            written.append(
                _evaluate_figure(
                    figure,
                    model,
                    planned.runs[(figure.name, name)],
                    planned,
                    out,
                    run_dir / "evals",
                )  # fmt: skip
            )
    seconds = time.perf_counter() - start
    app = _app_overrides()
    order = list(cfg.figures.dry_models if cfg.figures.dry else cfg.figures.models)
    summary_path, summary = write_summary(
        out, cfg, order, figures, planned.model_notes, prepared, seconds, app
    )
    _log_to_loggers(cfg, out, written, summary)
    log.info(f"figures: {out} (summary {summary_path}, {seconds:.0f} s)")
    metrics = {
        "figures": written,
        "summary": str(summary_path),
        "seconds": seconds,
        "slopes": summary["slopes"],
    }
    return metrics, {"models": models, "figures": figures}


def _log_to_loggers(cfg: DictConfig, out: Path, written: list[dict], summary: dict) -> None:
    """With ``logger=wandb``: every figure as an image, every table of summary.md as a table,
    the slopes in the run's summary. Other loggers get the config and the slopes as metrics."""
    from nercc.runtime.loggers import log_run
    from nercc.utils.instantiate import build_all, plain

    if not cfg.get("logger"):
        return
    cfg = cfg.copy()  # W&B's run name and tags: this app's (the logger configs name a model)
    nodes = cfg.logger
    with open_dict(nodes):
        for node in nodes.values():
            if isinstance(node, DictConfig) and str(node.get("_target_", "")).endswith(
                "WandbLogger"
            ):
                node.name = f"figures{'-dry' if cfg.figures.dry else ''}"
                node.tags = ["figures", *sorted({d["model"] for d in written})]
    slopes = {
        f"figures/{s['model']}/slope/{s['panel']}/{s['label']}": s["slope"]
        for s in summary["slopes"]
    }
    log_run(
        build_all(nodes),
        plain(cfg),
        metrics={re.sub(r"[^\w/.=-]+", "_", k): v for k, v in slopes.items()},
        tables={
            f"figures/{name}": (table["columns"], table["data"])
            for name, table in summary["tables"].items()
        },
        images={
            f"figures/{data['figure']}/{data['model']}": out / data["file"]
            for data in written
            if data["file"]
        },
        summary=slopes,
    )
