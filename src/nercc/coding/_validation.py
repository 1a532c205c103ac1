"""Argument checks shared by the public functions of :mod:`nercc.coding`.

Each check raises ``ValueError`` naming the argument and the value it got, so that the caller sees
what was wrong without reading a traceback into the internals.
"""

from __future__ import annotations

import math
import numbers

import numpy as np


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_int(name: str, value: object, minimum: int) -> int:
    """Return ``value`` as an ``int`` if it is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {_show(value)}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def check_lam(name: str, value: object, bound: float = math.inf) -> float:
    """Return a smoothing parameter as a float if it is a finite number in ``[0, bound]``.

    ``bound`` is the largest value the sites allow (see :func:`nercc.coding.splines.lam_bound`);
    the message of a non-finite value or one above it states the range.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a finite number >= 0, got {_show(value)}")
    value = float(value)
    if math.isfinite(value) and 0 <= value <= bound:
        return value
    if value < 0 or math.isinf(bound):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    raise ValueError(
        f"{name} must be a finite number in [0, {bound:g}] (larger values take the smoothing "
        f"spline's linear system out of floating-point range for these sites), got {value}"
    )


def check_points_1d(name: str, value: object, *, ascending: bool) -> np.ndarray:
    """Return a finite 1-D float64 array; with ``ascending``, strictly increasing."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be a 1-D array of finite numbers, got {_show(value)}"
        ) from None
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {_show(arr)}")
    if ascending and arr.size > 1 and not np.all(np.diff(arr) > 0):
        raise ValueError(f"{name} must be strictly ascending (no duplicates), got {_show(arr)}")
    return arr


def check_df(name: str, value: object) -> float:
    """Return effective degrees of freedom as a float if it is a finite number > 2.

    2 is the least-squares line, reached only as lambda -> inf; see :mod:`nercc.coding.gcv`.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a finite number > 2, got {_show(value)}")
    value = float(value)
    if not (math.isfinite(value) and value > 2):
        raise ValueError(
            f"{name} must be a finite number > 2 (2 is the least-squares line, lambda = inf), "
            f"got {value}"
        )
    return value


def check_whole(name: str, value: object, minimum: int) -> int:
    """Return ``value`` as an ``int`` if it is a whole number >= ``minimum``: an integer, or a
    float without a fractional part (``2.0``, as a table of parameters stores one)."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool | numbers.Integral):
        number = float(value)
        if not (math.isfinite(number) and number.is_integer()):
            raise ValueError(f"{name} must be an integer >= {minimum}, got {_show(value)}")
        value = int(number)
    return check_int(name, value, minimum)
