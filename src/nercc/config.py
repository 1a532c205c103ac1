"""Command-line helpers shared by the entry points: resolvers, warning filters, the console filter
of the jobs' logging (``conf/hydra/job_logging/nercc.yaml``), and a wrapper that turns bad input
into one clear line, keeps multiruns going, always closes the W&B run and marks a failed run's
folder.

Only entry points import this module; instantiating configs is :mod:`nercc.utils.instantiate`.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import math
import os
import secrets
import shutil
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn

from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from nercc.paths import project_root
from nercc.utils.errors import ConfigError
from nercc.utils.io import write_text_atomic

__all__ = [
    "FAILED_FILE",
    "FILE_ONLY",
    "ConsoleFilter",
    "Interrupted",
    "JobFailed",
    "check_objective_finite",
    "disk_full",
    "disk_full_line",
    "error_line",
    "failure_line",
    "is_multirun",
    "mark_failed",
    "run_stamp",
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


def run_stamp() -> str:
    """A run folder's name: the local time to the second and 8 random hex digits.

    ``2026-12-05_21-30-12_3fa85f64``: runs started in the same second, in several processes or on
    several hosts sharing a file system, get distinct folders (a collision needs the same
    32 random bits in the same second). Registered as the resolver ``nercc_run_stamp`` with
    Hydra's cache on, so every ``${nercc_run_stamp:}`` of one config, and of every job of a
    multirun (Hydra copies the primary config's resolver cache into each job's config, also when
    a launcher ships it to another process), reads the same value.
    """
    return f"{datetime.now():%Y-%m-%d_%H-%M-%S}_{secrets.token_hex(4)}"


if not OmegaConf.has_resolver("nercc_run_stamp"):
    OmegaConf.register_new_resolver("nercc_run_stamp", run_stamp, use_cache=True)


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


class Interrupted(BaseException):
    """A task stopped by a signal: SIGTERM (a scheduler's preemption, ``timeout``, ``kill``) or
    SIGINT (Ctrl-C). Like ``KeyboardInterrupt`` it is no ``Exception``, so that no ``except
    Exception`` of the task swallows it; the process then exits with ``128 + signal``.

    Parameters
    ----------
    signum : int
        The signal's number.
    """

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        super().__init__(f"interrupted by {signal.Signals(self.signum).name}")

    @property
    def exit_code(self) -> int:
        """The shell's status of a process ended by the signal: 143 for SIGTERM, 130 for SIGINT."""
        return 128 + self.signum

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.signum,))


class JobFailed(CompactHydraException):
    """What a failed job of a multirun raises to Hydra: the job's error line, kept for its
    ``job.json``, and one line for the sweep's end instead of a traceback (Hydra prints a
    ``CompactHydraException`` as its message alone). It pickles, so parallel launchers (joblib,
    submitit) ship it back to the sweep.

    Parameters
    ----------
    line : str
        The job's failure as :func:`failure_line` writes it (``ConfigError: ...``).
    folder : str
        The job's folder, named in the message.
    """

    def __init__(self, line: str, folder: str) -> None:
        self.line = line
        self.folder = folder
        if folder:
            job, table = Path(folder).name, Path(folder).parent / "multirun.csv"
            message = f"error: job {job} of the sweep failed ({line}); every job: {table}"
        else:
            message = f"error: a job of the sweep failed ({line})"
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.line, self.folder))


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

        done = _completed_before()
        if done is not None:
            return done["objective"]
        # A log file on a full disk must not print a traceback for every record: the task's own
        # error line says what failed (logging's errors go nowhere instead).
        logging.raiseExceptions = False
        _claim_run_dir()
        try:
            with _signals_interrupt() as received:
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
            if _is_sigterm_exception(error):  # Lightning's, raised at the end of a step
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
        run_dir = _run_dir()
        raise JobFailed(failure_line(error), str(run_dir or "")) from error
    raise SystemExit(1) from None


def _fail_with_traceback(error: BaseException) -> None:
    _log_to_file(f"error: {failure_line(error)}", error)
    _after_failure(error)


def _interrupted(interruption: Interrupted, error: BaseException, cfg: DictConfig) -> NoReturn:
    """Mark the run failed by the signal, record a multirun job's row, exit ``128 + signal``.

    The line names what the run had finished and keeps (the best epoch's checkpoint, the
    files written so far), so that a preempted run's work is found, not redone."""
    run_dir = _run_dir()
    kept = _kept_files(run_dir) if run_dir is not None else []
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
    from nercc.multirun import record_failed_job  # here: nercc.multirun imports this module

    try:
        record_failed_job(HydraConfig.get(), line, cfg.get("optimized_metric"))
    except Exception as problem:  # any failure to write the row must not hide the exit
        print(f"warning: could not record the failed job: {problem}", file=sys.stderr)


def _kept_files(run_dir: Path, most: int = 8) -> list[str]:
    """The files a run wrote into its folder (relative paths, sorted), without Hydra's, the log
    files and the markers; at most ``most``, then how many more."""
    skip = {FAILED_FILE, "job.json"}
    found = sorted(
        str(path.relative_to(run_dir))
        for path in run_dir.rglob("*")
        if path.is_file()
        and not path.name.startswith(".")
        and path.suffix != ".log"
        and path.name not in skip
        and not any(part.startswith(".") for part in path.relative_to(run_dir).parts)
    )
    if len(found) > most:
        found = [*found[:most], f"{len(found) - most} more"]
    return found


def _is_sigterm_exception(error: SystemExit) -> bool:
    exceptions = sys.modules.get("pytorch_lightning.utilities.exceptions")
    return exceptions is not None and isinstance(error, exceptions.SIGTERMException)


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[list[int]]:
    """Turn SIGTERM and SIGINT into :class:`Interrupted` while the task runs (the main thread
    only: signal handlers cannot be set elsewhere). Raising at once, rather than setting a flag,
    also stops a task outside Lightning's loops, and Lightning passes the exception on after its
    own clean-up (a plain ``KeyboardInterrupt`` it would turn into ``sys.exit(1)``).

    The handler acts once: a second signal during the clean-up ends the process as by default
    (also when Lightning has put the handler back meanwhile). A child process forked while it is
    installed (DataLoader workers) ends by the default action too, so that only the task's own
    process unwinds. The previous handlers come back afterwards.

    Yields the list of signals received (empty, or one): an exception raised while Python runs
    a finaliser or a weakref callback is printed and dropped, so the caller checks it too.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    owner = os.getpid()

    def interrupt(signum: int, frame: Any) -> None:
        if received or os.getpid() != owner:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        received.append(signum)
        raise Interrupted(signum)

    previous = {signum: signal.signal(signum, interrupt) for signum in _SIGNALS}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _completed_before() -> dict[str, Any] | None:
    """The ``job.json`` of this multirun job when it records a completed run with the same
    overrides (a resumed sweep), else None."""
    if not is_multirun():
        return None
    run_dir = _run_dir()
    if run_dir is None:
        return None
    from nercc.multirun import completed_record  # here: nercc.multirun imports this module

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
