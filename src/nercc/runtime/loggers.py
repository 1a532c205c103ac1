"""One fan-out of a task's results to its Lightning loggers (CSV, W&B, ...).

Every task reports the same kinds of things: its resolved config, numbers (per step or once),
tables, images and a few summary values. Loggers differ in what they can take: every Lightning
logger takes hyperparameters and metrics; only a W&B logger takes tables, images and run summary
values. :func:`log_run` sends each thing to every logger that can take it, drops numbers that are
not finite (W&B charts and CSV columns must not show NaN as a measurement), and saves each logger.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["finite_metrics", "log_run", "takes_media"]


def takes_media(logger: Any) -> bool:
    """Whether ``logger`` takes tables, images and summary values (W&B's logger does)."""
    return callable(getattr(logger, "log_table", None)) and callable(
        getattr(logger, "log_image", None)
    )


def finite_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The entries of ``metrics`` that are finite numbers (booleans and None are left out)."""
    return {
        key: value
        for key, value in metrics.items()
        if isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    }


def log_run(
    loggers: Iterable[Any],
    config: Mapping[str, Any],
    *,
    metrics: Mapping[str, Any] | None = None,
    steps: Sequence[tuple[int, Mapping[str, Any]]] = (),
    tables: Mapping[str, tuple[Sequence[str], Sequence[Sequence[Any]]]] | None = None,
    images: Mapping[str, str | Path] | None = None,
    summary: Mapping[str, Any] | None = None,
) -> None:
    """Send a task's results to every logger that can take them, then save each logger.

    Parameters
    ----------
    loggers : iterable of Lightning loggers
        The task's loggers (``build_all(cfg.logger)``); empty logs nothing.
    config : mapping
        The hyperparameters: the resolved config and what the task adds (the classifier, ...).
    metrics : mapping, optional
        Numbers logged once (without a step); those not finite are left out.
    steps : sequence of (int, mapping), optional
        Numbers logged at a step each (e.g. one step per number of stragglers S).
    tables : mapping, optional
        ``name -> (columns, rows)``, for loggers that take tables (W&B).
    images : mapping, optional
        ``name -> image file``, for loggers that take images (W&B).
    summary : mapping, optional
        Values of the run's summary, for loggers that keep one (W&B), NaN included.
    """
    for logger in loggers:
        logger.log_hyperparams(dict(config))
        once = finite_metrics(metrics or {})
        if once:
            logger.log_metrics(once)
        for step, values in steps:
            kept = finite_metrics(values)
            if kept:
                logger.log_metrics(kept, step=step)
        if takes_media(logger):
            for name, (columns, rows) in (tables or {}).items():
                logger.log_table(name, columns=list(columns), data=[list(r) for r in rows])
            for name, path in (images or {}).items():
                logger.log_image(name, images=[str(path)])
            for key, value in (summary or {}).items():
                logger.experiment.summary[key] = value
        logger.save()
