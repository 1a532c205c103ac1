"""Coding schemes: an encoder matrix and one decoder matrix per availability pattern.

Every scheme is linear. With K inputs stacked along the first axis as ``X`` (K, ...), worker ``n``
receives row ``n`` of ``E @ X`` and returns ``f`` of it; from the outputs ``Y`` (N, ...) of the
available workers the estimate of ``f(X)`` is ``D_F @ Y``, where ``D_F`` (K, N) has zero columns at
the stragglers. The encoder matrix is built once; decoder matrices are cached per pattern, with
their torch copies per dtype and device. A scheme may be shared by threads: its caches are guarded
by a lock of its own (not pickled: a copy or an unpickled scheme starts with empty caches).

- :class:`NeRCC`: smoothing splines for both regressions (``lam_enc``, ``lam_dec``, or degrees of
  freedom ``df_enc``, ``df_dec``, or a decoder lambda chosen per pattern by GCV).
- :class:`BACC`: Berrut's interpolant for both.
- :class:`Uncoded`: N = K, each worker gets one input; a straggler's input is lost.
- :class:`Replication`: N = r K; an input is recovered when any of its r replicas answers.

NeRCC and BACC decode any pattern with at least one answer, but with fewer answers than inputs the
estimates are underdetermined (a fit through fewer points than it must reproduce): their public
decoding methods then warn once per call with :class:`FewAnswersWarning` (Uncoded and Replication
never do: they report the inputs they lose through :meth:`CodingScheme.lost` instead).
"""

from __future__ import annotations

import sys
import threading
import warnings
from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import Any

import numpy as np

from nercc.coding._validation import check_df, check_int, check_lam
from nercc.coding.berrut import berrut_matrices
from nercc.coding.gcv import DEFAULT_LAM_GRID, _argmin, _df, _energy, _gcv, _lam_for_df, _spectrum
from nercc.coding.points import LAYOUTS, make_points
from nercc.coding.splines import _lam_bound, smoothing_spline_matrices, smoothing_spline_values

__all__ = ["BACC", "CodingScheme", "FewAnswersWarning", "NeRCC", "Replication", "Uncoded"]

#: How many decoder matrices a scheme keeps (least recently used are dropped first, with their
#: torch copies). At K = 20, N = 100 one holds 16 kB, and 8 kB more per float32 copy.
DECODER_CACHE_SIZE = 16384

#: How many bytes of eigen-decompositions NeRCC keeps per scheme (one per availability mask, for
#: GCV and degrees of freedom; least recently used dropped first). At N = 100 one holds 80 kB.
SPECTRUM_CACHE_BYTES = 2**27

#: At most this many patterns are eigen-decomposed in one batch (bounds the temporary memory).
SPECTRUM_CHUNK = 256

#: Stands for :data:`DEFAULT_LAM_GRID` in a pickled NeRCC (which keeps it by identity).
_DEFAULT_GRID = "default"


class FewAnswersWarning(RuntimeWarning):
    """Fewer workers answered than there are inputs (K): the estimates are underdetermined.

    Issued once per call by the decoding methods of NeRCC and BACC; the estimates are returned all
    the same. An evaluation or a server that counts such patterns itself can silence this category
    (``warnings.catch_warnings`` with ``simplefilter("ignore", FewAnswersWarning)``) and count them
    with :meth:`CodingScheme.underdetermined`.
    """


#: How far :meth:`CodingScheme._warn_few_answers` is below the caller of a public decoding method
#: (warn <- _warn_few_answers <- the checked body <- the public method <- its caller).
_STACKLEVEL = 4


def _is_tensor(value: Any) -> bool:
    torch = sys.modules.get("torch")  # a tensor can only exist once torch is imported
    return torch is not None and isinstance(value, torch.Tensor)


def _to_float64(values: Any) -> np.ndarray:
    """A numpy float64 copy of an array or tensor (on the CPU)."""
    if _is_tensor(values):
        values = values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64)


def _to_torch(matrix: np.ndarray, like: Any) -> Any:
    """A torch copy of a float64 ``matrix`` in the dtype (float64 for an integer tensor) and device
    of the tensor ``like``; never sharing memory with ``matrix`` (which stays read-only)."""
    return _like(np.array(matrix), like)


def _like(result: np.ndarray, like: Any) -> Any:
    """``result`` in the type, dtype and device of ``like`` (float64 for integer input)."""
    if _is_tensor(like):
        import torch

        dtype = like.dtype if like.is_floating_point() or like.is_complex() else torch.float64
        return torch.as_tensor(result, dtype=dtype, device=like.device)
    dtype = like.dtype if np.issubdtype(like.dtype, np.inexact) else np.float64
    return result.astype(dtype, copy=False)


def _as_values(values: Any, name: str) -> Any:
    """A float tensor or any ndarray as given; an integer or bool tensor as float64; anything
    else array_like as a float64 ndarray (``ValueError`` naming ``name`` if it is not numbers)."""
    if _is_tensor(values):
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


def _zero_stragglers(values: Any, available: np.ndarray) -> Any:
    """``values`` (N, M) or (P, N, M) with the rows of stragglers set to 0 for each of the P
    patterns (P, N): (P, N, M). A straggler's row never enters an estimate, even when it holds a
    NaN or inf (0 * NaN is NaN, so its zero column in the decoder is not enough)."""
    if _is_tensor(values):
        import torch

        mask = torch.as_tensor(available, device=values.device)[..., None]
        return torch.where(mask, values, torch.zeros((), dtype=values.dtype, device=values.device))
    return np.where(available[..., None], values, 0.0).astype(values.dtype, copy=False)


def _all_finite(values: Any) -> bool:
    if _is_tensor(values):
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


