"""One table per multirun: a Hydra callback that records every job and gathers them in a csv.

Registered in ``conf/hydra/default.yaml`` under ``hydra.callbacks``, it acts only in MULTIRUN
mode (``-m``, or an ``hparams_search=`` preset). When a job starts it records it as ``running``
(so that a job killed outright still has a row; a job interrupted by SIGTERM or SIGINT is
recorded as failed by the task wrapper, :func:`record_failed_job`), and a job whose folder
already records it as completed with the same overrides (a sweep resumed into its folder) keeps
that record and is not run again. At the end of each job (in the process that ran it: the main
one for the basic launcher, a worker for joblib or submitit) it writes

``<sweep dir>/<job subdir>/job.json``
    ``{"job", "status", "objective", "optimized_metric", "overrides", "error", "dir"}``: the job
    number, ``completed``, ``failed`` or ``running``, the number the task returned (or null),
    the metric it stands for, the job's task overrides as a dict, the one-line error of a
    failed job (or null), and the job's output folder;

and, for a failed job, its ``FAILED`` marker (:func:`~nercc.runtime.run_folders.mark_failed`: the
same error line and the time) unless the task wrapper already wrote it: a job's folder holds
``FAILED`` if and only if its ``job.json`` says ``failed``. It then rewrites ``<sweep
dir>/multirun.csv`` from every ``*/job.json`` of the sweep: one row per job sorted by number,
columns ``job, status, objective``, one column per override key (``scheme.nercc.lam_enc``, ...),
``error`` and ``dir`` (the job's folder relative to the sweep dir). Jobs may end at the same time
in several processes, so the csv is rebuilt under an ``fcntl`` lock on ``<sweep
dir>/.multirun.lock`` and replaced atomically. The basic sweeper raises on a failed job before
``on_multirun_end``, so each job keeps the csv current; the multirun end only rebuilds it once
more.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import CompactHydraException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from nercc.runtime.logs import error_line, failure_line
from nercc.runtime.run_folders import FAILED_FILE, mark_failed
from nercc.utils.io import write_csv, write_json

log = logging.getLogger(__name__)

__all__ = [
    "JOB_FILE",
    "JobFailed",
    "LOCK_FILE",
    "SUMMARY_FILE",
    "MultirunSummary",
    "completed_record",
    "job_record",
    "mark_running_failed",
    "record_failed_job",
    "summarize",
]

JOB_FILE = "job.json"
SUMMARY_FILE = "multirun.csv"
LOCK_FILE = ".multirun.lock"
FIXED_COLUMNS = ("job", "status", "objective")
LAST_COLUMNS = ("error", "dir")


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


class MultirunSummary(Callback):
    """Hydra callback writing each job's ``job.json`` and the sweep's ``multirun.csv``."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Record a job as ``running`` when it starts, so that a job killed outright (SIGKILL,
        a lost node) still has its row; a job that completed before (a resumed sweep) keeps
        its record."""
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        folder = Path(str(config.hydra.runtime.output_dir)).absolute()
        if completed_record(config.hydra, folder) is not None:
            return
        record = _record(config.hydra, config.get("optimized_metric"), "running", None, None)
        write_json(folder / JOB_FILE, record)
        summarize(_sweep_dir(config))

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        """Record one finished job (completed or failed) and rebuild the sweep's table."""
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        record = job_record(config, job_return)
        folder = Path(record["dir"])
        if record["status"] == "completed":
            (folder / FAILED_FILE).unlink(missing_ok=True)  # a folder reused from a failure
        elif not (folder / FAILED_FILE).exists():  # a task without the wrapper
            mark_failed(folder, record["error"])
        write_json(folder / JOB_FILE, record)
        summarize(_sweep_dir(config))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """In the sweep's own process, turn SIGTERM into: every job still recorded as
        ``running`` marked failed, the table rebuilt, exit 143. With a parallel launcher the
        jobs run in other processes, whose task wrappers handle a signal sent to them; this
        covers a signal sent to the sweep alone (its workers die with it). With the basic
        launcher the wrapper's own handler takes over while a job runs."""
        if threading.current_thread() is not threading.main_thread():
            return
        sweep_dir = _sweep_dir(config)

        def interrupted(signum: int, frame: Any) -> None:
            signal.signal(signum, signal.SIG_DFL)  # a second signal ends the sweep at once
            line = f"Interrupted: the sweep was interrupted by {signal.Signals(signum).name}"
            mark_running_failed(sweep_dir, line)
            print(f"error: {line.removeprefix('Interrupted: ')}", file=sys.stderr, flush=True)
            raise SystemExit(128 + signum)

        signal.signal(signal.SIGTERM, interrupted)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Rebuild the table once all jobs have returned (a no-op if no job recorded itself)."""
        summarize(_sweep_dir(config))


def _sweep_dir(config: DictConfig) -> Path:
    return Path(str(config.hydra.sweep.dir)).absolute()


def job_record(config: DictConfig, job_return: JobReturn) -> dict[str, Any]:
    """What ``job.json`` holds for one job.

    Parameters
    ----------
    config : DictConfig
        The job's config, with its ``hydra`` node (as Hydra passes it to ``on_job_end``).
    job_return : JobReturn
        The job's outcome.

    Returns
    -------
    dict
        ``job`` (int), ``status`` (``"completed"``, ``"failed"``, or ``"running"`` while a job
        runs or after it was killed outright), ``objective`` (float or None),
        ``optimized_metric`` (str or None), ``overrides`` (dict of override key to value),
        ``error`` (one line, or None) and ``dir`` (absolute path of the job's folder).
    """
    completed = job_return.status == JobStatus.COMPLETED
    # JobReturn.return_value re-raises a failed job's exception: read the stored value instead.
    value = job_return._return_value
    return _record(
        config.hydra,
        config.get("optimized_metric"),
        "completed" if completed else "failed",
        _number(value) if completed else None,
        None if completed else _failure(value),  # as in the FAILED marker
        job_return.overrides,
    )


def _record(
    hydra: DictConfig,
    optimized_metric: Any,
    status: str,
    objective: float | None,
    error: str | None,
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    if overrides is None:
        overrides = list(hydra.overrides.task)
    return {
        "job": int(hydra.job.num),
        "status": status,
        "objective": objective,
        "optimized_metric": optimized_metric,
        "overrides": _overrides_dict(overrides),
        "error": error,
        "dir": str(Path(str(hydra.runtime.output_dir)).absolute()),
    }


def record_failed_job(hydra: DictConfig, line: str, optimized_metric: Any = None) -> Path:
    """Record a job that ends without returning to Hydra (interrupted by a signal: Hydra's
    ``on_job_end`` never runs then) as failed, and rebuild the sweep's table.

    Parameters
    ----------
    hydra : DictConfig
        The job's ``hydra`` node (``HydraConfig.get()``).
    line : str
        The failure, as in its ``FAILED`` marker.
    optimized_metric : str, optional
        The metric the job would have returned.

    Returns
    -------
    Path
        The ``job.json`` written.
    """
    record = _record(hydra, optimized_metric, "failed", None, line)
    path = write_json(Path(record["dir"]) / JOB_FILE, record)
    summarize(Path(str(hydra.sweep.dir)).absolute())
    return path


def mark_running_failed(sweep_dir: str | Path, line: str) -> list[int]:
    """Record every job of the sweep still ``running`` as failed with ``line`` (and its
    ``FAILED`` marker), then rebuild the table; return the jobs marked."""
    sweep_dir = Path(sweep_dir)
    marked = []
    for path in sorted(sweep_dir.glob(f"*/{JOB_FILE}")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if record.get("status") == "running":
            record.update(status="failed", objective=None, error=line)
            write_json(path, record)
            if not (path.parent / FAILED_FILE).exists():
                mark_failed(path.parent, line)
            marked.append(record["job"])
    summarize(sweep_dir)
    return marked


def completed_record(hydra: DictConfig, folder: str | Path) -> dict[str, Any] | None:
    """The ``job.json`` in ``folder`` when it records a completed job with the overrides of
    this one (the job ran before in this sweep folder), else None; an unreadable record is
    None (the job runs again)."""
    try:
        record = json.loads((Path(folder) / JOB_FILE).read_text())
        same = record["overrides"] == _overrides_dict(list(hydra.overrides.task))
        return record if record["status"] == "completed" and same else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, str | bytes | bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, RuntimeError):
        return None
    return number if math.isfinite(number) else None


def _failure(value: Any) -> str:
    if isinstance(value, JobFailed):  # the task wrapper's: the job's own error line
        return value.line
    if isinstance(value, BaseException):
        return failure_line(value)
    return error_line(Exception(str(value)))


def _overrides_dict(overrides: list[str]) -> dict[str, Any]:
    """``["a.b=1e-8", "data=synthetic"]`` to ``{"a.b": 1e-08, "data": "synthetic"}``: values
    typed as Hydra parses them when JSON can hold them, else as written."""
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    result: dict[str, Any] = {}
    for override in parsed:
        key = override.get_key_element()
        if override.is_delete():
            key = f"~{key}"
        try:
            value = override.value()
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            value = override.get_value_element_as_str()
        result[key] = value
    return result


@contextmanager
def _locked(sweep_dir: Path) -> Iterator[None]:
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with open(sweep_dir / LOCK_FILE, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value)
    return value


def summarize(sweep_dir: str | Path) -> Path | None:
    """Gather every ``*/job.json`` of a sweep into ``<sweep_dir>/multirun.csv``.

    Parameters
    ----------
    sweep_dir : str or Path
        The multirun's folder (``hydra.sweep.dir``).

    Returns
    -------
    Path or None
        The csv written, or None when no job has recorded itself yet.
    """
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        return None
    with _locked(sweep_dir):
        records = []
        for path in sweep_dir.glob(f"*/{JOB_FILE}"):
            try:
                record = json.loads(path.read_text())
                for field in (*FIXED_COLUMNS, "overrides", "error"):  # what the table reads
                    record[field]  # noqa: B018
                dict(record["overrides"])
            except (OSError, ValueError, KeyError, TypeError) as problem:
                log.warning("multirun: %s left out of the table (unreadable: %s)", path, problem)
                continue
            record["dir"] = path.parent.name  # relative: the table stays right if the sweep moves
            records.append(record)
        if not records:
            return None
        records.sort(key=lambda r: r["job"])
        keys = list(dict.fromkeys(k for r in records for k in r["overrides"]))
        rows = []
        for r in records:
            row = {c: _cell(r[c]) for c in FIXED_COLUMNS}
            row.update({k: _cell(r["overrides"].get(k)) for k in keys})
            row.update({c: _cell(r[c]) for c in LAST_COLUMNS})
            rows.append(row)
        return write_csv(sweep_dir / SUMMARY_FILE, rows)
