"""Figure configs (``conf/figure/<name>.yaml``) read into plain specs, checked, and expanded into
the ``nercc.eval`` runs that give each figure's rows.

A figure is one or more evaluation runs whose rows are merged and drawn. Each run is a list of
``nercc.eval`` overrides and a label (or labels per scheme); its overrides are, in order, the
model's (``figures.models.<model>.overrides``: experiment, images, patterns), the figure's
(``overrides``), the figure's for that model (``per_model.<model>.overrides``), the panel's
(``panels.<panel>``) and the run's own; a later value of the same key replaces an earlier one, so
that every run is one ``python -m nercc.eval ...`` command (:attr:`PlannedRun.command`).

This module reads configs only (no torch, no data): :func:`check_figures` returns one
:class:`~nercc.utils.errors.ConfigError` per bad key. It reads with the readers of
:mod:`nercc.runtime.checks` (``get``, ``boolean``, ``choice``, ``integer``), keyed by the full
config key, and collects what they refuse instead of stopping at the first.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from nercc.figures.adversarial import adversaries_at
from nercc.runtime.checks import boolean, choice, get, integer
from nercc.utils.errors import ConfigError

__all__ = [
    "KINDS",
    "METRICS",
    "FigureSpec",
    "ModelSpec",
    "PlannedRun",
    "RunSpec",
    "adversary_convergence_point",
    "check_figures",
    "merge_overrides",
    "plan_runs",
    "read_figures",
    "read_models",
]

#: Figure kinds (what :mod:`nercc.figures.plots` draws) and the keys each takes besides the common.
KINDS = {
    "vs_stragglers": (),
    "lambda_grid": (),
    "convergence": ("fraction", "num_workers", "fixed_stragglers"),
    "vs_adversaries": (),
    "adversary_convergence": ("exponents", "fraction", "num_workers", "fixed_stragglers"),
}
#: The kinds drawn against S or A, one row of panels per metric (the others draw mse only).
CURVE_KINDS = ("vs_stragglers", "vs_adversaries")
#: Metrics a figure can draw (columns of every result row).
METRICS = ("mse", "rel_acc", "acc", "agreement")
FIGURE_KEYS = (
    "kind", "title", "metrics", "overrides", "per_model", "panels", "runs", "models", "notes",
)  # fmt: skip
RUN_KEYS = ("label", "labels", "overrides", "needs_table", "when", "optional")
MODEL_KEYS = ("about", "overrides", "optional", "train", "tune")
EVAL = "python -m nercc.eval"


@dataclass(frozen=True)
class ModelSpec:
    """A classifier and code the figures are drawn for (``figures.models.<name>``)."""

    name: str
    overrides: tuple[str, ...]
    about: str = ""
    optional: bool = False  # drawn only where its checkpoint exists (else a note)
    train: tuple[str, ...] | None = None  # nercc.train overrides when its checkpoint is missing
    tune: tuple[str, ...] | None = None  # nercc.tune overrides when its table is missing


@dataclass(frozen=True)
class RunSpec:
    """One evaluation of a figure: overrides and how its rows are labelled.

    ``label`` names every row of the run; ``labels`` maps a scheme name (the rows' ``scheme``
    column) to its label, and rows of other schemes are not drawn. ``needs_table``: the run is
    skipped, with a note, where that scheme has no tuned table. ``when``: the run is drawn only
    where ``figures.switches.<when>`` is true. ``optional``: a run its config check refuses is
    skipped with the error as a note instead of stopping everything.
    """

    overrides: tuple[str, ...]
    label: str | None = None
    labels: Mapping[str, str] | None = None
    needs_table: str | None = None
    when: str | None = None
    optional: bool = False

    def label_of(self, scheme: str) -> str | None:
        if self.label is not None:
            return self.label
        return (self.labels or {}).get(scheme)

    @property
    def names(self) -> list[str]:
        return [self.label] if self.label is not None else list((self.labels or {}).values())


@dataclass(frozen=True)
class FigureSpec:
    """One figure config (``figure.<name>``)."""

    name: str
    kind: str
    title: str
    metrics: tuple[str, ...]
    runs: tuple[RunSpec, ...]
    overrides: tuple[str, ...] = ()
    per_model: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    panels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    models: tuple[str, ...] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)  # the kind's own keys
    notes: tuple[str, ...] = ()  # written under the figure's model in summary.md

    def option(self, key: str, model: str) -> Any:
        """A kind key for ``model``: ``per_model.<model>.<key>``, else the figure's."""
        return self.per_model.get(model, {}).get(key, self.options.get(key))


