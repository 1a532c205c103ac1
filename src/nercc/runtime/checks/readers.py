"""Readers of single config values: each reads one key and raises
``ConfigError("<key>", what, got)``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from nercc.utils.errors import ConfigError

MISSING = object()


def get(cfg: DictConfig, key: str, default: Any = MISSING) -> Any:
    """The resolved value at ``key`` (a dotted path); a missing key without a default, a
    mandatory ``???`` or an interpolation that fails is a :class:`ConfigError`."""
    try:
        value = OmegaConf.select(cfg, key, default=MISSING, throw_on_missing=True)
    except OmegaConfBaseException as error:
        reason = str(error).splitlines()[0]
        raise ConfigError(key, f"cannot be resolved ({reason})") from None
    if value is MISSING:
        if default is MISSING:
            raise ConfigError(key, "is missing from the config")
        return default
    return value


def as_list(value: Any) -> list | None:
    """The items of a list value (a ListConfig, or a list a resolver returned); None otherwise."""
    return list(value) if isinstance(value, ListConfig | list | tuple) else None


def is_int(value: Any) -> bool:
    """Whether ``value`` is an int (a bool is not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """Whether ``value`` is a finite int or float (a bool is not a number here)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def integer(
    cfg: DictConfig, key: str, low: int | None = None, high: int | None = None, *,
    optional: bool = False, low_text: str | None = None, default: Any = MISSING,
) -> int | None:  # fmt: skip
    """An integer in ``[low, high]`` (``None`` allowed when ``optional``)."""
    value = get(cfg, key, default)
    if value is None and optional:
        return None
    bounds = bounds_text(low, high, low_text)
    if (
        not is_int(value)
        or (low is not None and value < low)
        or (high is not None and value > high)
    ):
        what = f"must be {'null or ' if optional else ''}an integer{bounds}"
        raise ConfigError(key, what, value)
    return value


def number(
    cfg: DictConfig, key: str, low: float | None = None, high: float | None = None, *,
    low_open: bool = False, high_open: bool = False, optional: bool = False,
    default: Any = MISSING,
) -> float | None:  # fmt: skip
    """A finite number in the interval from ``low`` to ``high`` (open ends as asked)."""
    value = get(cfg, key, default)
    if value is None and optional:
        return None
    ok = is_number(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        interval = ""
        if low is not None and high is not None:
            interval = f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        elif low is not None:
            interval = f" {'>' if low_open else '>='} {low:g}"
        elif high is not None:
            interval = f" {'<' if high_open else '<='} {high:g}"
        what = f"must be {'null or ' if optional else ''}a finite number{interval}"
        raise ConfigError(key, what, value)
    return float(value)


def choice(cfg: DictConfig, key: str, options: Sequence[Any], default: Any = MISSING) -> Any:
    """One of ``options``."""
    value = get(cfg, key, default)
    same_type = not isinstance(value, bool) or any(isinstance(o, bool) for o in options)
    if not same_type or value not in options:
        shown = ", ".join(str(o) for o in options)
        raise ConfigError(key, f"must be one of {shown}", value)
    return value


def boolean(cfg: DictConfig, key: str, default: Any = MISSING) -> bool:
    value = get(cfg, key, default)
    if not isinstance(value, bool):
        raise ConfigError(key, "must be true or false", value)
    return value


def integer_list(
    cfg: DictConfig, key: str, low: int = 0, high: int | None = None, high_text: str = ""
) -> list[int]:
    """A non-empty list of integers in ``[low, high]``."""
    value = get(cfg, key)
    items = as_list(value)
    bounds = bounds_text(low, None, None) + (
        f" and <= {high_text or high}" if high is not None else ""
    )
    what = f"must be a non-empty list of integers{bounds}"
    if not items or not all(is_int(v) for v in items):
        raise ConfigError(key, what, value)
    for v in items:
        if v < low or (high is not None and v > high):
            raise ConfigError(key, what, value)
    if len(set(items)) != len(items):
        raise ConfigError(key, "must not repeat a value", value)
    return [int(v) for v in items]


def bounds_text(low: int | None, high: int | None, low_text: str | None) -> str:
    parts = []
    if low is not None:
        parts.append(f">= {low_text or low}")
    if high is not None:
        parts.append(f"<= {high}")
    return (" " + " and ".join(parts)) if parts else ""
