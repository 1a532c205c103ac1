"""The error of a bad setting, shared by the config checks and the instantiation helpers."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

__all__ = ["ConfigError", "show"]

_MISSING = object()


def show(value: Any) -> str:
    """A config value as in the message ``got <value>``: strings quoted, containers plain."""
    if isinstance(value, DictConfig | ListConfig):
        value = OmegaConf.to_container(value, resolve=False)
    return repr(value)


class ConfigError(ValueError):
    """A bad setting, found before any work: ``<key>: <what>, got <value>``.

    Raised only by checks that run before a task loads data or trains; a run that fails with it
    has produced nothing (its folder may be removed).
    """

    def __init__(self, key: str, what: str, got: Any = _MISSING) -> None:
        self.key = key
        message = f"{key}: {what}"
        if got is not _MISSING:
            message += f", got {show(got)}"
        super().__init__(message)