@dataclass(frozen=True)
class PlannedRun:
    """One ``nercc.eval`` run of a figure for a model."""

    figure: str
    model: str
    index: int
    spec: RunSpec
    panel: str
    overrides: tuple[str, ...]
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def command(self) -> str:
        """The command that gives this run's rows alone."""
        return " ".join([EVAL, *(shlex.quote(o) for o in self.overrides)])

    @property
    def where(self) -> str:
        return f"figure.{self.figure}.runs[{self.spec_index}] ({self.model})"

    @property
    def spec_index(self) -> int:
        return int(self.extra.get("spec_index", self.index))


# -- reading ---------------------------------------------------------------------------------------
def _key_of(override: str) -> str:
    """The config key an override sets (``+a.b=1``, ``~a.b`` and ``a.b=1`` all set ``a.b``)."""
    body = override.lstrip("+~")
    return body.split("=", 1)[0].strip()


def merge_overrides(*groups: Any) -> tuple[str, ...]:
    """The overrides of ``groups`` in order, a later value of a key replacing an earlier one (at
    the later one's place): one command line without a key given twice."""
    merged: dict[str, str] = {}
    for group in groups:
        for override in group or ():
            key = _key_of(str(override))
            merged.pop(key, None)
            merged[key] = str(override)
    return tuple(merged.values())


def _read(errors: list[ConfigError], reader: Callable[..., Any], *args: Any, fallback: Any = None,
          **kwargs: Any) -> Any:  # fmt: skip
    """``reader(*args, **kwargs)``, a reader of :mod:`nercc.runtime.checks`; what it refuses is
    appended to ``errors`` and ``fallback`` returned, so that every bad key is named at once."""
    try:
        return reader(*args, **kwargs)
    except ConfigError as error:
        errors.append(error)
        return fallback


def _plain(node: Any) -> Any:
    if isinstance(node, DictConfig | ListConfig):
        return OmegaConf.to_container(node, resolve=True)
    return node


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


def _override_problem(value: str) -> str | None:
    if value.startswith("~"):
        return None if len(value) > 1 else "a deletion needs a key"
    if "=" not in value or not _key_of(value):
        return "must be key=value (or ~key)"
    return None


def _check_overrides(where: str, value: Any, errors: list[ConfigError]) -> tuple[str, ...]:
    if value is None:
        return ()
    if not _strings(value):
        errors.append(ConfigError(where, "must be a list of eval overrides (strings)", value))
        return ()
    for i, item in enumerate(value):
        problem = _override_problem(item)
        if problem:
            errors.append(ConfigError(f"{where}[{i}]", problem, item))
    if any(_key_of(item).startswith("hydra.") for item in value):
        errors.append(ConfigError(where, "must not set hydra.* (each run's folder is chosen here)",
                                  value))  # fmt: skip
    return tuple(value)


def _unknown(where: str, node: Mapping[str, Any], known: tuple[str, ...], errors: list) -> None:
    for key in node:
        if key not in known:
            errors.append(ConfigError(f"{where}.{key}", f"unknown key (known: {', '.join(known)})",
                                      node[key]))  # fmt: skip


def read_models(cfg: DictConfig, where: str, errors: list[ConfigError]) -> dict[str, ModelSpec]:
    """``figures.models`` (or ``figures.dry_models``: ``where``) of ``cfg`` as specs; problems
    appended to ``errors``."""
    node = _plain(_read(errors, get, cfg, where, None))
    if not isinstance(node, dict) or not node:
        errors.append(ConfigError(where, "must map model names to their settings", node))
        return {}
    models = {}
    for name, spec in node.items():
        at = f"{where}.{name}"
        if not isinstance(spec, dict):
            errors.append(ConfigError(at, "must be a mapping with overrides", spec))
            continue
        _unknown(at, spec, MODEL_KEYS, errors)
        overrides = _check_overrides(f"{at}.overrides", spec.get("overrides"), errors)
        if not overrides:
            errors.append(ConfigError(f"{at}.overrides", "must list at least one override",
                                      spec.get("overrides")))  # fmt: skip
        optional = _read(errors, boolean, cfg, f"{at}.optional", default=False, fallback=False)
        about = spec.get("about", "")
        if not isinstance(about, str):
            errors.append(ConfigError(f"{at}.about", "must be a string", about))
        extra = {}
        for key in ("train", "tune"):
            value = spec.get(key)
            if value is not None and not isinstance(value, list):
                errors.append(ConfigError(f"{at}.{key}", "must be null or a list of overrides",
                                          value))  # fmt: skip
                continue
            if value is not None:
                value = list(_check_overrides(f"{at}.{key}", value, errors) or ())
            extra[key] = None if value is None else tuple(value)
        models[name] = ModelSpec(name, overrides, str(about), optional, **extra)
    return models


