"""Searching scheme parameters per straggler count: the grid, the choice of the best setting per
S, and Optuna's TPE over log ranges with one study per S that learns from every evaluation."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["best_by_stragglers", "grid_values", "log_grid", "tpe_search"]

#: Objectives a tuning run can choose from: the row metric and whether lower is better.
OBJECTIVES = {"mse": True, "rel_acc": False}


def log_grid(low: float, high: float, num: int) -> list[float]:
    """0 followed by ``num`` log-spaced values from ``low`` to ``high`` (both included)."""
    low, high, num = float(low), float(high), int(num)
    if not (0 < low <= high < math.inf) or num < 1 or (num == 1 and low != high):
        raise ValueError(
            "a log grid needs 0 < low <= high and num >= 1 (num = 1 only when low = high), "
            f"got low={low}, high={high}, num={num}"
        )
    return [0.0, *(float(v) for v in np.geomspace(low, high, num))]


def grid_values(name: str, values: Any) -> list[float]:
    """The values of one parameter's grid: a non-empty list of finite numbers >= 0."""
    if isinstance(values, str) or not isinstance(values, Sequence) or not values:
        raise ValueError(f"tune.grid.{name} must be a list of values >= 0, got {values!r}")
    checked = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"tune.grid.{name} must be a list of values >= 0, got {list(values)}")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"tune.grid.{name} must be a list of values >= 0, got {list(values)}")
        checked.append(float(value))
    return checked


def _key(row: Mapping[str, Any], objective: str) -> tuple[float, float]:
    """Sort key: the objective (negated when higher is better), then mse to break ties."""
    value = row[objective] if OBJECTIVES[objective] else -row[objective]
    return (value, row["mse"])


def best_by_stragglers(
    rows: Sequence[Mapping[str, Any]], scheme: str, params: Sequence[str], objective: str
) -> dict[int, dict[str, Any]]:
    """For every S, the row of ``scheme`` with the best ``objective`` (ties: the lower mse, then
    the first). Returns ``{S: {"params": {...}, "row": row}}``; a row whose objective or mse is
    NaN or infinite never wins (an S with no other row is left out)."""
    if objective not in OBJECTIVES:
        raise ValueError(
            f"tune.objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}"
        )
    best: dict[int, dict[str, Any]] = {}
    for row in rows:
        if row["scheme"] != scheme or not (
            math.isfinite(row[objective]) and math.isfinite(row["mse"])
        ):
            continue
        s = row["num_stragglers"]
        if s not in best or _key(row, objective) < _key(best[s]["row"], objective):
            best[s] = {"params": {p: row[p] for p in params}, "row": row}
    return dict(sorted(best.items()))


def tpe_search(
    evaluate: Callable[[dict[str, float]], list[dict[str, Any]]],
    ranges: Mapping[str, Sequence[float]],
    stragglers: Sequence[int],
    objective: str,
    n_trials: int,
    seed: int,
) -> list[dict[str, Any]]:
    """Optuna TPE over log-uniform ranges, one study per S.

    Every trial proposes a setting for one S in turn, ``evaluate(params)`` returns its rows at
    every S (one classifier pass serves them all), and the result is told to the proposing study
    and added to the others, so that each study learns from every evaluation. Returns all rows.
    """
    with warnings.catch_warnings():  # optuna 2.10 imports a SQLAlchemy 1 API
        warnings.simplefilter("ignore")
        import optuna
        from optuna.distributions import LogUniformDistribution

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # create_trial and add_trial are "experimental" in optuna 2.10 (stable since 3.0)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    direction = "minimize" if OBJECTIVES[objective] else "maximize"
    distributions = {}
    for name, bounds in ranges.items():
        low, high = (float(b) for b in bounds)
        if not 0 < low < high < math.inf:
            raise ValueError(
                f"tune.optuna.ranges.{name} must be [low, high] with 0 < low < high, "
                f"got {list(bounds)}"
            )
        distributions[name] = LogUniformDistribution(low, high)
    studies = {
        s: optuna.create_study(
            direction=direction, sampler=optuna.samplers.TPESampler(seed=seed + i)
        )
        for i, s in enumerate(stragglers)
    }
    rows: list[dict[str, Any]] = []
    for number in range(n_trials):
        s = stragglers[number % len(stragglers)]
        trial = studies[s].ask(distributions)
        params = dict(trial.params)
        found = evaluate(params)
        rows += found
        values = {r["num_stragglers"]: r[objective] for r in found}
        for other, study in studies.items():
            value = values.get(other, math.nan)
            state = (
                optuna.trial.TrialState.COMPLETE
                if math.isfinite(value)
                else optuna.trial.TrialState.FAIL
            )
            if other == s:
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