def _readonly(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


class _Decoder:
    """A cached decoder: the read-only float64 ``matrix`` (K, N) of one pattern and its torch
    copies by (dtype, device), dropped with it."""

    __slots__ = ("matrix", "tensors")

    def __init__(self, matrix: np.ndarray) -> None:
        self.matrix = matrix
        self.tensors: dict[tuple[Any, Any], Any] = {}


class CodingScheme(ABC):
    """A linear code for K inputs over N workers.

    Subclasses build the encoder matrix and the decoder matrices of a batch of patterns; this class
    validates arguments, caches decoders and applies both to numpy arrays and torch tensors.

    Every method may be called from several threads at once: the caches are only read and changed
    under the scheme's lock, while matrices are built outside it (two threads missing the same
    pattern may both build it; the first one cached is kept and returned to both).
    """

    def __init__(self, num_inputs: int, num_workers: int) -> None:
        self.num_inputs = num_inputs
        self.num_workers = num_workers
        self._reset_caches()

    def _reset_caches(self) -> None:
        """Empty caches and a new lock (at construction and after unpickling or copying)."""
        self._lock = threading.RLock()
        self._encoder: np.ndarray | None = None
        self._torch_cache: dict[tuple[Any, Any], Any] = {}  # the encoder's torch copies
        self._decoders: OrderedDict[bytes, _Decoder] = OrderedDict()  # least recently used first

    #: Attributes rebuilt by :meth:`_reset_caches`, left out of pickles and copies.
    _CACHES: tuple[str, ...] = ("_lock", "_encoder", "_torch_cache", "_decoders")

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in self._CACHES:
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset_caches()

    # -- to implement -------------------------------------------------------------------------
    @abstractmethod
    def _build_encoder(self) -> np.ndarray:
        """Return the (N, K) float64 encoder matrix."""

    @abstractmethod
    def _build_decoders(self, available: np.ndarray) -> np.ndarray:
        """Return the (P, K, N) float64 decoders of P distinct, valid boolean patterns (P, N)."""

    # -- matrices -----------------------------------------------------------------------------
    def encoder_matrix(self) -> np.ndarray:
        """Return the read-only encoder matrix ``E`` of shape (N, K): worker n gets ``E[n] @ X``."""
        encoder = self._encoder
        if encoder is None:
            with self._lock:  # built once, so that every caller gets the same array
                if self._encoder is None:
                    self._encoder = _readonly(self._build_encoder())
                encoder = self._encoder
        return encoder

    def decoder_matrix(self, available: Any) -> np.ndarray:
        """Return the read-only decoder ``D_F`` of shape (K, N) for one pattern.

        Parameters
        ----------
        available : array_like of bool, shape (N,)
            True where the worker answered. Columns of stragglers are zero.
        """
        mask = self._check_available(available)
        if mask.ndim != 1:
            raise ValueError(
                f"available must have shape ({self.num_workers},) here, got shape {mask.shape}"
            )
        return self._entries(mask[None])[0].matrix

    def decoder_matrices(self, available: Any) -> np.ndarray:
        """Return the decoders of a batch of patterns as one float64 array of shape (P, K, N).

        Parameters
        ----------
        available : array_like of bool, shape (P, N) or (N,)
        """
        mask = self._check_available(available)
        return self._lookup(np.atleast_2d(mask))

    def lost(self, available: Any) -> np.ndarray:
        """Return which inputs cannot be estimated at all: bool of shape (K,) or (P, K).

        A lost input's estimate is all zeros. Coded schemes lose nothing while a worker answers.
        """
        mask = self._check_available(available)
        rows = np.atleast_2d(mask)
        result = ~np.any(self._lookup(rows) != 0.0, axis=2)
        return result if mask.ndim == 2 else result[0]

    #: Whether decoding a pattern with fewer answers than inputs is underdetermined (point
    #: schemes); Uncoded and Replication lose inputs instead (:meth:`lost`).
    _FEW_ANSWERS_UNDERDETERMINED = False

    def underdetermined(self, available: Any) -> np.ndarray | bool:
        """Return which patterns are decoded from fewer answers than inputs, for a scheme where
        that leaves the estimates underdetermined (NeRCC, BACC; always False for Uncoded and
        Replication, which report lost inputs through :meth:`lost`).

        These are the patterns for which the decoding methods warn :class:`FewAnswersWarning`.

        Parameters
        ----------
        available : array_like of bool, shape (N,) or (P, N)

        Returns
        -------
        bool, or ndarray of bool of shape (P,)
        """
        mask = self._check_available(available)
        result = self._few_answers(mask)
        return bool(result) if mask.ndim == 1 else result

    def _few_answers(self, mask: np.ndarray) -> np.ndarray:
        """Per valid pattern (N,) or (P, N): fewer answers than inputs, where that matters."""
        if not self._FEW_ANSWERS_UNDERDETERMINED:
            return np.zeros(mask.shape[:-1], dtype=bool)
        return np.count_nonzero(mask, axis=-1) < self.num_inputs

    def _warn_few_answers(self, mask: np.ndarray) -> None:
        """Warn :class:`FewAnswersWarning` once for a valid pattern (N,) or patterns (P, N) with
        fewer answers than inputs; called by the checked body of a public decoding method, so
        that the warning points at that method's caller."""
        if not self._FEW_ANSWERS_UNDERDETERMINED or self.num_inputs == 1:
            return
        counts = np.count_nonzero(mask, axis=-1)
        few = counts < self.num_inputs
        if not np.any(few):
            return
        k, n = self.num_inputs, self.num_workers
        if mask.ndim == 1:
            message = (
                f"only {int(counts)} of the N={n} workers answered, fewer than K={k} inputs: "
                f"the estimates are underdetermined"
            )
        else:
            message = (
                f"{int(np.count_nonzero(few))} of {mask.shape[0]} patterns had fewer answers "
                f"than K={k} inputs (as few as {int(counts.min())} of the N={n} workers): "
                f"their estimates are underdetermined"
            )
        warnings.warn(message, FewAnswersWarning, stacklevel=_STACKLEVEL)

    # -- application --------------------------------------------------------------------------
    def encode(self, inputs: Any) -> Any:
        """Return the coded inputs ``E @ X``.

        Parameters
        ----------
        inputs : array_like or torch.Tensor of shape (K, ...)

        Returns
        -------
        Same type, dtype and device as ``inputs`` (float64 for integer inputs, an ndarray for
        other array_like), shape (N, ...).
        """
        inputs = _as_values(inputs, "inputs")
        shape = tuple(inputs.shape)
        if len(shape) == 0 or shape[0] != self.num_inputs:
            raise ValueError(
                f"inputs must have first axis num_inputs={self.num_inputs}, got shape {shape}"
            )
        flat = inputs.reshape(self.num_inputs, -1)
        encoder = self._encoder_operand(inputs)
        return (encoder @ flat).reshape((self.num_workers, *shape[1:]))

    def decode(self, outputs: Any, available: Any) -> Any:
        """Return the estimates ``D_F @ Y`` of the K outputs.

        Parameters
        ----------
        outputs : array_like or torch.Tensor of shape (N, ...)
            The workers' outputs; rows of stragglers are ignored (they may hold anything, NaN
            included).
        available : array_like of bool, shape (N,) or (P, N)
            One pattern, or P patterns decoded in one batched product.

        Returns
        -------
        Same type, dtype and device as ``outputs``, shape (K, ...) or (P, K, ...).

        Warns
        -----
        FewAnswersWarning
            Once per call, from NeRCC and BACC, when fewer than K workers answer (in any of the
            patterns): the estimates are returned but underdetermined. See
            :meth:`underdetermined`.
        """
        return self._decode_checked(outputs, available)

    def _decode_checked(self, outputs: Any, available: Any) -> Any:
        """The checked body of :meth:`decode` (the warning's stack level counts on this frame)."""
        outputs, shape = self._check_outputs(outputs)
        mask = self._check_available(available)
        self._warn_few_answers(mask)
        return self._decode(outputs, shape, mask)

    def _decode(self, outputs: Any, shape: tuple[int, ...], mask: np.ndarray) -> Any:
        """:meth:`decode` of checked ``outputs`` (N, ...) of ``shape`` and a valid ``mask``."""
        decoders = self._decoder_operand(mask, outputs)  # (K, N) or (P, K, N)
        flat = outputs if len(shape) == 2 else outputs.reshape(self.num_workers, -1)
        if not _all_finite(flat):
            flat = _zero_stragglers(flat, mask)  # (N, M) or (P, N, M)
        estimates = decoders @ flat  # (K, M) or (P, K, M)
        if mask.ndim == 1:
            if len(shape) == 2:
                return estimates
            return estimates.reshape((self.num_inputs, *shape[1:]))
        return estimates.reshape((mask.shape[0], self.num_inputs, *shape[1:]))

    def decode_each(self, outputs: Any, available: Any) -> Any:
        """Decode P sets of outputs, each with its own pattern: ``D_{F_p} @ Y_p`` for every p.

        This is what an evaluation needs (every group of K inputs meets its own stragglers), and
        it can be computed without forming the decoder matrices. :meth:`decode_each_with_params`
        is the same decoding that also reports the parameters used per pattern.

        Parameters
        ----------
        outputs : array_like or torch.Tensor of shape (P, N, ...)
            The workers' outputs of P groups; rows of stragglers are ignored.
        available : array_like of bool, shape (P, N)

        Returns
        -------
        Same type, dtype and device as ``outputs``, shape (P, K, ...).

        Warns
        -----
        FewAnswersWarning
            As :meth:`decode`: once per call when some pattern has fewer than K answers.
        """
        return self._decode_each_checked(outputs, available, with_params=False)[0]

    def decode_each_with_params(
        self, outputs: Any, available: Any
    ) -> tuple[Any, dict[str, np.ndarray]]:
        """Decode like :meth:`decode_each` and say which parameters each pattern was decoded with.

        A scheme whose parameters are fixed reports :meth:`params` for every pattern; NeRCC
        reports ``lam_enc``, ``lam_dec``, ``df_enc`` and ``df_dec`` as used per pattern (the
        decoder's lambda and df depend on the answering workers, and with ``lam_dec="gcv"`` on
        the outputs too).

        Parameters
        ----------
        outputs : array_like or torch.Tensor of shape (P, N, ...)
        available : array_like of bool, shape (P, N)

        Returns
        -------
        estimates
            As :meth:`decode_each`: the type, dtype and device of ``outputs``, shape (P, K, ...).
        params : dict of str to ndarray of shape (P,), float64
            The parameters by name, one value per pattern (empty for a scheme without any).

        Warns
        -----
        FewAnswersWarning
            As :meth:`decode`: once per call when some pattern has fewer than K answers.
        """
        return self._decode_each_checked(outputs, available, with_params=True)

    def _decode_each_checked(
        self, outputs: Any, available: Any, with_params: bool
    ) -> tuple[Any, dict[str, np.ndarray]]:
        """The checked body of :meth:`decode_each` and :meth:`decode_each_with_params`."""
        outputs = _as_values(outputs, "outputs")
        mask = self._check_available(available)
        shape = tuple(outputs.shape)
        if mask.ndim != 2 or len(shape) < 2 or shape[:2] != mask.shape:
            raise ValueError(
                f"outputs must have shape (P, {self.num_workers}, ...) matching available "
                f"{mask.shape}, got shape {shape}"
            )
        self._warn_few_answers(mask)
        flat = outputs.reshape(shape[0], self.num_workers, -1)
        estimates, params = self._decode_each(flat, mask, with_params)
        return estimates.reshape((shape[0], self.num_inputs, *shape[2:])), params

    def _decode_each(
        self, outputs: Any, available: np.ndarray, with_params: bool = False
    ) -> tuple[Any, dict[str, np.ndarray]]:
        """(P, N, M) outputs and valid patterns (P, N) to (P, K, M) through the decoders, and the
        parameters per pattern when asked (the fixed :meth:`params`, broadcast)."""
        if not _all_finite(outputs):
            outputs = _zero_stragglers(outputs, available)
        estimates = self._decoder_operand(available, outputs) @ outputs
        return estimates, (self._fixed_params(available.shape[0]) if with_params else {})

    def _fixed_params(self, count: int) -> dict[str, np.ndarray]:
        """:meth:`params` as arrays of shape (count,)."""
        return {name: np.full(count, float(value)) for name, value in self.params().items()}

    # -- description --------------------------------------------------------------------------
    def params(self) -> dict[str, float]:
        """Return the scheme's tunable parameters by name (empty for a scheme without any).

        NeRCC gives ``{"lam_enc": ..., "lam_dec": ...}`` (or ``df_enc``, ``df_dec`` where those
        were given). Evaluation, tuning and result tables read parameters through this, never by a
        scheme's attribute names. The values are plain floats, fixed for the scheme; what a
        pattern was actually decoded with comes from :meth:`decode_each_with_params`.
        """
        return {}

    def decoder_key(self) -> tuple[Any, ...]:
        """Return a key that is equal for two schemes exactly when they decode every pattern with
        the same matrix, so that outputs of several encoders can be decoded in one pass."""
        return (type(self).__name__, *sorted(self._describe().items()))

    # -- internals ----------------------------------------------------------------------------
    def _check_outputs(self, outputs: Any) -> tuple[Any, tuple[int, ...]]:
        """``outputs`` as values (array or tensor) with num_workers rows first, and its shape."""
        outputs = _as_values(outputs, "outputs")
        shape = tuple(outputs.shape)
        if len(shape) == 0 or shape[0] != self.num_workers:
            raise ValueError(
                f"outputs must have first axis num_workers={self.num_workers}, got shape {shape}"
            )
        return outputs, shape

    def _check_available(self, available: Any) -> np.ndarray:
        if _is_tensor(available):
            available = available.detach().cpu().numpy()
        mask = np.asarray(available)
        if mask.dtype != np.bool_:
            raise ValueError(f"available must be a boolean array, got dtype {mask.dtype}")
        if mask.ndim not in (1, 2) or mask.shape[-1] != self.num_workers:
            raise ValueError(
                f"available must have shape ({self.num_workers},) or (P, {self.num_workers}), "
                f"got shape {mask.shape}"
            )
        if mask.ndim == 1 and mask.any():  # the common case, checked in one reduction
            return mask
        empty = ~mask.any(axis=-1)
        if np.any(empty):
            where = "" if mask.ndim == 1 else f" (pattern {int(np.argmax(empty))})"
            raise ValueError(f"available must mark at least one worker, got none{where}")
        return mask

    def _lookup(self, masks: np.ndarray) -> np.ndarray:
        """Decoders (P, K, N) of valid patterns (P, N), stacked."""
        return np.stack([entry.matrix for entry in self._entries(masks)])

    def _entries(self, masks: np.ndarray) -> list[_Decoder]:
        """The cached decoders of valid patterns (P, N), building the missing ones in one batch
        (outside the lock); the patterns become the most recently used, in their order."""
        keys = [np.packbits(row).tobytes() for row in masks]
        cache = self._decoders
        with self._lock:
            found = {key: cache[key] for key in keys if key in cache}
            if all(key in found for key in keys):
                return self._refresh(keys, found)
        missing = {k: row for k, row in zip(keys, masks, strict=True) if k not in found}
        built = self._build_decoders(np.stack(list(missing.values())))
        for key, decoder in zip(missing, built, strict=True):
            found[key] = _Decoder(_readonly(decoder))
        with self._lock:
            return self._refresh(keys, found)

    def _refresh(self, keys: list[bytes], found: dict[bytes, _Decoder]) -> list[_Decoder]:
        """Under the lock: cache the ``found`` decoders that are not (or no longer) cached, move
        ``keys`` to the most recent end, drop the least recently used beyond the cache size and
        return the decoders of ``keys`` (those cached first: one object per pattern)."""
        cache = self._decoders
        for key in keys:
            if key not in cache:
                cache[key] = found[key]
        result = [cache[key] for key in keys]
        self._mark_used(keys)
        return result

    def _mark_used(self, keys: list[bytes]) -> None:
        """Under the lock: move ``keys`` to the most recent end of the decoder cache and drop
        the least recently used beyond :data:`DECODER_CACHE_SIZE`."""
        cache = self._decoders
        for key in keys:
            cache.move_to_end(key)
        while len(cache) > DECODER_CACHE_SIZE:
            cache.popitem(last=False)

    def _decoder_operand(self, masks: np.ndarray, like: Any) -> Any:
        """The decoders of valid patterns (N,) or (P, N), (K, N) or (P, K, N), in the type, dtype
        and device of ``like``. Torch copies are cached with the decoders: a cached pattern
        costs a key and a lookup, no conversion."""
        if masks.ndim == 1 and _is_tensor(like):  # the hot path: one cached pattern
            key = np.packbits(masks).tobytes()
            cache = self._decoders
            with self._lock:
                entry = cache.get(key)
                if entry is not None:
                    tensor = entry.tensors.get((like.dtype, like.device))
                    if tensor is not None:
                        self._mark_used([key])
                        return tensor
        entries = self._entries(masks[None] if masks.ndim == 1 else masks)
        if not _is_tensor(like):
            matrices = (
                entries[0].matrix if masks.ndim == 1 else np.stack([e.matrix for e in entries])
            )
            return _like(matrices, like)
        key = (like.dtype, like.device)
        with self._lock:
            tensors = [entry.tensors.get(key) for entry in entries]
        missing = {id(entry): entry for entry, t in zip(entries, tensors, strict=True) if t is None}
        if missing:
            # One conversion (one transfer to the device) for all; each pattern keeps a copy of
            # its own, so that an evicted pattern frees its memory whatever the others do.
            converted = _to_torch(np.stack([entry.matrix for entry in missing.values()]), like)
            copies = converted.unbind(0)
            if len(copies) > 1:
                copies = [copy.clone() for copy in copies]
            with self._lock:
                for entry, copy in zip(missing.values(), copies, strict=True):
                    entry.tensors.setdefault(key, copy)
                tensors = [entry.tensors[key] for entry in entries]
        if masks.ndim == 1:
            return tensors[0]
        import torch

        return torch.stack(tensors)

    def _encoder_operand(self, like: Any) -> Any:
        """The encoder in the type, dtype and device of ``like``; its torch copies are kept per
        (dtype, device)."""
        encoder = self.encoder_matrix()
        if not _is_tensor(like):
            return _like(encoder, like)
        key = (like.dtype, like.device)
        with self._lock:
            tensor = self._torch_cache.get(key)
        if tensor is None:
            tensor = _to_torch(encoder, like)
            with self._lock:
                tensor = self._torch_cache.setdefault(key, tensor)
        return tensor

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self._describe().items())
        return f"{type(self).__name__}({fields})"

    def _describe(self) -> dict[str, Any]:
        return {"num_inputs": self.num_inputs, "num_workers": self.num_workers}