def _read_run(
    cfg: DictConfig, where: str, node: Any, switches: Mapping[str, Any], errors: list
) -> RunSpec | None:
    if not isinstance(node, dict):
        errors.append(ConfigError(where, "must be a mapping (label or labels, overrides)", node))
        return None
    _unknown(where, node, RUN_KEYS, errors)
    label, labels = node.get("label"), node.get("labels")
    if (label is None) == (labels is None):
        errors.append(ConfigError(where, "must give exactly one of label and labels",
                                  {"label": label, "labels": labels}))  # fmt: skip
    if label is not None and (not isinstance(label, str) or not label):
        errors.append(ConfigError(f"{where}.label", "must be a non-empty string", label))
    if labels is not None and not (
        isinstance(labels, dict) and labels
        and all(isinstance(v, str) and v for v in labels.values())
    ):  # fmt: skip
        errors.append(ConfigError(f"{where}.labels", "must map scheme names to labels", labels))
        labels = None
    overrides = _check_overrides(f"{where}.overrides", node.get("overrides"), errors)
    needs = node.get("needs_table")
    if needs is not None and (not isinstance(needs, str) or not needs):
        errors.append(ConfigError(f"{where}.needs_table", "must be null or a scheme name", needs))
    when = node.get("when")
    if when is not None and (not isinstance(when, str) or when not in switches):
        known = ", ".join(switches) or "none"
        errors.append(ConfigError(f"{where}.when", f"must be null or a key of figures.switches "
                                  f"({known})", when))  # fmt: skip
    optional = _read(errors, boolean, cfg, f"{where}.optional", default=False, fallback=False)
    return RunSpec(overrides, label if isinstance(label, str) else None, labels, needs, when,
                   optional)  # fmt: skip


def _check_workers_list(errors: list, cfg: Any, at: str, settings: Any) -> None:
    """A convergence figure's ``num_workers`` (an increasing list of at least two N) and
    ``fixed_stragglers`` (null or an integer >= 0), their errors added to ``errors``."""
    workers = settings.get("num_workers")
    if workers is not None and not (
        _positive_ints(workers) and len(workers) >= 2 and workers == sorted(set(workers))
    ):
        errors.append(ConfigError(f"{at}.num_workers", "must be an increasing list of at "
                                  "least two N", workers))  # fmt: skip
    _read(errors, integer, cfg, f"{at}.fixed_stragglers", 0, optional=True, default=None)


def _positive_ints(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value
    )


def _a(kind: str) -> str:
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"


