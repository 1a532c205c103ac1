"""Logging helpers of the jobs: one-line errors, the console filter of
``conf/hydra/job_logging/nercc.yaml`` and the silencing of known third-party noise."""

from __future__ import annotations

import logging
import warnings
from types import MappingProxyType

__all__ = ["FILE_ONLY", "ConsoleFilter", "error_line", "failure_line", "quiet_known_noise"]

FILE_ONLY = MappingProxyType({"nercc_file_only": True})
"""``extra=`` of a log record that the console handlers skip (already shown, e.g. printed)."""


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


def quiet_known_noise() -> None:
    """Silence what third parties print at every run that says nothing about this one: Lightning
    2.6 on torch 2.14 warning about its own use of a deprecated torch API, and its
    advertisements of cloud products at every Trainer."""
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    rank_zero = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    if not any(getattr(f, "nercc_tip_filter", False) for f in rank_zero.filters):
        rank_zero.addFilter(_TipFilter())


class _TipFilter(logging.Filter):
    nercc_tip_filter = True

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("\N{ELECTRIC LIGHT BULB} Tip:")