class _PointScheme(CodingScheme, ABC):
    """A scheme that places inputs at ``alphas`` and workers at ``betas`` (NeRCC, BACC)."""

    _FEW_ANSWERS_UNDERDETERMINED = True

    def __init__(self, num_inputs: int, num_workers: int, points: str) -> None:
        num_inputs = check_int("num_inputs", num_inputs, 1)
        num_workers = check_int("num_workers", num_workers, 2)
        if num_workers < num_inputs:
            raise ValueError(
                f"num_workers must be at least num_inputs={num_inputs} (fewer workers than "
                f"inputs cannot carry them), got {num_workers}"
            )
        if points not in LAYOUTS:
            raise ValueError(f"points must be one of {LAYOUTS}, got {points!r}")
        super().__init__(num_inputs, num_workers)
        self.points = points
        self.alphas, self.betas = make_points(num_inputs, num_workers, points)
        self.alphas.flags.writeable = False
        self.betas.flags.writeable = False

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.alphas.flags.writeable = False  # numpy unpickles and copies arrays writeable
        self.betas.flags.writeable = False

    def _by_size(self, available: np.ndarray):
        """Patterns grouped by how many workers answer (each group is one batched fit): yields
        their rows in ``available``, their masks and the betas of their answering workers."""
        counts = available.sum(axis=1)
        for count in np.unique(counts):
            chosen = np.flatnonzero(counts == count)
            masks = available[chosen]
            sites = np.broadcast_to(self.betas, masks.shape)[masks].reshape(len(chosen), count)
            yield chosen, masks, sites

    def _build_decoders(self, available: np.ndarray) -> np.ndarray:
        decoders = np.zeros((available.shape[0], self.num_inputs, self.num_workers))
        for chosen, masks, sites in self._by_size(available):
            fitted = self._fit_decoders(masks, sites)  # (p, K, count)
            rows, cols = np.nonzero(masks)
            block = decoders[chosen]
            block[rows, :, cols] = fitted.transpose(0, 2, 1).reshape(-1, self.num_inputs)
            decoders[chosen] = block
        return decoders

    def _build_encoder(self) -> np.ndarray:
        return self._fit(self.alphas[None], self.betas, decoder=False)[0]

    def _fit_decoders(self, masks: np.ndarray, sites: np.ndarray) -> np.ndarray:
        """Decoder operators (p, K, n) of patterns ``masks`` (p, N) with answering ``sites``."""
        return self._fit(sites, self.alphas, decoder=True)

    @abstractmethod
    def _fit(self, sites: np.ndarray, targets: np.ndarray, decoder: bool) -> np.ndarray:
        """Operators (P, len(targets), n) from values at ``sites`` (P, n) to ``targets``."""

    def lost(self, available: Any) -> np.ndarray:
        mask = self._check_available(available)
        return np.zeros((*mask.shape[:-1], self.num_inputs), dtype=bool)

    lost.__doc__ = CodingScheme.lost.__doc__

    def _describe(self) -> dict[str, Any]:
        return {**super()._describe(), "points": self.points}


