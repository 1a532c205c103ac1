"""Command-line helpers shared by the entry points: resolvers, warning filters, and a wrapper that
turns bad input into one clear line, keeps multiruns going and always closes the W&B run.

Only entry points import this module; instantiating configs is :mod:`nercc.utils.instantiate`.
"""

from __future__ import annotations

import functools
import logging
import math
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from nercc.paths import project_root

__all__ = [
    "check_objective_finite",
    "error_line",
    "is_multirun",
    "task_wrapper",
    "wandb_group",
]

# Lightning 2.6 on torch 2.14 warns about its own use of a deprecated torch API at every run.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
# ... and advertises its cloud products at every Trainer (twice per evaluation in a tuning run).
logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(
    lambda record: not str(record.msg).startswith("\N{ELECTRIC LIGHT BULB} Tip:")
)

if not OmegaConf.has_resolver("nercc_root"):
    OmegaConf.register_new_resolver("nercc_root", lambda: str(project_root()))
if not OmegaConf.has_resolver("nercc_div"):  # integer division, e.g. replicas = N // K
    OmegaConf.register_new_resolver("nercc_div", lambda a, b: int(a) // int(b))


def is_multirun() -> bool:
    """Whether this process runs one job of a Hydra multirun (False outside Hydra)."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def wandb_group(task_name: str) -> str:
    """The W&B group of a run (resolver ``nercc_wandb_group``).

    Parameters
    ----------
    task_name : str
        The config's ``task_name``.

    Returns
    -------
    str
        ``task_name`` in a single run; ``<task_name>-<sweep dir name>`` in every job of a
        multirun, so that all the trials of one sweep land in one group.
    """
    if is_multirun():
        return f"{task_name}-{Path(str(HydraConfig.get().sweep.dir)).name}"
    return str(task_name)


if not OmegaConf.has_resolver("nercc_wandb_group"):
    OmegaConf.register_new_resolver("nercc_wandb_group", wandb_group)


def error_line(error: BaseException) -> str:
    """An exception's message on one line (its lines joined by spaces; its type if empty)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return " ".join(lines) or type(error).__name__


def check_objective_finite(value: Any, name: Any = None) -> Any:
    """Return ``value`` unchanged, or raise ``ValueError`` when it is a NaN or infinite number.

    A sweeper must never receive NaN: the Optuna sweeper crashes on it and a grid would rank it
    silently. Values that are not numbers (None, a dict of metrics) pass through.

    Parameters
    ----------
    value : object
        What the task function returned.
    name : str, optional
        The ``optimized_metric`` the value stands for, named in the message.
    """
    if value is None or isinstance(value, str | bytes | bool):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError, RuntimeError):  # not a scalar number
        return value
    if not math.isfinite(number):
        raise ValueError(f"optimized_metric {name!r} must be a finite number, got {number}")
    return value


def task_wrapper(task: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """Wrap a ``@hydra.main`` task function: one clear line for bad input, never a silent NaN,
    and the W&B run always finished.

    A known user error (``ValueError``, ``FileNotFoundError`` with the missing-data error,
    Hydra's ``InstantiationException``) prints one line ``error: <message>`` to stderr. In a
    single run the process then exits with status 1 (``SystemExit``). In a multirun the
    exception is re-raised, so that Hydra's launcher records the job as failed and the sweep
    goes on with the other jobs (the basic sweeper raises after its batch; the Optuna sweeper
    with ``max_failure_rate: 1.0`` counts a failed trial). Any other exception is re-raised as
    it is. A returned number that is NaN or infinite raises ``ValueError`` naming
    ``cfg.optimized_metric``. Whatever happens, a started W&B run is finished (marked failed
    with exit code 1 when the task failed).

    Parameters
    ----------
    task : callable
        ``task(cfg)``; what it returns (the objective of a sweep, or None) is passed on.

    Returns
    -------
    callable
        The wrapped task, with the same name and docstring.
    """

    @functools.wraps(task)
    def wrapped(cfg: DictConfig) -> Any:
        from hydra.errors import InstantiationException

        from nercc.data.sources import DataNotFoundError

        failed = True
        try:
            value = check_objective_finite(task(cfg), cfg.get("optimized_metric"))
            failed = False
            return value
        except (DataNotFoundError, FileNotFoundError, ValueError, InstantiationException) as error:
            print(f"error: {error_line(error)}", file=sys.stderr, flush=True)
            if is_multirun():
                raise
            raise SystemExit(1) from None
        finally:
            _finish_wandb(exit_code=1 if failed else 0)

    return wrapped


def _finish_wandb(exit_code: int) -> None:
    if "wandb" in sys.modules:
        import wandb

        if wandb.run is not None:
            wandb.finish(exit_code=exit_code)
