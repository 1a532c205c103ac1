"""Command-line helpers shared by the entry points: resolvers, warning filters, the console filter
of the jobs' logging (``conf/hydra/job_logging/nercc.yaml``), and a wrapper that turns bad input
into one clear line, keeps multiruns going, always closes the W&B run and marks a failed run's
folder.

Only entry points import this module; instantiating configs is :mod:`nercc.utils.instantiate`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import shutil
import sys
import warnings
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from nercc.paths import project_root
from nercc.utils.errors import ConfigError
from nercc.utils.io import write_text_atomic

__all__ = [
    "FAILED_FILE",
    "FILE_ONLY",
    "ConsoleFilter",
    "check_objective_finite",
    "error_line",
    "failure_line",
    "is_multirun",
    "mark_failed",
    "task_wrapper",
    "wandb_group",
]

log = logging.getLogger(__name__)

FAILED_FILE = "FAILED"
"""The marker of a failed run's folder (see :func:`mark_failed`)."""
FILE_ONLY = MappingProxyType({"nercc_file_only": True})
"""``extra=`` of a log record that the console handlers skip (already shown, e.g. printed)."""

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


def failure_line(error: BaseException) -> str:
    """``<type>: <message on one line>``, or the type alone when the message is empty."""
    name = type(error).__name__
    message = error_line(error)
    return name if message == name else f"{name}: {message}"


