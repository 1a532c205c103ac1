"""Classifier outputs cached on disk, keyed by a fingerprint of everything they depend on.

Jobs of a sweep that differ only in decoder settings run the frozen classifier on the same
inputs (the originals of a batch, and the coded inputs ``E @ X`` of each encoder). The first job
stores those outputs under ``outputs/cache/``; the next ones load them. A key is the SHA-256 of
the inputs and the classifier (:func:`fingerprint`); an entry is a plain ``.npy`` file written
atomically, so a killed or concurrent writer never leaves a half entry behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nercc.utils.io import file_mode

__all__ = ["OutputCache", "fingerprint"]

_KEY = re.compile(r"[0-9a-f]{64}")
_VERSION = b"nercc.evaluation.cache.fingerprint/1"


def _frame(hasher: Any, tag: bytes, payload: bytes | np.ndarray) -> None:
    """Feed ``tag`` and ``payload`` to ``hasher``, each prefixed by its length in bytes."""
    size = payload.nbytes if isinstance(payload, np.ndarray) else len(payload)
    hasher.update(len(tag).to_bytes(8, "little"))
    hasher.update(tag)
    hasher.update(size.to_bytes(8, "little"))
    hasher.update(payload)


def _hash_array(
    hasher: Any, tag: bytes, dtype: str, shape: tuple[int, ...], data: np.ndarray
) -> None:
    """Frame an array: its dtype and shape as canonical JSON, then its bytes (C order)."""
    header = json.dumps({"dtype": dtype, "shape": list(shape)}, separators=(",", ":"))
    _frame(hasher, tag, header.encode())
    _frame(hasher, b"bytes", data)


def _tensor_bytes(tensor: torch.Tensor) -> np.ndarray:
    """The bytes of a tensor's contiguous CPU copy, as a flat uint8 array (any dtype)."""
    flat = tensor.detach().resolve_conj().resolve_neg().cpu().contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy()


def _hash_part(hasher: Any, index: int, part: Any) -> None:
    if isinstance(part, torch.Tensor):
        _hash_array(hasher, b"tensor", str(part.dtype), tuple(part.shape), _tensor_bytes(part))
    elif isinstance(part, np.ndarray):
        if part.dtype.hasobject:
            raise ValueError(f"parts[{index}] is an object array, which has no stable bytes")
        data = np.ascontiguousarray(part).reshape(-1).view(np.uint8)
        _hash_array(hasher, b"ndarray", part.dtype.str, part.shape, data)
    elif isinstance(part, nn.Module):
        kind = type(part)
        state = part.state_dict()
        _frame(hasher, b"module", f"{kind.__module__}.{kind.__qualname__}:{len(state)}".encode())
        for name, value in state.items():
            _frame(hasher, b"name", name.encode())
            _hash_part(hasher, index, value)  # a tensor, or a module's JSON extra state
    else:
        try:
            text = json.dumps(part, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"parts[{index}] must be a tensor, an array, a module or JSON-serialisable, "
                f"got {type(part).__name__}: {error}"
            ) from error
        _frame(hasher, b"json", text.encode())


def fingerprint(*parts: Any) -> str:
    """SHA-256 hex digest of everything a cached output depends on.

    Parameters
    ----------
    *parts : torch.Tensor, numpy.ndarray, torch.nn.Module or JSON-serialisable value
        A tensor or array is hashed by its dtype, shape and the bytes of its contiguous CPU copy
        (so a non-contiguous view equals its copy, and a reshape with the same bytes differs).
        A module is hashed by its class and its ``state_dict`` (names, dtypes, shapes, bytes, in
        order). Anything else is hashed as canonical JSON (sorted keys, no spaces), so
        ``1``, ``1.0`` and ``True`` differ, and dict order does not matter. Each part is framed
        by a type tag and length prefixes, so ``("ab", "c")`` and ``("a", "bc")`` differ.

    Returns
    -------
    str
        64 lowercase hex characters, usable as an :class:`OutputCache` key.

    Raises
    ------
    ValueError
        If a part is none of the above (the message names ``parts[i]`` and its type).
    """
    hasher = hashlib.sha256()
    hasher.update(_VERSION)
    hasher.update(len(parts).to_bytes(8, "little"))
    for index, part in enumerate(parts):
        _hash_part(hasher, index, part)
    return hasher.hexdigest()


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or _KEY.fullmatch(key) is None:
        raise ValueError(f"key must be 64 lowercase hex characters (a fingerprint), got {key!r}")
    return key


