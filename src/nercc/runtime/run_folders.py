"""A run's folder while its task works and after it fails: the ``.running-<pid>`` marker of the
process at work, the ``FAILED`` marker, and the removal of the empty folder of a run refused by
the config checks."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from datetime import datetime
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from nercc.runtime.logs import failure_line
from nercc.runtime.resolvers import is_multirun
from nercc.utils.errors import ConfigError
from nercc.utils.io import write_text_atomic

__all__ = [
    "FAILED_FILE",
    "RUNNING_PREFIX",
    "claim_run_dir",
    "current_run_dir",
    "kept_files",
    "mark_failed",
    "mark_run_dir",
    "release_run_dir",
]

FAILED_FILE = "FAILED"
"""The marker of a failed run's folder (see :func:`mark_failed`)."""

RUNNING_PREFIX = ".running-"  # <run dir>/.running-<pid>: a process of this run is at work


def current_run_dir() -> Path | None:
    """The running job's folder, or None outside Hydra or when it does not exist."""
    if not HydraConfig.initialized():
        return None
    try:
        run_dir = Path(str(HydraConfig.get().runtime.output_dir))
    except Exception:  # composed without a run (hydra.runtime.output_dir missing)
        return None
    return run_dir if run_dir.is_dir() else None


def _running_marker(run_dir: Path) -> Path:
    return run_dir / f"{RUNNING_PREFIX}{os.getpid()}"


def claim_run_dir() -> None:
    """Mark the run's folder as in use by this process (two runs started in the same second
    share Hydra's folder: one failing must not remove what the other writes)."""
    run_dir = current_run_dir()
    if run_dir is not None:
        with contextlib.suppress(OSError):
            _running_marker(run_dir).touch()


def release_run_dir(run_dir: Path) -> None:
    """Remove this process's ``.running-<pid>`` marker from ``run_dir``."""
    with contextlib.suppress(OSError):
        _running_marker(run_dir).unlink(missing_ok=True)


def mark_run_dir(error: BaseException) -> None:
    """Remove the folder of a single run refused by the config checks (:class:`ConfigError`:
    nothing was done) when it holds only Hydra's files and no other process works in it; mark
    any other failed run's folder with ``FAILED``."""
    run_dir = current_run_dir()
    if run_dir is None:
        return
    release_run_dir(run_dir)
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


def kept_files(run_dir: Path, most: int = 8) -> list[str]:
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
