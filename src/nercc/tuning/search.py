"""Searching scheme parameters per straggler count S and adversary count A: the search space a
scheme declares, the grid, the choice of the best setting per (S, A) cell, and Optuna's TPE with
one study per cell that learns from every evaluation.

The space is read from the tuned scheme's declaration (:attr:`nercc.coding.CodingScheme.tunables`):
each setting's declared ``grid`` (a grid search) or ``search`` range (TPE), unless the config names
that setting's parameter itself (:func:`search_space`); TPE draws each parameter as it is declared
(log-uniform, uniform, or integers).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from nercc.coding import CodingScheme, Tunable

__all__ = [
    "best_by_cells",
    "best_by_stragglers",
    "grid_values",
    "log_grid",
    "neighbours",
    "refine_step",
    "search_space",
    "tpe_search",
]

#: Objectives a tuning run can choose from: the row metric and whether lower is better.
OBJECTIVES = {"mse": True, "rel_acc": False}

#: The config key of each kind of search space, and the declaration field of its defaults.
SPACES = {"grid": ("tune.grid", "grid"), "search": ("tune.optuna.ranges", "search")}


def log_grid(low: float, high: float, num: int) -> list[float]:
    """0 followed by ``num`` log-spaced values from ``low`` to ``high`` (both included)."""
    low, high, num = float(low), float(high), int(num)
    if not (0 < low <= high < math.inf) or num < 1 or (num == 1 and low != high):
        raise ValueError(
            "a log grid needs 0 < low <= high and num >= 1 (num = 1 only when low = high), "
            f"got low={low}, high={high}, num={num}"
        )
    return [0.0, *(float(v) for v in np.geomspace(low, high, num))]


def search_space(
    scheme: type[CodingScheme], given: Mapping[str, Any] | None, kind: Literal["grid", "search"]
) -> dict[str, list[float]]:
    """Return the parameters a tuning run searches and their values, as ``scheme`` declares them.

    Every setting of the scheme (:meth:`~nercc.coding.CodingScheme.settings`) is searched over
    the parameter ``given`` names for it, else over its declared default (the ``grid`` or the
    ``search`` range of the parameter that names the setting); a setting with neither is not
    searched. ``given`` may thus name only the settings it changes:
    ``{"lam_enc": [0, 1e-6]}`` keeps NeRCC's declared grid of ``lam_dec``.

    Parameters
    ----------
    scheme : type of CodingScheme
        The tuned scheme's class.
    given : mapping of str to values, optional
        ``tune.grid`` or ``tune.optuna.ranges``: a parameter the scheme declares (or its
        alternative, ``df_enc`` for ``lam_enc``) to its list of values or ``[low, high]``; None
        takes the declared defaults of every setting.
    kind : {"grid", "search"}
        A grid (lists of values) or TPE ranges (``[low, high]``).

    Returns
    -------
    dict of str to list of float
        In the order of the scheme's settings; the values as given (checked by the config
        check, :func:`nercc.runtime.checks.check_tune`), or the declared ones.

    Raises
    ------
    ValueError
        A parameter ``given`` that the scheme does not declare (the message names the key), two
        given for one setting, or an empty space.
    """
    key, field = SPACES[kind]
    given = dict(given or {})
    declared = {t.name: t for t in scheme.tunables}
    by_setting: dict[str, str] = {}
    for name in given:
        if name not in declared:
            known = ", ".join(declared) or "none"
            raise ValueError(
                f"{key}.{name}: is not a tunable parameter of {scheme.__name__} (its "
                f"parameters: {known})"
            )
        setting = declared[name].setting
        if setting in by_setting:
            raise ValueError(
                f"{key}.{name}: and {key}.{by_setting[setting]} both give the setting {setting}: "
                "name one of them"
            )
        by_setting[setting] = name
    space: dict[str, list[float]] = {}
    for setting in scheme.settings():
        if setting in by_setting:
            name = by_setting[setting]
            space[name] = list(given[name])
            continue
        default = getattr(declared[setting], field) if setting in declared else None
        if default:
            space[setting] = [float(v) for v in default]
    if not space:
        raise ValueError(
            f"{key}: {scheme.__name__} declares no parameter with a default {field} (name them "
            f"in {key})"
        )
    return space


def grid_values(name: str, values: Any, tunable: Tunable | None = None) -> list[float]:
    """The values of one parameter's grid: a non-empty list of numbers the parameter accepts
    (:meth:`nercc.coding.Tunable.accepts`; without ``tunable``, finite numbers >= 0)."""
    what = "values >= 0" if tunable is None else f"values of {name}"
    if isinstance(values, str) or not isinstance(values, Sequence) or not values:
        raise ValueError(f"tune.grid.{name} must be a list of {what}, got {values!r}")
    checked = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"tune.grid.{name} must be a list of {what}, got {list(values)}")
        if tunable is None:
            accepted = math.isfinite(value) and value >= 0
        else:  # the code sizes of a bound are checked by the config check
            try:
                accepted = tunable.accepts(value)
            except ValueError:
                accepted = math.isfinite(value)
        if not accepted:
            raise ValueError(f"tune.grid.{name} must be a list of {what}, got {list(values)}")
        checked.append(float(value))
    return checked


def refine_step(tunable: Tunable, values: Sequence[float]) -> float:
    """The first step of a grid's refinement for one parameter, from the values its grid tried.

    A parameter searched on a log scale: half the smallest ratio between its positive values,
    in decades (0.5 with fewer than two); an integer: 1; another number: half the smallest gap
    between its values (0 with fewer than two: not refined).

    Parameters
    ----------
    tunable : Tunable
        The parameter's declaration.
    values : sequence of float
        The values its grid tried.

    Returns
    -------
    float
    """
    if tunable.integer:
        return 1.0
    if tunable.log:
        positive = sorted(v for v in set(values) if v > 0)
        ratios = [b / a for a, b in zip(positive, positive[1:], strict=False)]
        return math.log10(min(ratios)) / 2 if ratios else 0.5
    distinct = sorted(set(values))
    gaps = [b - a for a, b in zip(distinct, distinct[1:], strict=False)]
    return min(gaps) / 2 if gaps else 0.0


def neighbours(
    tunable: Tunable,
    value: float,
    step: float,
    round_: int,
    num_inputs: int | None = None,
    num_workers: int | None = None,
) -> list[float]:
    """The values a refinement round tries around ``value``: the value, and one step below and
    above it, as far as the parameter accepts them (:meth:`nercc.coding.Tunable.accepts`).

    A parameter searched on a log scale moves by factors of ``10 ** (step / 2 ** round_)`` (0
    stays 0); an integer by 1 in every round; another number by ``step / 2 ** round_``.

    Parameters
    ----------
    tunable : Tunable
        The parameter's declaration.
    value : float
        The best value so far.
    step : float
        :func:`refine_step` of the parameter.
    round_ : int
        The round, from 0: the step halves with every round (not an integer's).
    num_inputs, num_workers : int, optional
        The code's K and N, where a bound of the parameter names them.

    Returns
    -------
    list of float
        Below, the value, above (those accepted).
    """
    if tunable.integer:
        around = [value - 1, value, value + 1]
    elif tunable.log:
        around = (
            [value * 10 ** (k * step / 2**round_) for k in (-1, 0, 1)] if value > 0 else [value]
        )
    else:
        around = [value + k * step / 2**round_ for k in (-1, 0, 1)] if step > 0 else [value]
    return [v for v in around if v == value or tunable.accepts(v, num_inputs, num_workers)]


def _key(row: Mapping[str, Any], objective: str) -> tuple[float, float]:
    """Sort key: the objective (negated when higher is better), then mse to break ties."""
    value = row[objective] if OBJECTIVES[objective] else -row[objective]
    return (value, row["mse"])


def best_by_stragglers(
    rows: Sequence[Mapping[str, Any]], scheme: str, params: Sequence[str], objective: str
) -> dict[int, dict[str, Any]]:
    """For every S, the row of ``scheme`` with the best ``objective`` (ties: the lower mse, then
    the first). Returns ``{S: {"params": {...}, "row": row}}``; a row whose objective or mse is
    NaN or infinite never wins (an S with no other row is left out). Every row counts, whatever
    its A: give the rows of one A (:func:`best_by_cells` chooses per (S, A))."""
    return {
        s: chosen for (s, _), chosen in _best(rows, scheme, params, objective, by_a=False).items()
    }


def best_by_cells(
    rows: Sequence[Mapping[str, Any]], scheme: str, params: Sequence[str], objective: str
) -> dict[tuple[int, int], dict[str, Any]]:
    """For every (S, A) cell, the row of ``scheme`` with the best ``objective``.

    The rule of :func:`best_by_stragglers` within each cell: the lowest mse (``objective="mse"``)
    or the highest rel_acc (``"rel_acc"``); ties go to the lower mse, then to the first row; a
    row whose objective or mse is not finite never wins (a cell with no other row is left out).
    A row without ``num_adversaries`` is at A = 0.

    Parameters
    ----------
    rows : sequence of mapping
        Result rows (``scheme``, ``num_stragglers``, ``num_adversaries``, the objective, ``mse``
        and the parameters).
    scheme : str
        The tuned scheme's name.
    params : sequence of str
        The parameters to read from the chosen rows.
    objective : {"mse", "rel_acc"}

    Returns
    -------
    dict
        ``{(S, A): {"params": {...}, "row": row}}``, sorted by S, then A.
    """
    return _best(rows, scheme, params, objective, by_a=True)


def _best(
    rows: Sequence[Mapping[str, Any]],
    scheme: str,
    params: Sequence[str],
    objective: str,
    by_a: bool,
) -> dict[tuple[int, int], dict[str, Any]]:
    if objective not in OBJECTIVES:
        raise ValueError(
            f"tune.objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}"
        )
    best: dict[tuple[int, int], dict[str, Any]] = {}
    for row in rows:
        if row["scheme"] != scheme or not (
            math.isfinite(row[objective]) and math.isfinite(row["mse"])
        ):
            continue
        cell = (row["num_stragglers"], (row.get("num_adversaries") or 0) if by_a else 0)
        if cell not in best or _key(row, objective) < _key(best[cell]["row"], objective):
            best[cell] = {"params": {p: row[p] for p in params}, "row": row}
    return dict(sorted(best.items()))


def tpe_search(
    evaluate: Callable[[dict[str, float]], list[dict[str, Any]]],
    ranges: Mapping[str, Sequence[float]],
    stragglers: Sequence[int],
    objective: str,
    n_trials: int,
    seed: int,
    tunables: Mapping[str, Tunable] | None = None,
    adversaries: Sequence[int] = (0,),
) -> list[dict[str, Any]]:
    """Optuna TPE over each parameter's range, one study per (S, A) cell.

    Every trial proposes a setting for one cell in turn (S by S, and A by A within each S),
    ``evaluate(params)`` returns its rows at every cell (one classifier pass serves them all),
    and the result is told to the proposing study and added to the others, so that each study
    learns from every evaluation. With A = [0] only, one study per S.

    Parameters
    ----------
    evaluate : callable
        ``params -> rows`` (every S and A; a row without ``num_adversaries`` is at A = 0).
    ranges : mapping of str to [low, high]
        The range of each parameter.
    stragglers : sequence of int
        The S list: one study each.
    objective : {"mse", "rel_acc"}
    n_trials, seed : int
    tunables : mapping of str to Tunable, optional
        How each parameter is declared (:class:`nercc.coding.Tunable`): drawn as integers
        where ``integer``, log-uniform where ``log`` (0 < low), uniform otherwise. A parameter
        without a declaration is drawn log-uniform.
    adversaries : sequence of int
        The A list: with ``stragglers``, the cells.

    Returns
    -------
    list of dict
        Every row of every trial.
    """
    with warnings.catch_warnings():  # optuna 2.10 imports a SQLAlchemy 1 API
        warnings.simplefilter("ignore")
        import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # create_trial and add_trial are "experimental" in optuna 2.10 (stable since 3.0)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    direction = "minimize" if OBJECTIVES[objective] else "maximize"
    distributions = {
        name: _distribution(name, bounds, (tunables or {}).get(name))
        for name, bounds in ranges.items()
    }
    cells = [(int(s), int(a)) for s in stragglers for a in adversaries]
    studies = {
        cell: optuna.create_study(
            direction=direction, sampler=optuna.samplers.TPESampler(seed=seed + i)
        )
        for i, cell in enumerate(cells)
    }
    rows: list[dict[str, Any]] = []
    for number in range(n_trials):
        cell = cells[number % len(cells)]
        trial = studies[cell].ask(distributions)
        params = dict(trial.params)
        found = evaluate(params)
        rows += found
        values = {(r["num_stragglers"], r.get("num_adversaries") or 0): r[objective] for r in found}
        for other, study in studies.items():
            value = values.get(other, math.nan)
            state = (
                optuna.trial.TrialState.COMPLETE
                if math.isfinite(value)
                else optuna.trial.TrialState.FAIL
            )
            if other == cell:
                study.tell(trial, value if math.isfinite(value) else None, state=state)
            else:
                study.add_trial(
                    optuna.trial.create_trial(
                        params=params,
                        distributions=distributions,
                        value=value if math.isfinite(value) else None,
                        state=state,
                    )
                )
    return rows


def _distribution(name: str, bounds: Sequence[float], tunable: Tunable | None) -> Any:
    """Optuna's distribution of one parameter over ``[low, high]``, as it is declared."""
    from optuna.distributions import (
        IntLogUniformDistribution,
        IntUniformDistribution,
        LogUniformDistribution,
        UniformDistribution,
    )

    low, high = (float(b) for b in bounds)
    log = tunable is None or tunable.log
    integer = tunable is not None and tunable.integer
    valid = low < high and math.isfinite(low) and math.isfinite(high) and (low > 0 or not log)
    if integer:
        valid = valid and low.is_integer() and high.is_integer()
    if not valid:
        kind = " of integers" if integer else ""
        floor = "0 < low < high" if log else "low < high"
        raise ValueError(
            f"tune.optuna.ranges.{name} must be [low, high]{kind} with {floor}, got {list(bounds)}"
        )
    if integer:
        made = IntLogUniformDistribution if log else IntUniformDistribution
        return made(int(low), int(high))
    return LogUniformDistribution(low, high) if log else UniformDistribution(low, high)