def _read_figure(
    cfg: DictConfig, name: str, node: Any, switches: Mapping[str, Any], model_names: set[str],
    errors: list,
) -> FigureSpec | None:  # fmt: skip
    where = f"figure.{name}"
    if not isinstance(node, dict):
        errors.append(ConfigError(where, "must be a figure config (kind, runs, ...)", node))
        return None
    kind = _read(errors, choice, cfg, f"{where}.kind", tuple(KINDS), None)
    if kind is None:
        return None
    _unknown(where, node, FIGURE_KEYS + KINDS[kind], errors)
    title = node.get("title", "{model}: " + name)
    if not isinstance(title, str):
        errors.append(ConfigError(f"{where}.title", "must be a string", title))
        title = name
    metrics = node.get("metrics", ["mse"])
    if not (isinstance(metrics, list) and metrics and all(m in METRICS for m in metrics)):
        errors.append(ConfigError(f"{where}.metrics", f"must be a non-empty list of "
                                  f"{', '.join(METRICS)}", metrics))  # fmt: skip
        metrics = ["mse"]
    if kind not in CURVE_KINDS and metrics != ["mse"]:
        errors.append(ConfigError(f"{where}.metrics", f"{_a(kind)} figure draws mse only", metrics))
    overrides = _check_overrides(f"{where}.overrides", node.get("overrides"), errors)
    panels_node = node.get("panels") or {}
    panels: dict[str, tuple[str, ...]] = {}
    if not isinstance(panels_node, dict):
        errors.append(ConfigError(f"{where}.panels", "must map panel names to overrides",
                                  panels_node))  # fmt: skip
    else:
        for panel, items in panels_node.items():
            panels[str(panel)] = _check_overrides(f"{where}.panels.{panel}", items or [], errors)
    if panels and kind not in CURVE_KINDS:
        errors.append(ConfigError(f"{where}.panels", f"{_a(kind)} figure has its own panels",
                                  panels_node))  # fmt: skip
    models = node.get("models")
    if models is not None and not (_strings(models) and set(models) <= model_names):
        errors.append(ConfigError(f"{where}.models", f"must be null or a list of "
                                  f"{', '.join(sorted(model_names))}", models))  # fmt: skip
        models = None
    per_model_node = node.get("per_model") or {}
    per_model: dict[str, dict[str, Any]] = {}
    if not isinstance(per_model_node, dict):
        errors.append(ConfigError(f"{where}.per_model", "must map model names to settings",
                                  per_model_node))  # fmt: skip
    else:
        for model, settings in per_model_node.items():
            at = f"{where}.per_model.{model}"
            if model not in model_names:
                errors.append(ConfigError(at, f"unknown model (known: "
                                          f"{', '.join(sorted(model_names))})", model))  # fmt: skip
                continue
            if not isinstance(settings, dict):
                errors.append(ConfigError(at, "must be a mapping (overrides, ...)", settings))
                continue
            _unknown(at, settings, ("overrides", *KINDS[kind]), errors)
            per_model[model] = dict(settings)
            per_model[model]["overrides"] = _check_overrides(
                f"{at}.overrides", settings.get("overrides"), errors
            )
    options = {key: node[key] for key in KINDS[kind] if key in node}
    if kind == "convergence":
        _check_convergence(cfg, where, options, per_model, errors)
    if kind == "adversary_convergence":
        _check_adversary_convergence(cfg, where, options, per_model, errors)
    notes = node.get("notes") or []
    if not (isinstance(notes, list) and all(isinstance(n, str) and n for n in notes)):
        errors.append(ConfigError(f"{where}.notes", "must be a list of lines", notes))
        notes = []
    runs_node = node.get("runs")
    if not isinstance(runs_node, list) or not runs_node:
        errors.append(ConfigError(f"{where}.runs", "must be a non-empty list of runs", runs_node))
        return None
    runs = [
        _read_run(cfg, f"{where}.runs[{i}]", r, switches, errors) for i, r in enumerate(runs_node)
    ]
    seen: dict[str, int] = {}
    for i, run in enumerate(runs):
        for label in run.names if run else ():
            if label in seen:
                errors.append(ConfigError(f"{where}.runs[{i}]", f"label {label!r} is already "
                                          f"runs[{seen[label]}]'s", label))  # fmt: skip
            seen.setdefault(label, i)
    return FigureSpec(name, kind, title, tuple(metrics), tuple(r for r in runs if r), overrides,
                      per_model, panels, tuple(models) if models else None, options,
                      tuple(notes))  # fmt: skip


def _check_convergence(
    cfg: DictConfig, where: str, options: dict, per_model: dict, errors: list
) -> None:
    fraction = options.get("fraction")
    if not (isinstance(fraction, float | int) and not isinstance(fraction, bool)
            and 0 < fraction < 1):  # fmt: skip
        errors.append(
            ConfigError(
                f"{where}.fraction",
                "must be a number in (0, 1): S = round(fraction x N) in the fixed-fraction panel",
                fraction,
            )
        )
    for at, settings in [(where, options)] + [
        (f"{where}.per_model.{m}", s) for m, s in per_model.items()
    ]:
        _check_workers_list(errors, cfg, at, settings)


def _check_adversary_convergence(
    cfg: DictConfig, where: str, options: dict, per_model: dict, errors: list
) -> None:
    """The keys of an adversary_convergence figure, at the figure and per model (which of them
    must be set for each model drawn: :func:`check_figures`)."""
    for at, settings in [(where, options)] + [
        (f"{where}.per_model.{m}", s) for m, s in per_model.items()
    ]:
        exponents = settings.get("exponents")
        if exponents is not None and not (
            isinstance(exponents, list) and exponents
            and all(isinstance(a, int | float) and not isinstance(a, bool) and 0 <= a < 1
                    for a in exponents)
            and len(set(exponents)) == len(exponents)
        ):  # fmt: skip
            errors.append(ConfigError(f"{at}.exponents", "must be a list of distinct exponents a "
                                      "in [0, 1) (A = round(N^a))", exponents))  # fmt: skip
        fraction = settings.get("fraction")
        number = isinstance(fraction, float | int) and not isinstance(fraction, bool)
        if fraction is not None and not (number and 0 < fraction < 1):
            errors.append(ConfigError(f"{at}.fraction", "must be null or a number in (0, 1): "
                                      "S = round(fraction x N)", fraction))  # fmt: skip
        _check_workers_list(errors, cfg, at, settings)