class ConsoleFilter(logging.Filter):
    """The filter of the console handlers in ``conf/hydra/job_logging/nercc.yaml``.

    It drops the records logged with ``extra=FILE_ONLY`` (the task wrapper's error line, which
    it prints itself, and tracebacks that Hydra prints), so that they reach the log file only,
    and, with ``below``, the records at that level and above (stdout shows INFO, while stderr,
    a handler of level WARNING, shows the rest).

    Parameters
    ----------
    below : int or str, optional
        A level (``"WARNING"`` or ``30``); None keeps every level.
    """

    def __init__(self, below: int | str | None = None) -> None:
        super().__init__()
        if isinstance(below, str):
            level = logging.getLevelName(below.upper())
            if not isinstance(level, int):
                raise ValueError(f"below must name a logging level, got {below!r}")
            below = level
        self.below = below

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "nercc_file_only", False):
            return False
        return self.below is None or record.levelno < self.below


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
    the W&B run always finished, and a failed run's folder never looking finished.

    A known user error (``ValueError``, ``FileNotFoundError`` with the missing-data error,
    Hydra's ``InstantiationException``) prints one line ``error: <message>`` to stderr (and logs
    it to the run's log file only). In a single run the process then exits with status 1
    (``SystemExit``). In a multirun the exception is re-raised, so that Hydra's launcher records
    the job as failed and the sweep goes on with the other jobs (the basic sweeper raises after
    its batch; the Optuna sweeper with ``max_failure_rate: 1.0`` counts a failed trial). Any
    other exception (``KeyboardInterrupt`` included) is logged with its traceback to the log
    file and re-raised as it is. A returned number that is NaN or infinite raises
    ``ValueError`` naming ``cfg.optimized_metric``.

    Whatever happens, a started W&B run is finished (marked failed with exit code 1 when the
    task failed). Then, under Hydra, the run's folder (``hydra.runtime.output_dir``) of a failed
    task is marked with :func:`mark_failed`, or, in a single run refused by the config checks
    (:class:`~nercc.utils.errors.ConfigError`: nothing was done) whose folder holds nothing but
    Hydra's ``.hydra/`` and the log file, and no other process's ``.running-<pid>`` marker,
    removed. Called
    without Hydra (tests), the wrapper touches no folder.

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

        _claim_run_dir()
        try:
            value = check_objective_finite(task(cfg), cfg.get("optimized_metric"))
        except (DataNotFoundError, FileNotFoundError, ValueError, InstantiationException) as error:
            line = f"error: {error_line(error)}"
            print(line, file=sys.stderr, flush=True)
            _log_to_file(line)
            _after_failure(error)
            if is_multirun():
                raise
            raise SystemExit(1) from None
        except SystemExit as error:
            if error.code in (None, 0):  # a task may end early on purpose
                _after_success()
            else:
                _log_to_file(f"error: {failure_line(error)}")
                _after_failure(error)
            raise
        except BaseException as error:
            _log_to_file(f"error: {failure_line(error)}", error)
            _after_failure(error)
            raise
        _after_success()
        return value

    return wrapped


def _log_to_file(line: str, error: BaseException | None = None) -> None:
    """Log ``line`` (and ``error``'s traceback) past the console handlers, to the log file.

    Without any handler (no logging configured), Python would print it on stderr: skipped.
    """
    if log.hasHandlers():
        log.error(line, exc_info=error, extra=FILE_ONLY)


RUNNING_PREFIX = ".running-"  # <run dir>/.running-<pid>: a process of this run is at work


def _running_marker(run_dir: Path) -> Path:
    return run_dir / f"{RUNNING_PREFIX}{os.getpid()}"


def _claim_run_dir() -> None:
    """Mark the run's folder as in use by this process (two runs started in the same second
    share Hydra's folder: one failing must not remove what the other writes)."""
    run_dir = _run_dir()
    if run_dir is not None:
        with contextlib.suppress(OSError):
            _running_marker(run_dir).touch()


def _release_run_dir(run_dir: Path) -> None:
    with contextlib.suppress(OSError):
        _running_marker(run_dir).unlink(missing_ok=True)


def _after_success() -> None:
    _finish_wandb(exit_code=0)
    run_dir = _run_dir()
    if run_dir is not None:  # a folder reused from a failed run
        (run_dir / FAILED_FILE).unlink(missing_ok=True)
        _release_run_dir(run_dir)


def _after_failure(error: BaseException) -> None:
    try:
        _finish_wandb(exit_code=1)
    finally:
        try:
            _mark_run_dir(error)
        except OSError as problem:  # never hide the task's error behind this one
            print(f"warning: could not mark the failed run: {problem}", file=sys.stderr)


def _run_dir() -> Path | None:
    """The running job's folder, or None outside Hydra or when it does not exist."""
    if not HydraConfig.initialized():
        return None
    try:
        run_dir = Path(str(HydraConfig.get().runtime.output_dir))
    except Exception:  # composed without a run (hydra.runtime.output_dir missing)
        return None
    return run_dir if run_dir.is_dir() else None


def _mark_run_dir(error: BaseException) -> None:
    """Remove the folder of a single run refused by the config checks (:class:`ConfigError`:
    nothing was done) when it holds only Hydra's files and no other process works in it; mark
    any other failed run's folder with ``FAILED``."""
    run_dir = _run_dir()
    if run_dir is None:
        return
    _release_run_dir(run_dir)
    hydra_cfg = HydraConfig.get()
    if (
        isinstance(error, ConfigError)
        and not is_multirun()
        and _holds_only_hydra_files(run_dir, hydra_cfg)
    ):
        _close_file_handlers(run_dir)
        shutil.rmtree(run_dir)
    else:
        mark_failed(run_dir, error)


def _holds_only_hydra_files(run_dir: Path, hydra_cfg: DictConfig) -> bool:
    """Whether ``run_dir`` holds Hydra's output subfolder (``.hydra/``, yaml files only) and the
    job's log file, and nothing else; never true for the working folder or one above it."""
    if run_dir.is_symlink():
        return False
    here = Path.cwd().resolve()
    if run_dir.resolve() in (here, *here.parents):
        return False
    subdir = hydra_cfg.get("output_subdir")
    for entry in run_dir.iterdir():
        if entry.is_symlink() or entry.name.startswith(RUNNING_PREFIX):  # another run at work
            return False
        if subdir is not None and entry.name == str(subdir) and entry.is_dir():
            for item in entry.iterdir():
                if item.is_symlink() or not item.is_file() or item.suffix != ".yaml":
                    return False
        elif entry.name != f"{hydra_cfg.job.name}.log" or not entry.is_file():
            return False
    return True


def _close_file_handlers(folder: Path) -> None:
    """Flush, close and detach every logging file handler writing under ``folder``."""
    folder = folder.resolve()
    loggers = [logging.getLogger()] + [
        logger for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]  # fmt: skip
    for logger in loggers:
        for handler in list(logger.handlers):
            if isinstance(handler, logging.FileHandler):
                path = Path(handler.baseFilename).resolve()
                if folder in path.parents:
                    handler.flush()
                    handler.close()
                    logger.removeHandler(handler)


def mark_failed(run_dir: str | os.PathLike[str], error: BaseException | str) -> Path:
    """Write ``<run_dir>/FAILED``, atomically: the marker of a run that did not finish.

    It holds two lines::

        error: ValueError: scheme.nercc.lam_dec must be >= 0, got -1.0
        time: 2025-06-01T12:34:56+02:00

    the failure as :func:`failure_line` writes it (as ``job.json`` and ``multirun.csv`` of a
    multirun record it) and the local time, to the second, with its UTC offset.

    Parameters
    ----------
    run_dir : str or Path
        The run's folder.
    error : BaseException or str
        What failed, or its line already written.

    Returns
    -------
    Path
        The marker written.
    """
    line = error if isinstance(error, str) else failure_line(error)
    when = datetime.now().astimezone().isoformat(timespec="seconds")
    return write_text_atomic(Path(run_dir) / FAILED_FILE, f"error: {line}\ntime: {when}\n")


def _finish_wandb(exit_code: int) -> None:
    if "wandb" in sys.modules:
        import wandb

        if wandb.run is not None:
            wandb.finish(exit_code=exit_code)
