"""Numpy arrays and torch tensors alike: the conversions the coding schemes apply to their operands.

Torch is never imported here unless a tensor was given (a tensor can only exist once torch is
imported), so the coding core runs without it. Callers use these through the module
(``arrays.to_torch(...)``), so that a test can count or replace one of them in one place.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

__all__ = [
    "all_finite",
    "as_float64",
    "as_values",
    "is_tensor",
    "like",
    "on_accelerator",
    "to_host",
    "readonly",
    "row_norms",
    "to_torch",
    "zero_stragglers",
]


def is_tensor(value: Any) -> bool:
    """Return whether ``value`` is a torch tensor (False while torch is not imported)."""
    torch = sys.modules.get("torch")  # a tensor can only exist once torch is imported
    return torch is not None and isinstance(value, torch.Tensor)


def on_accelerator(values: Any) -> bool:
    """Return whether ``values`` is a tensor on a device other than the CPU (a GPU): the schemes
    then keep their work there instead of fitting on the host."""
    return is_tensor(values) and values.device.type != "cpu"


def as_float64(values: Any) -> np.ndarray:
    """Return a numpy float64 copy of an array or tensor (on the CPU)."""
    if is_tensor(values):
        values = values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64)


def to_host(values: Any) -> np.ndarray:
    """Return a numpy float64 copy of a small derived tensor (a GPU scheme's per-pattern scores),
    never of the outputs themselves: those stay on their device."""
    return values.detach().cpu().double().numpy()


def to_torch(matrix: np.ndarray, like_tensor: Any) -> Any:
    """Return a torch copy of a float64 ``matrix`` in the dtype (float64 for an integer tensor)
    and device of the tensor ``like_tensor``, never sharing memory with ``matrix`` (which stays
    read-only)."""
    return like(np.array(matrix), like_tensor)


def like(result: np.ndarray, other: Any) -> Any:
    """Return ``result`` in the type, dtype and device of ``other`` (float64 for integer input)."""
    if is_tensor(other):
        import torch

        dtype = other.dtype if other.is_floating_point() or other.is_complex() else torch.float64
        return torch.as_tensor(result, dtype=dtype, device=other.device)
    dtype = other.dtype if np.issubdtype(other.dtype, np.inexact) else np.float64
    return result.astype(dtype, copy=False)


def as_values(values: Any, name: str) -> Any:
    """Return a float tensor or any ndarray as given; an integer or bool tensor as float64;
    anything else array_like as a float64 ndarray (``ValueError`` naming ``name`` if it is not
    numbers)."""
    if is_tensor(values):
        if values.is_floating_point() or values.is_complex():
            return values
        import torch

        return values.to(torch.float64)
    if isinstance(values, np.ndarray):
        return values
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        text = repr(values)
        text = text if len(text) <= 80 else text[:77] + "..."
        raise ValueError(f"{name} must be an array of numbers, got {text}") from None


def zero_stragglers(values: Any, available: np.ndarray) -> Any:
    """Return ``values`` (N, M) or (P, N, M) with the rows of stragglers set to 0 for each of the
    P patterns (P, N): (P, N, M). A straggler's row never enters an estimate, even when it holds a
    NaN or inf (0 * NaN is NaN, so its zero column in the decoder is not enough)."""
    if is_tensor(values):
        import torch

        mask = torch.as_tensor(available, device=values.device)[..., None]
        return torch.where(mask, values, torch.zeros((), dtype=values.dtype, device=values.device))
    return np.where(available[..., None], values, 0.0).astype(values.dtype, copy=False)


def all_finite(values: Any) -> bool:
    """Return whether every value of an array or tensor is finite."""
    if is_tensor(values):
        import torch

        if values.is_cpu and values.dtype in (torch.float32, torch.float64):
            # numpy's check of a view costs a fifth of torch's for the few logits of a group
            try:
                view = values.detach().numpy() if values.requires_grad else values.numpy()
            except (RuntimeError, TypeError):  # numpy cannot view it (sparse, a negative view)
                pass
            else:
                return bool(np.isfinite(view).all())
        return bool(torch.isfinite(values).all())
    return bool(np.isfinite(values).all())


def readonly(array: np.ndarray) -> np.ndarray:
    """Return ``array``, made read-only in place."""
    array.flags.writeable = False
    return array


def row_norms(values: np.ndarray) -> np.ndarray:
    """The 2-norms along the last axis, without overflow for entries up to the largest double
    (scaled by each row's largest magnitude first); inf where a row holds an infinity or a NaN."""
    top = np.max(np.abs(values), axis=-1, keepdims=True)
    scale = np.where((top > 0) & np.isfinite(top), top, 1.0)
    return np.where(
        np.isfinite(top[..., 0]),
        scale[..., 0] * np.sqrt(np.sum((values / scale) ** 2, axis=-1)),
        np.inf,
    )
