"""Classifier outputs cached on disk, keyed by a fingerprint of everything they depend on.

Jobs of a sweep that differ only in decoder settings run the frozen classifier on the same
inputs (the originals of a batch, and the coded inputs ``E @ X`` of each encoder). The first job
stores those outputs under ``outputs/cache/``; the next ones load them. A key is the SHA-256 of
a description of the inputs and the classifier (:func:`fingerprint`). An entry is a plain
``.npy`` file with a JSON record beside it (the SHA-256 of the ``.npy`` file, its shape and
dtype, the key and its description), each written atomically. A cache that can be wrong is worse
than none: an entry is used only when it matches its record and the description asked for and
holds finite values; anything else is discarded with one warning and recomputed. A cache folder
that cannot be written turns the cache off for the rest of the run, with one warning.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import logging
import os
import re
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nercc.utils.io import fsync_folder, write_bytes_atomic

__all__ = ["OutputCache", "fingerprint"]

log = logging.getLogger(__name__)

_KEY = re.compile(r"[0-9a-f]{64}")
_VERSION = b"nercc.evaluation.cache.fingerprint/1"
#: The ``format`` of an entry's record; a record of another format is discarded.
RECORD_FORMAT = "nercc.evaluation.cache.entry/2"


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
        state = part.state_dict()
        # Non-persistent buffers (left out of state_dict) change the outputs all the same.
        extra = [(n, b) for n, b in part.named_buffers() if n not in state and b is not None]
        # The tree: every submodule's class and settings (an activation, a convolution's
        # stride), which change the outputs of the same tensors.
        tree = [
            [name, f"{type(m).__module__}.{type(m).__qualname__}", m.extra_repr()]
            for name, m in part.named_modules(remove_duplicate=False)
        ]
        header = json.dumps([tree, len(state), len(extra)], separators=(",", ":"))
        _frame(hasher, b"module", header.encode())
        for name, value in [*state.items(), *extra]:
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
        A module is hashed by its tree (every submodule's name, class and ``extra_repr``: an
        activation, a convolution's stride), its ``state_dict`` (names, dtypes, shapes, bytes, in
        order), then its non-persistent buffers (not its code, nor other plain attributes). Anything
        else is hashed as canonical JSON (sorted keys, no spaces), so ``1``, ``1.0`` and
        ``True`` differ, and dict order does not matter. Each part is framed
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


def _canonical(description: Any) -> Any:
    """``description`` as it reads back from JSON (tuples become lists), for comparisons."""
    try:
        return json.loads(json.dumps(description, sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"description must be JSON-serialisable (finite numbers), got {description!r}: {error}"
        ) from error


class _Discard(Exception):
    """An entry that must not be used; the message says why."""


class OutputCache:
    """Classifier outputs on disk, one entry per key, checked on every load.

    An entry is ``<root>/<key[:2]>/<key>.npy``, a plain numpy file (no pickle), with its record
    ``<key>.json`` beside it: the format, the key, the SHA-256 of the ``.npy`` file, the array's
    shape and dtype, and the description of what the key stands for (the inputs of the key, in
    readable form). Each file is written to a temporary ``.<name>.*.tmp`` file in the same folder,
    fsynced, then renamed over its place, record first, so readers see whole files only; a writer
    killed mid-write leaves at most a ``.tmp`` file or a record without data (a plain miss).

    A load uses an entry only when its record is readable and of this format, names the same key
    and description, and the ``.npy`` file has the recorded SHA-256, shape and dtype and holds only
    finite values. Anything else (a value changed after writing, another dtype or shape, NaN, a
    truncated file, a missing record) is discarded (both files removed) with one warning line
    naming the entry and what did not match, and counts as a miss: :meth:`get_or_compute` then
    recomputes and rewrites it. Concurrent writers of one key all succeed; whatever mix of their
    files a reader sees is either consistent (checked by the digest) or discarded, never used.

    A cache that cannot be written or read (a full disk, a quota, a read-only or forbidden folder:
    any ``OSError`` but a missing entry) turns itself off for the rest of its life, with one
    warning naming the folder: :meth:`get_or_compute` then computes every value, and the run's
    numbers are those of a run without a cache.

    Parameters
    ----------
    root : str or os.PathLike
        The cache folder, created on the first store.

    Attributes
    ----------
    hits, misses, discarded : int
        How many :meth:`load` calls (including those of :meth:`get_or_compute`) found a valid
        entry, how many did not (a discarded entry counts as a miss), and how many entries were
        discarded.
    off : str or None
        Why the cache is off (the error that turned it off), or None while it is on.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0
        self.discarded = 0
        self.off: str | None = None

    def __repr__(self) -> str:
        state = "" if self.off is None else ", off"
        return f"OutputCache({str(self.root)!r}, hits={self.hits}, misses={self.misses}{state})"

    def path(self, key: str) -> Path:
        """Where the entry of ``key`` lives: ``<root>/<key[:2]>/<key>.npy``."""
        key = _check_key(key)
        return self.root / key[:2] / f"{key}.npy"

    def record_path(self, key: str) -> Path:
        """Where the record of ``key``'s entry lives: ``<root>/<key[:2]>/<key>.json``."""
        return self.path(key).with_suffix(".json")

    def load(self, key: str, description: Any = None) -> torch.Tensor | None:
        """The stored value of ``key`` as a CPU tensor of the stored dtype, or None on a miss.

        Parameters
        ----------
        key : str
            The entry's key.
        description : JSON-serialisable, optional
            What the key stands for; an entry recorded with another description is discarded.

        Raises
        ------
        OSError
            When the cache folder cannot be read (not for a missing entry).
        """
        path, record_path = self.path(key), self.record_path(key)
        expected = _canonical(description)
        try:
            raw, seen = _read_regular(path)
        except (FileNotFoundError, NotADirectoryError):
            self.misses += 1
            return None
        except _Discard as reason:  # a link, a folder, a pipe: never read, never trusted
            for planted in (path, record_path):
                with contextlib.suppress(OSError):
                    if planted.is_dir() and not planted.is_symlink():  # under the entry's name
                        shutil.rmtree(planted)
                    else:
                        os.unlink(planted)
            self.discarded += 1
            self.misses += 1
            log.warning(f"cache: discarded the entry {path}: {reason}; recomputing it")
            return None
        record_seen = None
        try:
            try:
                record_raw, record_seen = _read_regular(record_path)
            except (FileNotFoundError, NotADirectoryError):
                raise _Discard(f"its record {record_path.name} is missing") from None
            array = self._checked(key, raw, record_raw, expected)
        except _Discard as reason:
            self._discard(path, seen)
            if record_seen is not None:
                self._discard(record_path, record_seen)
            self.discarded += 1
            self.misses += 1
            log.warning(f"cache: discarded the entry {path}: {reason}; recomputing it")
            return None
        self.hits += 1
        return torch.from_numpy(array)

    @staticmethod
    def _checked(key: str, raw: bytes, record_raw: bytes, expected: Any) -> np.ndarray:
        """The entry's array, or :class:`_Discard` saying what does not match."""
        try:
            record = json.loads(record_raw)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except ValueError as error:  # UnicodeDecodeError and JSONDecodeError included
            raise _Discard(f"its record is not readable JSON ({error})") from None
        if record.get("format") != RECORD_FORMAT:
            raise _Discard(f"its record has format {record.get('format')!r}, not {RECORD_FORMAT}")
        if record.get("key") != key:
            raise _Discard(f"its record names another key, {record.get('key')!r}")
        if record.get("description") != expected:
            raise _Discard(
                f"its record describes {json.dumps(record.get('description'), sort_keys=True)}, "
                f"not {json.dumps(expected, sort_keys=True)}"
            )
        try:
            array = np.load(io.BytesIO(raw), allow_pickle=False)
        except (OSError, ValueError, EOFError) as error:
            raise _Discard(f"not a readable .npy file ({error})") from None
        shape, dtype = list(array.shape), array.dtype.str
        if shape != record.get("shape"):
            raise _Discard(f"its shape is {shape}, its record says {record.get('shape')}")
        if dtype != record.get("dtype"):
            raise _Discard(f"its dtype is {dtype}, its record says {record.get('dtype')}")
        digest = hashlib.sha256(raw).hexdigest()
        if digest != record.get("sha256"):
            raise _Discard(
                f"its content changed after it was written (sha256 {digest[:12]}..., "
                f"recorded {str(record.get('sha256'))[:12]}...)"
            )
        if array.dtype.kind in "fc" and not np.isfinite(array).all():
            bad = int(np.count_nonzero(~np.isfinite(array)))
            raise _Discard(f"{bad} of its {array.size} values are not finite")
        return array

    @staticmethod
    def _discard(path: Path, seen: os.stat_result) -> None:
        """Remove a bad file, unless another writer has just replaced it with a new file."""
        with contextlib.suppress(OSError):
            now = os.stat(path)
            if (now.st_dev, now.st_ino) == (seen.st_dev, seen.st_ino):
                os.unlink(path)

    def store(self, key: str, value: torch.Tensor, description: Any = None) -> None:
        """Write ``value`` (any device; stored from its CPU copy) as the entry of ``key``.

        Parameters
        ----------
        key : str
            The entry's key.
        value : torch.Tensor
            What to store (a dtype numpy can hold).
        description : JSON-serialisable, optional
            What the key stands for, kept in the entry's record and checked by :meth:`load`.

        Raises
        ------
        OSError
            When the folder cannot be written (nothing is left behind but, at most, the record).
        """
        path = self.path(key)
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"value must be a torch.Tensor, got {type(value).__name__}")
        try:
            array = value.detach().resolve_conj().resolve_neg().cpu().numpy()
        except TypeError as error:
            raise ValueError(f"value has dtype {value.dtype}, which numpy cannot store") from error
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        data = buffer.getvalue()
        record = {
            "format": RECORD_FORMAT,
            "key": key,
            "sha256": hashlib.sha256(data).hexdigest(),
            "shape": list(array.shape),
            "dtype": array.dtype.str,
            "description": _canonical(description),
        }
        text = json.dumps(record, indent=1, sort_keys=True, allow_nan=False) + "\n"
        path.parent.mkdir(parents=True, exist_ok=True)
        # The record first: a reader that finds the data finds its record (a record alone is a
        # plain miss), and a mix of two writers' files fails the digest check, never passes it.
        write_bytes_atomic(self.record_path(key), text.encode())
        write_bytes_atomic(path, data)
        fsync_folder(path.parent)

    def _turn_off(self, error: OSError) -> None:
        reason = error.strerror or str(error) or type(error).__name__
        self.off = reason
        log.warning(
            f"cache: the output cache {self.root} cannot be used ({reason}): it is off for "
            "the rest of this run, every output is computed (the numbers are unaffected)"
        )

    def get_or_compute(
        self,
        key: str,
        compute: Callable[[], torch.Tensor],
        device: torch.device | str | None = None,
        description: Any = None,
    ) -> torch.Tensor:
        """The stored value of ``key``, or ``compute()`` stored under ``key``.

        Parameters
        ----------
        key : str
            A :func:`fingerprint` of everything ``compute`` depends on (of ``description``).
        compute : callable
            Called with no arguments on a miss only.
        device : torch.device or str, optional
            Where to put a hit (loaded on the CPU otherwise).
        description : JSON-serialisable, optional
            What the key stands for, recorded with the entry; an entry recorded with another one
            is discarded.

        Returns
        -------
        torch.Tensor
            On a hit, the stored values bit for bit; on a miss, the tensor ``compute`` returned,
            unchanged (same object, device and dtype). A value numpy cannot hold (bfloat16, from
            a mixed-precision run) or with values that are not finite is returned without being
            stored. A folder that cannot be read or written turns the cache off (one warning):
            from then on every value is computed.
        """
        _check_key(key)
        if self.off is None:
            try:
                cached = self.load(key, description)
            except OSError as error:
                self._turn_off(error)
            else:
                if cached is not None:
                    return cached if device is None else cached.to(device)
        value = compute()
        if self.off is None and value.dtype != torch.bfloat16 and _finite(value):
            try:
                self.store(key, value, description)
            except OSError as error:
                self._turn_off(error)
        return value


def _read_regular(path: Path) -> tuple[bytes, os.stat_result]:
    """The bytes of the regular file ``path`` and its ``fstat``. A symbolic link, a folder, a
    pipe or a device is refused (:class:`_Discard`) without reading it: a pipe would block the
    run, a device never end, a link point anywhere."""
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise _Discard("it is a symbolic link, not a file the cache wrote") from None
        raise
    try:
        seen = os.fstat(handle)
        if not stat.S_ISREG(seen.st_mode):
            raise _Discard("it is not a regular file")
        with os.fdopen(handle, "rb", closefd=False) as file:
            return file.read(), seen
    finally:
        os.close(handle)


def _finite(value: torch.Tensor) -> bool:
    """Whether every value is finite (what is not is never stored: it would be discarded)."""
    return not value.is_floating_point() or bool(torch.isfinite(value).all())
