"""The tune node (nercc.tune): the tuned scheme, the search and its space, read from the scheme's
declaration."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nercc.evaluation.variants import scheme_class
from nercc.runtime.checks.common import check_seed, check_writable
from nercc.runtime.checks.evaluation import check_eval
from nercc.runtime.checks.readers import as_list, boolean, choice, get, integer, is_int, is_number
from nercc.runtime.checks.schemes import _range_text
from nercc.tuning.grid import TABLE_KEY
from nercc.utils.errors import ConfigError


def check_tune(cfg: DictConfig, objectives: Sequence[str]) -> None:
    """The ``tune`` node (the evaluation settings are :func:`check_eval`)."""
    check_eval(cfg)
    names = list(cfg.scheme)
    scheme = get(cfg, "tune.scheme")
    if scheme not in names:
        raise ConfigError(
            "tune.scheme", f"must be a scheme of this run ({', '.join(names)})", scheme
        )
    baseline = get(cfg, "tune.baseline", None)
    if baseline is not None and (baseline not in names or baseline == scheme):
        raise ConfigError(
            "tune.baseline",
            f"must be null or another scheme of this run ({', '.join(names)})",
            baseline,
        )
    if get(cfg, "tune.split") == "test":
        raise ConfigError("tune.split", "lambdas are never chosen on the test split", "test")
    choice(cfg, "tune.split", ("val",))
    integer(cfg, "tune.limit", 1, optional=True)
    integer(cfg, "tune.num_patterns", 1)
    choice(cfg, "tune.objective", tuple(objectives))
    search = choice(cfg, "tune.search", ("grid", "optuna"))
    if search == "grid":
        _check_space(cfg, scheme, "grid")
        integer(cfg, "tune.refine", 0)
    else:
        integer(cfg, "tune.optuna.n_trials", 1)
        check_seed(cfg, "tune.optuna.seed")
        _check_space(cfg, scheme, "search")
    integer(cfg, "tune.heatmaps", 0)
    boolean(cfg, "tune.publish")
    boolean(cfg, "tune.test")
    if get(cfg, "tune.publish"):
        check_writable("paths.lambdas_dir", get(cfg, "paths.lambdas_dir"))


def _check_space(cfg: DictConfig, scheme: str, kind: str) -> None:
    """``tune.grid`` (``kind="grid"``) or ``tune.optuna.ranges`` (``"search"``): null (the
    tuned scheme's declared defaults, :func:`nercc.tuning.search.search_space`) or a mapping
    whose keys are parameters the scheme declares (:class:`nercc.coding.Tunable`), each a
    non-empty list of values it accepts, or ``[low, high]`` of such values with low < high (and
    0 < low for a parameter searched on a log scale). The largest value of every parameter
    searched, given or declared, must build the scheme (a lambda within its finite range)."""
    from nercc.tuning.search import SPACES, search_space

    key, field = SPACES[kind]
    node = cfg.scheme[scheme]
    given = get(cfg, key, None)
    takes = "lists of values" if kind == "grid" else "[low, high]"
    if given is not None and (not isinstance(given, DictConfig) or not len(given)):
        raise ConfigError(
            key, f"must be null (the scheme's declared {field}) or map parameters to {takes}", given
        )
    cls = scheme_class(node)
    if cls is None or not cls.tunables:
        what = "a scheme that declares tunable parameters"
        found = f" ({cls.__name__} declares none)" if cls is not None else ""
        raise ConfigError("tune.scheme", f"must name {what}{found}", scheme)
    for param in given or ():
        if param not in {t.name for t in cls.tunables}:
            known = ", ".join(t.name for t in cls.tunables)
            raise ConfigError(
                f"{key}.{param}",
                f"is not a tunable parameter of scheme.{scheme} ({cls.__name__}: {known})",
                param,
            )
    try:
        space = search_space(cls, given, kind)  # type: ignore[arg-type]
    except ValueError as error:
        at, _, what = str(error).partition(": ")
        raise ConfigError(at, what, get(cfg, at, None)) from None
    n = node.get("num_workers") if is_int(node.get("num_workers")) else cfg.coding.num_workers
    k = node.get("num_inputs") if is_int(node.get("num_inputs")) else cfg.coding.num_inputs
    for param in given or ():
        at = f"{key}.{param}"
        tunable = cls.tunable(param)
        values = get(cfg, at)
        items = as_list(values)
        accepted = bool(items) and all(is_number(v) and tunable.accepts(v, k, n) for v in items)
        each = _range_text(tunable, int(k), int(n))
        if kind == "grid" and not accepted:
            raise ConfigError(
                at, f"must be a non-empty list of values of {param}, each {each}", values
            )
        if kind == "search" and not (
            accepted and len(items) == 2 and items[0] < items[1]  # type: ignore[arg-type]
            and (items[0] > 0 or not tunable.log)  # type: ignore[index]
        ):  # fmt: skip
            floor = "0 < low < high" if tunable.log else "low < high"
            raise ConfigError(at, f"must be [low, high] with {floor}, each {each}", values)
    for param, values in space.items():
        at, got = (
            (f"{key}.{param}", get(cfg, f"{key}.{param}"))
            if param in (given or ())
            else (key, given)
        )
        _buildable(cfg, scheme, param, max(values), at, got, declared=at == key)


def _buildable(
    cfg: DictConfig,
    scheme: str,
    param: str,
    value: Any,
    key: str,
    got: Any,
    declared: bool = False,
) -> None:
    """The tuned scheme accepts ``param=value`` (e.g. a lambda within its finite range);
    ``declared``: the value is of the scheme's declared defaults, not of the config."""
    from nercc.evaluation.variants import build_scheme

    node = {k: v for k, v in cfg.scheme[scheme].items() if k != TABLE_KEY and v is not None}
    node[param] = value
    try:
        build_scheme(scheme, OmegaConf.create(node))
    except ValueError as error:
        reason = str(error).split(": ", 1)[-1]
        whose = " (of its declared defaults)" if declared else ""
        raise ConfigError(
            key, f"the scheme refuses {param}={value:g}{whose} ({reason})", got
        ) from None