def _missing_options(figure: FigureSpec, model: str) -> list[tuple[str, str]]:
    """(key, what) for each setting ``figure`` lacks for ``model``."""
    required = {
        "convergence": ("num_workers", "fixed_stragglers"),
        "adversary_convergence": ("num_workers", "exponents"),
    }.get(figure.kind, ())
    missing = [(key, "must be set (or the figure's " + key + ")")
               for key in required if figure.option(key, model) is None]  # fmt: skip
    if figure.kind != "adversary_convergence":
        return missing
    regimes = [figure.option(key, model) is not None for key in ("fraction", "fixed_stragglers")]
    if sum(regimes) != 1:
        missing.append(("fraction", "exactly one of fraction and fixed_stragglers must be set "
                        "(the S of each N: round(fraction x N), or a fixed S)"))  # fmt: skip
    return missing


def read_figures(
    cfg: DictConfig, switches: Mapping[str, Any], model_names: set[str], errors: list[ConfigError]
) -> dict[str, FigureSpec]:
    """``figure`` of ``cfg`` (the selected figure configs) as specs; problems appended to
    ``errors``."""
    node = _plain(_read(errors, get, cfg, "figure", None))
    if not isinstance(node, dict) or not node:
        errors.append(ConfigError("figure", "must select at least one figure config "
                                  "(figure=[vs_stragglers,...])", node))  # fmt: skip
        return {}
    figures = {}
    for name, spec in node.items():
        figure = _read_figure(cfg, str(name), spec, switches, model_names, errors)
        if figure is not None:
            figures[str(name)] = figure
    return figures


# -- checking the app's own settings ---------------------------------------------------------------
def check_figures(
    cfg: DictConfig,
) -> tuple[list[ConfigError], dict[str, ModelSpec], dict[str, FigureSpec]]:
    """Check ``figures.*`` and every selected figure config.

    Returns
    -------
    errors : list of ConfigError
        One per bad key (``<key>: <what>, got <value>``); empty when all is well.
    models : dict
        The models to draw, in order (``figures.dry_models`` in dry mode; ``figures.only``
        applied).
    figures : dict
        The figure specs, in the order of the config.
    """
    errors: list[ConfigError] = []
    dry = _read(errors, boolean, cfg, "figures.dry", default=False, fallback=False)
    _read(errors, boolean, cfg, "figures.tune_missing", default=False)
    output = _read(errors, get, cfg, "figures.output_dir", None)
    if not isinstance(output, str) or not output:
        errors.append(ConfigError("figures.output_dir", "must be a folder path", output))
    switches = _plain(_read(errors, get, cfg, "figures.switches", {}, fallback={})) or {}
    if not isinstance(switches, dict) or not all(isinstance(v, bool) for v in switches.values()):
        errors.append(ConfigError("figures.switches", "must map names to true or false",
                                  switches))  # fmt: skip
        switches = {}
    common = _plain(_read(errors, get, cfg, "figures.common", [], fallback=[]))
    _check_overrides("figures.common", common, errors)
    all_models = read_models(cfg, "figures.models", errors)
    dry_models = read_models(cfg, "figures.dry_models", errors)
    known = set(all_models) | set(dry_models)
    models = dry_models if dry else all_models
    only = _plain(_read(errors, get, cfg, "figures.only", None))
    if only is not None:
        if not (_strings(only) and only and set(only) <= set(models)):
            errors.append(ConfigError("figures.only", f"must be null or a list of "
                                      f"{', '.join(models)}", only))  # fmt: skip
        else:
            models = {name: models[name] for name in only}
    figures = read_figures(cfg, switches, known, errors)
    summary = _read(errors, get, cfg, "figures.summary_figure", None)
    if summary is not None and not isinstance(summary, str):
        errors.append(ConfigError("figures.summary_figure", "must be null or a figure name",
                                  summary))  # fmt: skip
    for figure in figures.values():
        for model in models:
            if figure.models is not None and model not in figure.models:
                continue
            for key, what in _missing_options(figure, model):
                errors.append(ConfigError(f"figure.{figure.name}.per_model.{model}.{key}", what))
    return errors, models, figures


