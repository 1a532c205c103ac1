"""The task wrapper of every entry point (:func:`task_wrapper`): bad input in one line, a
sweep that goes on past a failed job, never a silent NaN, never an interrupted run reported as a
success, the W&B run always finished, and a failed run's folder never looking finished."""

from __future__ import annotations

import errno
import functools
import logging
import math
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from nercc.runtime.logs import FILE_ONLY, error_line, failure_line, quiet_known_noise
from nercc.runtime.multirun import JobFailed, completed_record, record_failed_job
from nercc.runtime.resolvers import is_multirun
from nercc.runtime.run_folders import (
    FAILED_FILE,
    claim_run_dir,
    current_run_dir,
    kept_files,
    mark_run_dir,
    release_run_dir,
)
from nercc.runtime.signals import Interrupted, is_sigterm_exception, signals_interrupt

__all__ = [
    "check_objective_finite",
    "disk_full",
    "disk_full_line",
    "task_wrapper",
]

log = logging.getLogger(__name__)


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


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def disk_full(error: BaseException) -> OSError | None:
    """The ``OSError`` of a full disk or quota behind ``error`` (itself, its cause or its
    context), or None."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in _DISK_FULL:
            return error
        error = error.__cause__ or error.__context__
    return None


def disk_full_line(error: OSError) -> str:
    """One line for a full disk, naming the folder that could not be written."""
    name = error.filename or error.filename2
    what = "no space left on the device" if error.errno == errno.ENOSPC else "disk quota exceeded"
    where = f"cannot write in {Path(str(name)).parent}" if name else "cannot write a file"
    return f"{where}: {what} (files written before this one are kept whole)"


def task_wrapper(task: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """Wrap a ``@hydra.main`` task function: one clear line for bad input, never a silent NaN,
    never an interrupted run reported as a success, the W&B run always finished, and a failed
    run's folder never looking finished.

    A known user error (``ValueError``, ``FileNotFoundError`` with the missing-data error,
    Hydra's ``InstantiationException``) or a full disk prints one line ``error: <message>`` to
    stderr (and logs it to the run's log file only). In a single run the process then exits with
    status 1 (``SystemExit``). In a multirun the job raises :class:`JobFailed`, so that Hydra's
    launcher records the job as failed and the sweep goes on with the other jobs (the basic
    sweeper then ends with that one line and status 1; the Optuna sweeper with
    ``max_failure_rate: 1.0`` counts a failed trial). Any other exception is logged with its
    traceback to the log file and re-raised as it is. A returned number that is NaN or infinite
    raises ``ValueError`` naming ``cfg.optimized_metric``.

    SIGTERM (and SIGINT, Ctrl-C) interrupt the task (:class:`Interrupted`, also Lightning's
    ``SIGTERMException``): the run is marked failed with the signal's name, a multirun job gets
    its row in ``multirun.csv``, and the process exits with status 143 (130 for SIGINT). A
    multirun job whose folder already holds a ``job.json`` that says it completed with the same
    overrides is not run again (a sweep resumed into its folder, ``hydra.sweep.dir=...``): its
    recorded objective is returned.

    Whatever happens, a started W&B run is finished (marked failed with exit code 1 when the
    task failed). Then, under Hydra, the run's folder (``hydra.runtime.output_dir``) of a failed
    task is marked with :func:`mark_failed`, or, in a single run refused by the config checks
    (:class:`~nercc.utils.errors.ConfigError`: nothing was done) whose folder holds nothing but
    Hydra's ``.hydra/`` and the log file, and no other process's ``.running-<pid>`` marker,
    removed. Called without Hydra (tests), the wrapper touches no folder.

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

        quiet_known_noise()
        done = _completed_before()
        if done is not None:
            return done["objective"]
        # A log file on a full disk must not print a traceback for every record: the task's own
        # error line says what failed (logging's errors go nowhere instead).
        logging.raiseExceptions = False
        claim_run_dir()
        try:
            with signals_interrupt() as received:
                value = task(cfg)
                if received:  # raised where Python drops exceptions (a __del__, a callback)
                    raise Interrupted(received[0])
                value = check_objective_finite(value, cfg.get("optimized_metric"))
        except (DataNotFoundError, FileNotFoundError, ValueError, InstantiationException) as error:
            _fail_in_one_line(error_line(error), error)
        except OSError as error:
            full = disk_full(error)
            if full is None:
                _fail_with_traceback(error)
                raise
            _fail_in_one_line(disk_full_line(full), error)
        except KeyboardInterrupt as error:
            _interrupted(Interrupted(signal.SIGINT), error, cfg)
        except Interrupted as error:
            _interrupted(error, error, cfg)
        except SystemExit as error:
            if is_sigterm_exception(error):  # Lightning's, raised at the end of a step
                _interrupted(Interrupted(signal.SIGTERM), error, cfg)
            cause = error.__context__  # Lightning ends a Ctrl-C'd fit with sys.exit(1)
            if isinstance(cause, Interrupted | KeyboardInterrupt):
                signum = cause.signum if isinstance(cause, Interrupted) else signal.SIGINT
                _interrupted(Interrupted(signum), error, cfg)
            if error.code in (None, 0):  # a task may end early on purpose
                _after_success()
            else:
                _log_to_file(f"error: {failure_line(error)}")
                _after_failure(error)
                _record_multirun_failure(failure_line(error), cfg)
            raise
        except BaseException as error:
            full = disk_full(error)
            if full is not None:
                _fail_in_one_line(disk_full_line(full), error)
            _fail_with_traceback(error)
            raise
        _after_success()
        return value

    return wrapped


def _fail_in_one_line(line: str, error: BaseException) -> NoReturn:
    """Print ``error: <line>``, mark the run failed, and exit 1 (a single run) or raise
    :class:`JobFailed` (a multirun job)."""
    line = f"error: {line}"
    print(line, file=sys.stderr, flush=True)
    _log_to_file(line)
    _after_failure(error)
    if is_multirun():
        run_dir = current_run_dir()
        raise JobFailed(failure_line(error), str(run_dir or "")) from error
    raise SystemExit(1) from None


def _fail_with_traceback(error: BaseException) -> None:
    _log_to_file(f"error: {failure_line(error)}", error)
    _after_failure(error)


def _interrupted(interruption: Interrupted, error: BaseException, cfg: DictConfig) -> NoReturn:
    """Mark the run failed by the signal, record a multirun job's row, exit ``128 + signal``.

    The line names what the run had finished and keeps (the best epoch's checkpoint, the
    files written so far), so that a preempted run's work is found, not redone."""
    run_dir = current_run_dir()
    kept = kept_files(run_dir) if run_dir is not None else []
    line = f"error: {interruption} (the run did not finish"
    line += f"; kept in {run_dir}: {', '.join(kept)})" if kept else ")"
    print(line, file=sys.stderr, flush=True)
    _log_to_file(line)
    _after_failure(interruption)
    _record_multirun_failure(failure_line(interruption), cfg)
    raise SystemExit(interruption.exit_code) from error


def _record_multirun_failure(line: str, cfg: DictConfig) -> None:
    """In a multirun, record this job as failed with ``line`` (a job that ends by a signal or a
    ``SystemExit`` never returns to Hydra, whose ``on_job_end`` would record it). Never raises:
    the exit that follows matters more than the row."""
    if not is_multirun():
        return

    try:
        record_failed_job(HydraConfig.get(), line, cfg.get("optimized_metric"))
    except Exception as problem:  # any failure to write the row must not hide the exit
        print(f"warning: could not record the failed job: {problem}", file=sys.stderr)


def _completed_before() -> dict[str, Any] | None:
    """The ``job.json`` of this multirun job when it records a completed run with the same
    overrides (a resumed sweep), else None."""
    if not is_multirun():
        return None
    run_dir = current_run_dir()
    if run_dir is None:
        return None

    record = completed_record(HydraConfig.get(), run_dir)
    if record is not None:
        log.info(
            "job %s completed before (objective %s, %s): not run again",
            record["job"], record["objective"], run_dir / "job.json",
        )  # fmt: skip
    return record


def _log_to_file(line: str, error: BaseException | None = None) -> None:
    """Log ``line`` (and ``error``'s traceback) past the console handlers, to the log file.

    Without any handler (no logging configured), Python would print it on stderr: skipped.
    """
    if log.hasHandlers():
        log.error(line, exc_info=error, extra=FILE_ONLY)


def _after_success() -> None:
    _finish_wandb(exit_code=0)
    run_dir = current_run_dir()
    if run_dir is not None:  # a folder reused from a failed run
        (run_dir / FAILED_FILE).unlink(missing_ok=True)
        release_run_dir(run_dir)


def _after_failure(error: BaseException) -> None:
    try:
        _finish_wandb(exit_code=1)
    finally:
        try:
            mark_run_dir(error)
        except OSError as problem:  # never hide the task's error behind this one
            print(f"warning: could not mark the failed run: {problem}", file=sys.stderr)


def _finish_wandb(exit_code: int) -> None:
    if "wandb" in sys.modules:
        import wandb

        if wandb.run is not None:
            wandb.finish(exit_code=exit_code)
