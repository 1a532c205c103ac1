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
    has produced nothing (its folder may be removed). It pickles (parallel launchers ship a
    failed job's exception back to the sweep).
    """

    def __init__(self, key: str, what: str, got: Any = _MISSING) -> None:
        self.key = key
        self.what = what
        self.got = got
        message = f"{key}: {what}"
        if got is not _MISSING:
            message += f", got {show(got)}"
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        if self.got is _MISSING:
            return (type(self), (self.key, self.what))
        return (type(self), (self.key, self.what, _picklable(self.got)))


def _picklable(value: Any) -> Any:
    """``value``, or a plain copy of it where it is a config node (those pickle with their
    parents) or its ``repr`` where it does not pickle at all."""
    import pickle

    if isinstance(value, DictConfig | ListConfig):
        value = OmegaConf.to_container(value, resolve=False)
    try:
        pickle.dumps(value)
    except Exception:  # any object may fail to pickle in its own way
        return _Shown(show(value))
    return value


class _Shown(str):
    """A value already written as ``show`` writes it (its repr is the text itself)."""

    def __repr__(self) -> str:
        return str(self)