class OutputCache:
    """Classifier outputs on disk, one file per key, written atomically.

    An entry is ``<root>/<key[:2]>/<key>.npy``, a plain numpy file (no pickle). It is written to
    a temporary ``.<key>.*.tmp`` file in the same folder, flushed and fsynced, then renamed over
    the entry, so readers see either no entry or a whole one; a writer killed mid-write leaves at
    most a ``.tmp`` file. Concurrent writers of one key all succeed (the last rename wins, and
    the bytes are the same either way). An entry that cannot be read (truncated, not ``.npy``)
    counts as a miss and is removed.

    Parameters
    ----------
    root : str or os.PathLike
        The cache folder, created on the first store.

    Attributes
    ----------
    hits, misses : int
        How many :meth:`load` calls (including those of :meth:`get_or_compute`) found an entry,
        and how many did not.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"OutputCache({str(self.root)!r}, hits={self.hits}, misses={self.misses})"

    def path(self, key: str) -> Path:
        """Where the entry of ``key`` lives: ``<root>/<key[:2]>/<key>.npy``."""
        key = _check_key(key)
        return self.root / key[:2] / f"{key}.npy"

    def load(self, key: str) -> torch.Tensor | None:
        """The stored value of ``key`` as a CPU tensor of the stored dtype, or None on a miss."""
        path = self.path(key)
        try:
            with open(path, "rb") as file:
                try:
                    array = np.load(file, allow_pickle=False)
                except (OSError, ValueError, EOFError):
                    self._discard(path, os.fstat(file.fileno()))
                    self.misses += 1
                    return None
        except FileNotFoundError:
            self.misses += 1
            return None
        self.hits += 1
        return torch.from_numpy(array)

    @staticmethod
    def _discard(path: Path, seen: os.stat_result) -> None:
        """Remove a bad entry, unless another writer has just replaced it with a new file."""
        with contextlib.suppress(OSError):
            now = os.stat(path)
            if (now.st_dev, now.st_ino) == (seen.st_dev, seen.st_ino):
                os.unlink(path)

    def store(self, key: str, value: torch.Tensor) -> None:
        """Write ``value`` (any device; stored from its CPU copy) as the entry of ``key``."""
        path = self.path(key)
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"value must be a torch.Tensor, got {type(value).__name__}")
        try:
            array = value.detach().resolve_conj().resolve_neg().cpu().numpy()
        except TypeError as error:
            raise ValueError(f"value has dtype {value.dtype}, which numpy cannot store") from error
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(suffix=".tmp", prefix=f".{key}.", dir=path.parent)
        try:
            with os.fdopen(handle, "wb") as file:
                np.save(file, array, allow_pickle=False)
                file.flush()
                os.fsync(file.fileno())
            os.chmod(temporary, file_mode())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        _fsync_folder(path.parent)

    def get_or_compute(
        self,
        key: str,
        compute: Callable[[], torch.Tensor],
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """The stored value of ``key``, or ``compute()`` stored under ``key``.

        Parameters
        ----------
        key : str
            A :func:`fingerprint` of everything ``compute`` depends on.
        compute : callable
            Called with no arguments on a miss only.
        device : torch.device or str, optional
            Where to put a hit (loaded on the CPU otherwise).

        Returns
        -------
        torch.Tensor
            On a hit, the stored values bit for bit; on a miss, the tensor ``compute`` returned,
            unchanged (same object, device and dtype). A value numpy cannot hold (bfloat16, from
            a mixed-precision run) is returned without being stored.
        """
        cached = self.load(key)
        if cached is not None:
            return cached if device is None else cached.to(device)
        value = compute()
        if value.dtype != torch.bfloat16:
            self.store(key, value)
        return value


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable, where the file system allows it."""
    with contextlib.suppress(OSError):
        handle = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)