class NeRCC(_PointScheme):
    r"""Nested-regression coded computing: smoothing splines at both ends.

    The encoder fits :math:`u_{enc}` to :math:`(\alpha_k, x_k)` by minimising
    :math:`\frac1K \sum_k \|u(\alpha_k) - x_k\|^2 + \lambda_{enc} \int \|u''\|^2` and sends
    :math:`u_{enc}(\beta_n)` to worker n. The decoder fits :math:`u_{dec}` to the available
    :math:`(\beta_n, \tilde y_n)` by minimising
    :math:`\frac1{|F|} \sum_{n \in F} \|u(\beta_n) - \tilde y_n\|^2 + \lambda_{dec} \int \|u''\|^2`
    and estimates :math:`f(x_k) \approx u_{dec}(\alpha_k)`. Both are natural cubic smoothing
    splines, linear beyond their end knots.

    Each side's smoothing is given in one of two ways: a lambda, or an effective number of
    degrees of freedom, the trace of the smoother's hat matrix on its own sites, which falls from
    the number of sites (interpolation) to 2 (the least-squares line) as lambda grows (see
    :mod:`nercc.coding.gcv`). The decoder's lambda can also be chosen for every pattern from its
    outputs, by generalised cross-validation over a grid (``lam_dec="gcv"``):
    :math:`\mathrm{GCV}(\lambda) = \frac{1}{|F|} \|(I - A(\lambda)) Y\|_F^2 /
    (1 - \mathrm{df}(\lambda)/|F|)^2` with the answers' output coordinates as the columns of Y.

    Parameters
    ----------
    num_inputs : int
        K >= 1.
    num_workers : int
        N >= 2.
    lam_enc : float
        Encoder smoothing parameter >= 0; 0 interpolates. Finite and at most
        :func:`nercc.coding.lam_bound` of the alphas (about 1e145 for Chebyshev points).
    lam_dec : float or "gcv"
        Decoder smoothing parameter >= 0 (0 interpolates), at most
        :func:`nercc.coding.lam_bound` of all the betas (any subset of answering workers allows
        at least as much; 1e+141 for 100 Chebyshev workers, far past the point where the spline
        already is the least-squares line, about 1e13). ``"gcv"`` chooses it per pattern from
        ``lam_grid`` by GCV on the answers: decoding then depends on the outputs, so there is no
        decoder matrix per pattern (:meth:`decoder_matrix` refuses; :meth:`decode` and
        :meth:`decode_each` work).
    points : {"chebyshev", "uniform"}
        Layout of the alphas and betas (see :func:`nercc.coding.make_points`).
    df_enc : float, optional
        Instead of ``lam_enc`` (which must then stay 0): the encoder's effective degrees of
        freedom on the K alphas, > 2. ``lam_enc`` becomes :func:`nercc.coding.lam_for_df` of it;
        ``df_enc >= K`` interpolates (lam_enc = 0).
    df_dec : float, optional
        Instead of ``lam_dec`` (which must then stay 0): the decoder's effective degrees of
        freedom, > 2, on each pattern's answering betas: every pattern gets the lambda at which
        the smoother on its own sites has this df. A pattern with at most ``df_dec`` answering
        workers is interpolated (lambda 0).
    lam_grid : array_like of shape (L,), optional
        The lambdas GCV chooses from (finite, >= 0, at most the decoder's bound); only with
        ``lam_dec="gcv"``. :data:`nercc.coding.DEFAULT_LAM_GRID` by default: 0 and
        10^-16 .. 10^2, four per decade, which spans interpolation to the straight line for
        betas in [-1, 1] and up to a few hundred workers.

    Attributes
    ----------
    lam_enc : float
        The encoder's lambda (derived from ``df_enc`` when that is given).
    lam_dec : float, "gcv" or None
        The decoder's fixed lambda, ``"gcv"``, or None with ``df_dec`` (a lambda per pattern).
    df_enc, df_dec : float or None
        As given.
    lam_grid : ndarray or None
        The GCV grid, sorted and without duplicates (None unless ``lam_dec="gcv"``).
    """

    def __init__(
        self,
        num_inputs: int,
        num_workers: int,
        lam_enc: float = 0.0,
        lam_dec: float | str = 0.0,
        points: str = "chebyshev",
        df_enc: float | None = None,
        df_dec: float | None = None,
        lam_grid: Any = None,
    ) -> None:
        super().__init__(num_inputs, num_workers, points)
        # The largest lambdas the sites allow (see nercc.coding.splines): the encoder fits at the
        # alphas; a decoder fits at a subset of the betas, whose gaps are no smaller and whose
        # weight sum no larger than the full set's, so the full set bounds every pattern.
        ones = np.ones(num_workers)
        self._enc_bound = _lam_bound(self.alphas, ones[:num_inputs])
        self._dec_bound = _lam_bound(self.betas, ones)

        lam_enc = check_lam("lam_enc", lam_enc, self._enc_bound)
        self.df_enc = None if df_enc is None else check_df("df_enc", df_enc)
        if self.df_enc is not None:
            if lam_enc != 0:
                raise ValueError(
                    f"df_enc={self.df_enc:g} and lam_enc={lam_enc:g} both set the encoder's "
                    f"smoothing: give one of them (lam_enc must stay 0 with df_enc)"
                )
            lam_enc = self._lam_for_encoder_df(self.df_enc)
        self.lam_enc = lam_enc

        gcv = isinstance(lam_dec, str) and lam_dec == "gcv"
        if isinstance(lam_dec, str) and not gcv:
            raise ValueError(f"lam_dec must be a finite number >= 0 or 'gcv', got {lam_dec!r}")
        if not gcv:
            lam_dec = check_lam("lam_dec", lam_dec, self._dec_bound)
        self.df_dec = None if df_dec is None else check_df("df_dec", df_dec)
        if self.df_dec is not None and (gcv or lam_dec != 0):
            raise ValueError(
                f"df_dec={self.df_dec:g} and lam_dec={lam_dec!r} both set the decoder's "
                f"smoothing: give one of them (lam_dec must stay 0 with df_dec)"
            )
        self.lam_dec: float | str | None = (
            "gcv" if gcv else (None if self.df_dec is not None else float(lam_dec))
        )
        if lam_grid is not None and not gcv:
            raise ValueError(
                f"lam_grid is only used with lam_dec='gcv', got a lam_grid with lam_dec={lam_dec!r}"
            )
        self.lam_grid = self._check_grid(lam_grid) if gcv else None

    def _reset_caches(self) -> None:
        super()._reset_caches()
        self._spectra: OrderedDict[bytes, tuple[np.ndarray, np.ndarray | None]] = OrderedDict()
        self._spectra_bytes = 0
        self._encoder_df: float | None = None

    _CACHES = (*CodingScheme._CACHES, "_spectra", "_spectra_bytes", "_encoder_df")

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        if self.lam_grid is DEFAULT_LAM_GRID:  # kept by identity: repr and decoder_key test it
            state["lam_grid"] = _DEFAULT_GRID
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        if isinstance(self.lam_grid, str) and self.lam_grid == _DEFAULT_GRID:
            self.lam_grid = DEFAULT_LAM_GRID
        elif self.lam_grid is not None:
            self.lam_grid.flags.writeable = False

    # -- the smoothing of each side -----------------------------------------------------------
    def encoder_df(self) -> float:
        """Return the encoder's effective degrees of freedom: the trace of its smoother on the K
        alphas at ``lam_enc`` (K for interpolation, and for K <= 2 whatever the lambda)."""
        df = self._encoder_df
        if df is None:
            k = self.num_inputs
            if k < 3 or self.lam_enc == 0:
                df = float(k)
            else:
                d, _ = _spectrum(self.alphas[None], vectors=False)
                df = float(_df(d, np.array([[self.lam_enc]]))[0, 0])
            with self._lock:
                self._encoder_df = df
        return df

    def decoder_df(self, available: Any) -> np.ndarray | float:
        """Return the decoder's effective degrees of freedom for patterns: the trace of its
        smoother on each pattern's answering betas, at the lambda that pattern is decoded with.

        Not for ``lam_dec="gcv"`` (the lambda depends on the outputs): there
        :meth:`decode_each_with_params` reports the df used.

        Parameters
        ----------
        available : array_like of bool, shape (N,) or (P, N)

        Returns
        -------
        float or ndarray of shape (P,)
        """
        if self.lam_dec == "gcv":
            raise ValueError(
                "decoder_df: lam_dec='gcv' chooses each pattern's lambda from its outputs; "
                "decode_each_with_params reports the df used"
            )
        mask = self._check_available(available)
        rows = np.atleast_2d(mask)
        result = np.empty(rows.shape[0])
        for chosen, masks, sites in self._by_size(rows):
            result[chosen] = self._decoder_setting(masks, sites, None, with_df=True)[1]
        return float(result[0]) if mask.ndim == 1 else result

    def _lam_for_encoder_df(self, df: float) -> float:
        if self.num_inputs < 3 or df >= self.num_inputs:
            return 0.0
        d, _ = _spectrum(self.alphas[None], vectors=False)
        return float(_lam_for_df(d, np.array([[df]]), self._enc_bound)[0, 0])

    def _check_grid(self, lam_grid: Any) -> np.ndarray:
        if lam_grid is None:
            return DEFAULT_LAM_GRID
        if not isinstance(lam_grid, np.ndarray) and not isinstance(lam_grid, str):
            try:
                lam_grid = list(lam_grid)  # a sequence such as an OmegaConf ListConfig
            except TypeError:
                pass
        try:
            grid = np.asarray(lam_grid, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"lam_grid must be an array of numbers, got {lam_grid!r}") from None
        if grid.ndim != 1 or grid.size == 0:
            raise ValueError(f"lam_grid must be a non-empty 1-D array, got shape {grid.shape}")
        bad = ~(np.isfinite(grid) & (grid >= 0) & (grid <= self._dec_bound))
        if np.any(bad):
            raise ValueError(
                f"lam_grid must hold finite numbers in [0, {self._dec_bound:g}] (the decoder's "
                f"bound for these betas), got {grid[bad][0]!r}"
            )
        return _readonly(np.unique(grid))

    def _decoder_setting(
        self, masks: np.ndarray, sites: np.ndarray, answers: np.ndarray | None, with_df: bool
    ) -> tuple[np.ndarray | float, np.ndarray | None]:
        """The decoder's lambda for patterns of one size (``masks`` (p, N), ``sites`` (p, n),
        ``answers`` (p, n, m) for GCV), and with ``with_df`` its df per pattern (p,).

        Fixed lambdas come back as the number itself. Eigen-decompositions are made (cached per
        mask) only where they are needed: GCV, df_dec below n, or a df asked for."""
        p, n = sites.shape
        if n < 3:  # a constant or a line, whatever lambda: df = n
            lam = self.lam_dec if isinstance(self.lam_dec, float) else np.zeros(p)
            return lam, np.full(p, float(n)) if with_df else None
        if self.df_dec is not None and self.df_dec >= n:  # more df than sites: interpolate
            return np.zeros(p), np.full(p, float(n)) if with_df else None
        if isinstance(self.lam_dec, float) and not with_df:
            return self.lam_dec, None
        gcv = self.lam_dec == "gcv"
        lams = np.empty(p)
        dfs = np.empty(p) if with_df else None
        for start in range(0, p, SPECTRUM_CHUNK):
            part = slice(start, start + SPECTRUM_CHUNK)
            d, vectors = self._spectra_of(masks[part], sites[part], vectors=gcv)
            if gcv:
                grid = self.lam_grid
                energy = _energy(vectors, answers[part])
                scores = _gcv(d, energy, np.broadcast_to(grid, (len(d), grid.size)))
                lam = grid[_argmin(scores)]
            elif self.df_dec is not None:
                lam = _lam_for_df(d, np.full((len(d), 1), self.df_dec), self._dec_bound)[:, 0]
            else:
                lam = np.full(len(d), self.lam_dec)
            lams[part] = lam
            if dfs is not None:
                dfs[part] = _df(d, lam[:, None])[:, 0]
        if isinstance(self.lam_dec, float):
            return self.lam_dec, dfs
        return lams, dfs

    def _spectra_of(
        self, masks: np.ndarray, sites: np.ndarray, vectors: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Eigenvalues (p, n-2) and, with ``vectors``, eigenvectors (p, n, n-2) of the decoder's
        ``K = Q R^-1 Q^T`` for patterns of one size, from the per-mask cache or built in one
        batch (see :func:`nercc.coding.gcv._spectrum`)."""
        keys = [np.packbits(row).tobytes() for row in masks]
        found: dict[bytes, tuple[np.ndarray, np.ndarray | None]] = {}
        with self._lock:
            cache = self._spectra
            for key in keys:
                entry = cache.get(key)
                if entry is not None and (entry[1] is not None or not vectors):
                    found[key] = entry
                    cache.move_to_end(key)
        missing = {key: i for i, key in enumerate(keys) if key not in found}
        if missing:
            rows = list(missing.values())
            d, w = _spectrum(sites[rows], vectors)  # outside the lock: threads decompose at once
            with self._lock:
                for j, key in enumerate(missing):
                    entry = (d[j].copy(), None if w is None else w[j].copy())
                    found[key] = entry
                    self._remember(key, entry)
        d = np.stack([found[key][0] for key in keys])
        w = np.stack([found[key][1] for key in keys]) if vectors else None
        return d, w

    def _remember(self, key: bytes, entry: tuple[np.ndarray, np.ndarray | None]) -> None:
        """Cache one mask's decomposition (under the lock), dropping the least recently used
        beyond :data:`SPECTRUM_CACHE_BYTES`."""
        size = entry[0].nbytes + (0 if entry[1] is None else entry[1].nbytes)
        if size > SPECTRUM_CACHE_BYTES:
            return
        old = self._spectra.pop(key, None)
        if old is not None:
            self._spectra_bytes -= old[0].nbytes + (0 if old[1] is None else old[1].nbytes)
        self._spectra[key] = entry
        self._spectra_bytes += size
        while self._spectra_bytes > SPECTRUM_CACHE_BYTES:
            _, dropped = self._spectra.popitem(last=False)
            self._spectra_bytes -= dropped[0].nbytes + (
                0 if dropped[1] is None else dropped[1].nbytes
            )

    # -- fitting -------------------------------------------------------------------------------
    def _fit(self, sites: np.ndarray, targets: np.ndarray, decoder: bool) -> np.ndarray:
        lam = self.lam_dec if decoder else self.lam_enc
        return smoothing_spline_matrices(sites, targets, lam)

    def _fit_decoders(self, masks: np.ndarray, sites: np.ndarray) -> np.ndarray:
        if self.lam_dec == "gcv":
            raise ValueError(
                "NeRCC(lam_dec='gcv') chooses each pattern's decoder from its outputs, so it has "
                "no decoder matrix per pattern: use decode, decode_each or decode_each_with_params"
            )
        lam, _ = self._decoder_setting(masks, sites, None, with_df=False)
        return smoothing_spline_matrices(sites, self.alphas, lam)

    def _decode(self, outputs: Any, shape: tuple[int, ...], mask: np.ndarray) -> Any:
        if self.lam_dec != "gcv":
            return super()._decode(outputs, shape, mask)
        # Data-dependent: every pattern chooses its lambda from these outputs.
        rows = np.atleast_2d(mask)
        count = rows.shape[0]
        if _is_tensor(outputs):
            stacked = outputs.unsqueeze(0).expand(count, *shape)
        else:
            stacked = np.broadcast_to(outputs, (count, *shape))
        estimates, _ = self._decode_each(stacked.reshape(count, self.num_workers, -1), rows)
        estimates = estimates.reshape((count, self.num_inputs, *shape[1:]))
        return estimates[0] if mask.ndim == 1 else estimates

    def _decode_each(
        self, outputs: Any, available: np.ndarray, with_params: bool = False
    ) -> tuple[Any, dict[str, np.ndarray]]:
        # Fit the decoding splines to the outputs directly: one banded solve with M right-hand
        # sides per pattern, cheaper than building K x N decoders when M is small (logits).
        values = _to_float64(outputs)
        count = values.shape[0]
        estimates = np.empty((count, self.num_inputs, values.shape[2]))
        lam_dec = np.empty(count)
        df_dec = np.empty(count)
        for chosen, masks, sites in self._by_size(available):
            answers = values[chosen][masks].reshape(*sites.shape, -1)
            lam, df = self._decoder_setting(masks, sites, answers, with_params)
            estimates[chosen] = smoothing_spline_values(sites, answers, self.alphas, lam)
            if with_params:
                lam_dec[chosen] = lam
                df_dec[chosen] = df
        params: dict[str, np.ndarray] = {}
        if with_params:
            params = {
                "lam_enc": np.full(count, self.lam_enc),
                "lam_dec": lam_dec,
                "df_enc": np.full(count, self.encoder_df()),
                "df_dec": df_dec,
            }
        return _like(estimates, outputs), params

    # -- description --------------------------------------------------------------------------
    def params(self) -> dict[str, float]:
        """Return the settings that fix the scheme, as plain floats: ``lam_enc`` or ``df_enc``,
        and ``lam_dec`` or ``df_dec``, whichever was given (``NeRCC(K, N, points=...,
        **params())`` builds the same scheme). With ``lam_dec="gcv"`` the decoder's lambda is
        chosen per pattern, not a number, and is left out: :meth:`decode_each_with_params`
        reports the lambdas and dfs used; :meth:`encoder_df` gives the encoder's df."""
        result = {"lam_enc": self.lam_enc} if self.df_enc is None else {"df_enc": self.df_enc}
        if self.df_dec is not None:
            result["df_dec"] = self.df_dec
        elif self.lam_dec != "gcv":
            result["lam_dec"] = self.lam_dec
        return result

    def decoder_key(self) -> tuple[Any, ...]:
        # The decoder does not depend on the encoder's smoothing, unless it is chosen from the
        # outputs (GCV): the outputs of other encoders decoded side by side would then join its
        # choice, so the key keeps the encoder's setting and such schemes decode alone.
        items = super().decoder_key()
        if self.lam_dec == "gcv":
            return items
        return tuple(item for item in items if item[0:1] not in (("lam_enc",), ("df_enc",)))

    decoder_key.__doc__ = CodingScheme.decoder_key.__doc__

    def _describe(self) -> dict[str, Any]:
        result = {**super()._describe()}
        if self.df_enc is None:
            result["lam_enc"] = self.lam_enc
        else:
            result["df_enc"] = self.df_enc
        if self.df_dec is not None:
            result["df_dec"] = self.df_dec
        else:
            result["lam_dec"] = self.lam_dec
        if self.lam_dec == "gcv":
            default = self.lam_grid is DEFAULT_LAM_GRID
            result["lam_grid"] = None if default else tuple(self.lam_grid.tolist())
        return result


class BACC(_PointScheme):
    """Berrut approximate coded computing: Berrut's interpolant at both ends.

    The encoder interpolates :math:`(\\alpha_k, x_k)` and evaluates at the betas; the decoder
    interpolates the available :math:`(\\beta_n, \\tilde y_n)`, re-indexed in ascending order so
    that the signs alternate among the available workers, and evaluates at the alphas.

    Parameters
    ----------
    num_inputs : int
        K >= 1.
    num_workers : int
        N >= 2.
    points : {"chebyshev", "uniform"}
        Layout of the alphas and betas.
    """

    def __init__(self, num_inputs: int, num_workers: int, points: str = "chebyshev") -> None:
        super().__init__(num_inputs, num_workers, points)

    def _fit(self, sites: np.ndarray, targets: np.ndarray, decoder: bool) -> np.ndarray:
        return berrut_matrices(sites, targets)


class Uncoded(CodingScheme):
    """No coding: N = K workers, worker k computes input k; a straggler's input is lost.

    Parameters
    ----------
    num_inputs : int
        K >= 1.
    """

    def __init__(self, num_inputs: int) -> None:
        num_inputs = check_int("num_inputs", num_inputs, 1)
        super().__init__(num_inputs, num_inputs)

    def _build_encoder(self) -> np.ndarray:
        return np.eye(self.num_inputs)

    def _build_decoders(self, available: np.ndarray) -> np.ndarray:
        return np.eye(self.num_inputs) * available[:, None, :]

    def _describe(self) -> dict[str, Any]:
        return {"num_inputs": self.num_inputs}


class Replication(CodingScheme):
    """Each input sent to ``replicas`` workers: N = r K, worker n computes input ``n % K``.

    An input's estimate is the mean of its available replicas' outputs; it is lost (all zeros)
    when every replica straggles.

    Parameters
    ----------
    num_inputs : int
        K >= 1.
    replicas : int
        r >= 1.
    """

    def __init__(self, num_inputs: int, replicas: int) -> None:
        num_inputs = check_int("num_inputs", num_inputs, 1)
        self.replicas = check_int("replicas", replicas, 1)
        super().__init__(num_inputs, num_inputs * self.replicas)

    def _build_encoder(self) -> np.ndarray:
        return np.tile(np.eye(self.num_inputs), (self.replicas, 1))

    def _build_decoders(self, available: np.ndarray) -> np.ndarray:
        hits = self.encoder_matrix().T * available[:, None, :]  # (P, K, N)
        counts = hits.sum(axis=2, keepdims=True)
        return np.divide(hits, counts, out=np.zeros_like(hits), where=counts > 0)

    def _describe(self) -> dict[str, Any]:
        return {"num_inputs": self.num_inputs, "replicas": self.replicas}