# -- expanding a figure into runs ------------------------------------------------------------------
def convergence_stragglers(n: int, fraction: float, fixed: int) -> tuple[int, int]:
    """(S at the fixed fraction, the fixed S) for N workers: ``round(fraction N)`` (halves up)."""
    return int(math.floor(fraction * n + 0.5)), int(fixed)


def adversary_convergence_point(
    n: int, exponents: Sequence[float], fraction: float | None, fixed: int | None
) -> tuple[int, dict[float, int]]:
    """S and, per exponent a, A = round(N^a) for the run at N workers of an
    adversary_convergence figure: S = ``fixed`` where it is given, else round(fraction N)."""
    if fixed is not None:
        stragglers = int(fixed)
    elif fraction is not None:
        stragglers = convergence_stragglers(n, float(fraction), 0)[0]
    else:
        raise ValueError("fraction or fixed must be given, got neither")
    return stragglers, {float(a): adversaries_at(n, a) for a in exponents}


def plan_runs(
    figure: FigureSpec,
    model: ModelSpec,
    common: tuple[str, ...] = (),
    paths: tuple[str, ...] = (),
    switches: Mapping[str, bool] | None = None,
) -> tuple[list[PlannedRun], list[str]]:
    """The eval runs of ``figure`` for ``model``, and notes on the runs switched off.

    Overrides are merged in this order: ``common`` (the app's), ``paths`` (the app's folders),
    the model's, the figure's, the figure's for this model, the panel's, the run's, and what
    the kind adds (the convergence figures: ``coding.num_workers`` and ``stragglers`` per N;
    under adversaries also ``adversaries``, every A = round(N^a) of the exponents in one run).
    """
    notes: list[str] = []
    per_model = figure.per_model.get(model.name, {})
    base = (common, paths, model.overrides, figure.overrides, per_model.get("overrides", ()))
    planned: list[PlannedRun] = []
    panels = figure.panels or {"": ()}
    for spec_index, run in enumerate(figure.runs):
        if run.when is not None and not (switches or {}).get(run.when, False):
            notes.append(
                f"{', '.join(run.names)}: switched off (figures.switches.{run.when}=false); "
                f"switch it on with figures.switches.{run.when}=true"
            )
            continue
        if figure.kind == "convergence":
            fraction = float(figure.option("fraction", model.name))
            fixed = int(figure.option("fixed_stragglers", model.name))
            for n in figure.option("num_workers", model.name):
                at_fraction, _ = convergence_stragglers(n, fraction, fixed)
                stragglers = sorted({at_fraction, fixed})
                extra = {"spec_index": spec_index, "num_workers": n, "fraction": fraction,
                         "fixed_stragglers": fixed}  # fmt: skip
                overrides = merge_overrides(
                    *base, run.overrides,
                    [f"coding.num_workers={n}", f"stragglers=[{','.join(map(str, stragglers))}]"],
                )  # fmt: skip
                planned.append(PlannedRun(figure.name, model.name, len(planned), run, "",
                                          overrides, extra))  # fmt: skip
            continue
        if figure.kind == "adversary_convergence":
            exponents = [float(a) for a in figure.option("exponents", model.name)]
            fraction = figure.option("fraction", model.name)
            fixed = figure.option("fixed_stragglers", model.name)
            for n in figure.option("num_workers", model.name):
                s, counts = adversary_convergence_point(n, exponents, fraction, fixed)
                regime = f"S = {fixed}" if fixed is not None else f"S = {float(fraction):g} N"
                extra = {"spec_index": spec_index, "num_workers": n, "num_stragglers": s,
                         "regime": regime,
                         "adversaries": {f"{a:g}": c for a, c in counts.items()}}  # fmt: skip
                overrides = merge_overrides(
                    *base, run.overrides,
                    [f"coding.num_workers={n}", f"stragglers=[{s}]",
                     f"adversaries=[{','.join(map(str, sorted(set(counts.values()))))}]"],
                )  # fmt: skip
                planned.append(PlannedRun(figure.name, model.name, len(planned), run, "",
                                          overrides, extra))  # fmt: skip
            continue
        for panel, panel_overrides in panels.items():
            overrides = merge_overrides(*base, panel_overrides, run.overrides)
            planned.append(PlannedRun(figure.name, model.name, len(planned), run, panel,
                                      overrides, {"spec_index": spec_index}))  # fmt: skip
    return planned, notes
