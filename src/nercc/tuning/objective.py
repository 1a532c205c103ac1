"""What a sweep optimises: one metric of one scheme, averaged over the straggler counts.

``coded/<scheme>/<metric>`` names it, as in the logged metrics (``coded/nercc/mse``); the value is
the metric's mean over the S of the run, or its value at one S.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

__all__ = ["DIRECTIONS", "check_objective", "objective_value", "parse_metric"]

#: Every metric a row holds that can be optimised, and whether lower or higher is better.
DIRECTIONS = {"mse": "minimize", "acc": "maximize", "rel_acc": "maximize", "agreement": "maximize"}


def parse_metric(name: Any) -> tuple[str, str]:
    """``coded/<scheme>/<metric>`` to ``(scheme, metric)``; ``ValueError`` otherwise."""
    parts = name.split("/") if isinstance(name, str) else []
    if len(parts) != 3 or parts[0] != "coded" or not parts[1] or parts[2] not in DIRECTIONS:
        raise ValueError(
            f"must be coded/<scheme>/<metric> with metric one of {', '.join(DIRECTIONS)}, "
            f"got {name!r}"
        )
    return parts[1], parts[2]


def check_objective(
    name: Any, schemes: dict[str, list[Any]], stragglers: Sequence[int], at: Any = None
) -> str | None:
    """Check an objective against a run before it starts.

    ``schemes`` maps each scheme name to the S lists of its variants (None: every S), or to
    their (S, A) cells (variants of a table tuned per S and A). Returns None when the objective
    can be computed, or the reason it cannot (no such scheme, or several variants of it in one
    cell, as in a grid); a malformed name or S raises ``ValueError``.
    """
    scheme, _ = parse_metric(name)
    if at is not None and (isinstance(at, bool) or not isinstance(at, int) or at not in stragglers):
        raise ValueError(f"must be null or one S of stragglers={list(stragglers)}, got {at!r}")
    if scheme not in schemes:
        return f"no scheme {scheme!r} in this run (schemes: {', '.join(schemes)})"
    for s in stragglers if at is None else [at]:
        count = sum(1 for runs in schemes[scheme] if runs is None or s in runs)
        # variants that run in (S, A) cells: one per A at most
        by_a = Counter(
            cell[1]
            for runs in schemes[scheme]
            for cell in runs or ()
            if isinstance(cell, tuple) and cell[0] == s
        )
        count += max(by_a.values(), default=0)
        if count > 1:
            return (
                f"{count} variants of {scheme!r} run at S={s} (a grid): the objective is ambiguous"
            )
    return None


def objective_value(rows: Sequence[dict[str, Any]], name: str, at: int | None = None) -> float:
    """The objective of a run's result rows: the metric of the scheme's rows, averaged over S
    (or at S = ``at``). Raises ``ValueError`` when a value is missing or not finite."""
    scheme, metric = parse_metric(name)
    chosen = [
        r for r in rows if r["scheme"] == scheme and (at is None or r["num_stragglers"] == at)
    ]
    if not chosen:
        raise ValueError(f"optimized_metric: no rows of scheme {scheme!r} to compute {name}")
    values = [r[metric] for r in chosen]
    bad = [r["num_stragglers"] for r, v in zip(chosen, values, strict=True) if not math.isfinite(v)]
    if bad:
        raise ValueError(f"optimized_metric: {name} is not finite at S={bad}, got {values}")
    return float(sum(values) / len(values))
