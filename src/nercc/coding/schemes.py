"""Coding schemes: an encoder matrix and one decoder matrix per availability pattern.

Every scheme is linear. With K inputs stacked along the first axis as ``X`` (K, ...), worker ``n``
receives row ``n`` of ``E @ X`` and returns ``f`` of it; from the outputs ``Y`` (N, ...) of the
available workers the estimate of ``f(X)`` is ``D_F @ Y``, where ``D_F`` (K, N) has zero columns at
the stragglers. The encoder matrix is built once; decoder matrices are cached per pattern.

- :class:`NeRCC`: smoothing splines for both regressions (``lam_enc``, ``lam_dec``).
- :class:`BACC`: Berrut's interpolant for both.
- :class:`Uncoded`: N = K, each worker gets one input; a straggler's input is lost.
- :class:`Replication`: N = r K; an input is recovered when any of its r replicas answers.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import Any

import numpy as np

from nercc.coding._validation import check_int, check_lam
from nercc.coding.berrut import berrut_matrices
from nercc.coding.points import LAYOUTS, make_points
from nercc.coding.splines import _lam_bound, smoothing_spline_matrices, smoothing_spline_values

__all__ = ["BACC", "CodingScheme", "NeRCC", "Replication", "Uncoded"]

#: How many decoder matrices a scheme keeps (least recently used are dropped first).
DECODER_CACHE_SIZE = 16384


def _is_tensor(value: Any) -> bool:
    torch = sys.modules.get("torch")  # a tensor can only exist once torch is imported
    return torch is not None and isinstance(value, torch.Tensor)


def _to_float64(values: Any) -> np.ndarray:
    """A numpy float64 copy of an array or tensor (on the CPU)."""
    if _is_tensor(values):
        values = values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64)


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

        return bool(torch.isfinite(values).all())
    return bool(np.isfinite(values).all())


def _readonly(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


class CodingScheme(ABC):
    """A linear code for K inputs over N workers.

    Subclasses build the encoder matrix and the decoder matrices of a batch of patterns; this class
    validates arguments, caches decoders and applies both to numpy arrays and torch tensors.
    """

    def __init__(self, num_inputs: int, num_workers: int) -> None:
        self.num_inputs = num_inputs
        self.num_workers = num_workers
        self._encoder: np.ndarray | None = None
        self._decoders: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._torch_cache: dict[tuple[Any, Any], Any] = {}

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
        if self._encoder is None:
            self._encoder = _readonly(self._build_encoder())
        return self._encoder

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
        return self._cached(mask[None])[0]

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
        encoder = self._as_operand(self.encoder_matrix(), inputs)
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
        """
        outputs = _as_values(outputs, "outputs")
        shape = tuple(outputs.shape)
        if len(shape) == 0 or shape[0] != self.num_workers:
            raise ValueError(
                f"outputs must have first axis num_workers={self.num_workers}, got shape {shape}"
            )
        mask = self._check_available(available)
        decoders = self._as_operand(self._lookup(np.atleast_2d(mask)), outputs)
        flat = outputs.reshape(self.num_workers, -1)
        if not _all_finite(flat):
            flat = _zero_stragglers(flat, np.atleast_2d(mask))  # (P, N, M)
        estimates = decoders @ flat  # (P, K, M)
        if mask.ndim == 1:
            return estimates[0].reshape((self.num_inputs, *shape[1:]))
        return estimates.reshape((mask.shape[0], self.num_inputs, *shape[1:]))

    def decode_each(self, outputs: Any, available: Any) -> Any:
        """Decode P sets of outputs, each with its own pattern: ``D_{F_p} @ Y_p`` for every p.

        This is what an evaluation needs (every group of K inputs meets its own stragglers), and
        it can be computed without forming the decoder matrices.

        Parameters
        ----------
        outputs : array_like or torch.Tensor of shape (P, N, ...)
            The workers' outputs of P groups; rows of stragglers are ignored.
        available : array_like of bool, shape (P, N)

        Returns
        -------
        Same type, dtype and device as ``outputs``, shape (P, K, ...).
        """
        outputs = _as_values(outputs, "outputs")
        mask = self._check_available(available)
        shape = tuple(outputs.shape)
        if mask.ndim != 2 or len(shape) < 2 or shape[:2] != mask.shape:
            raise ValueError(
                f"outputs must have shape (P, {self.num_workers}, ...) matching available "
                f"{mask.shape}, got shape {shape}"
            )
        flat = outputs.reshape(shape[0], self.num_workers, -1)
        estimates = self._decode_each(flat, mask)
        return estimates.reshape((shape[0], self.num_inputs, *shape[2:]))

    def _decode_each(self, outputs: Any, available: np.ndarray) -> Any:
        """(P, N, M) outputs and valid patterns (P, N) to (P, K, M): through the decoders."""
        if not _all_finite(outputs):
            outputs = _zero_stragglers(outputs, available)
        return self._as_operand(self._lookup(available), outputs) @ outputs

    # -- description --------------------------------------------------------------------------
    def params(self) -> dict[str, float]:
        """Return the scheme's tunable parameters by name (empty for a scheme without any).

        NeRCC gives ``{"lam_enc": ..., "lam_dec": ...}``. Evaluation, tuning and result tables
        read parameters through this, never by a scheme's attribute names.
        """
        return {}

    def decoder_key(self) -> tuple[Any, ...]:
        """Return a key that is equal for two schemes exactly when they decode every pattern with
        the same matrix, so that outputs of several encoders can be decoded in one pass."""
        return (type(self).__name__, *sorted(self._describe().items()))

    # -- internals ----------------------------------------------------------------------------
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
        empty = ~mask.any(axis=-1)
        if np.any(empty):
            where = "" if mask.ndim == 1 else f" (pattern {int(np.argmax(empty))})"
            raise ValueError(f"available must mark at least one worker, got none{where}")
        return mask

    def _lookup(self, masks: np.ndarray) -> np.ndarray:
        """Decoders (P, K, N) of valid patterns (P, N), stacked."""
        return np.stack(self._cached(masks))

    def _cached(self, masks: np.ndarray) -> list[np.ndarray]:
        """The cached decoders of valid patterns, building the missing ones in one batch."""
        keys = [np.packbits(row).tobytes() for row in masks]
        decoders = self._decoders
        missing = {k: row for k, row in zip(keys, masks, strict=True) if k not in decoders}
        if missing:
            built = self._build_decoders(np.stack(list(missing.values())))
            for key, decoder in zip(missing, built, strict=True):
                self._decoders[key] = _readonly(decoder)
        cache = self._decoders
        found = [cache[key] for key in keys]
        for key in keys:
            cache.move_to_end(key)
        while len(cache) > DECODER_CACHE_SIZE:
            cache.popitem(last=False)
        return found

    def _as_operand(self, matrix: np.ndarray, like: Any) -> Any:
        """The matrix in the type, dtype and device of ``like``; the encoder's torch copies are
        kept per (dtype, device)."""
        if matrix is self._encoder and _is_tensor(like):
            key = (like.dtype, like.device)
            if key not in self._torch_cache:
                self._torch_cache[key] = _like(np.array(matrix), like)
            return self._torch_cache[key]
        return _like(matrix, like)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self._describe().items())
        return f"{type(self).__name__}({fields})"

    def _describe(self) -> dict[str, Any]:
        return {"num_inputs": self.num_inputs, "num_workers": self.num_workers}


class _PointScheme(CodingScheme, ABC):
    """A scheme that places inputs at ``alphas`` and workers at ``betas`` (NeRCC, BACC)."""

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
            fitted = self._fit(sites, self.alphas, decoder=True)  # (p, K, count)
            rows, cols = np.nonzero(masks)
            block = decoders[chosen]
            block[rows, :, cols] = fitted.transpose(0, 2, 1).reshape(-1, self.num_inputs)
            decoders[chosen] = block
        return decoders

    def _build_encoder(self) -> np.ndarray:
        return self._fit(self.alphas[None], self.betas, decoder=False)[0]

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

    Parameters
    ----------
    num_inputs : int
        K >= 1.
    num_workers : int
        N >= 2.
    lam_enc, lam_dec : float
        Smoothing parameters >= 0; 0 interpolates. Each must be finite and at most
        :func:`nercc.coding.lam_bound` of its sites: the alphas for ``lam_enc``, all the betas for
        ``lam_dec`` (any subset of answering workers allows at least as much). These bounds lie
        around 1e140 (1e+141 for the decoder over 100 Chebyshev workers), far past the point
        where the spline already is the least-squares line (about 1e13).
    points : {"chebyshev", "uniform"}
        Layout of the alphas and betas (see :func:`nercc.coding.make_points`).
    """

    def __init__(
        self,
        num_inputs: int,
        num_workers: int,
        lam_enc: float = 0.0,
        lam_dec: float = 0.0,
        points: str = "chebyshev",
    ) -> None:
        super().__init__(num_inputs, num_workers, points)
        # The largest lambdas the sites allow (see nercc.coding.splines): the encoder fits at the
        # alphas; a decoder fits at a subset of the betas, whose gaps are no smaller and whose
        # weight sum no larger than the full set's, so the full set bounds every pattern.
        ones = np.ones(num_workers)
        self.lam_enc = check_lam("lam_enc", lam_enc, _lam_bound(self.alphas, ones[:num_inputs]))
        self.lam_dec = check_lam("lam_dec", lam_dec, _lam_bound(self.betas, ones))

    def _fit(self, sites: np.ndarray, targets: np.ndarray, decoder: bool) -> np.ndarray:
        lam = self.lam_dec if decoder else self.lam_enc
        return smoothing_spline_matrices(sites, targets, lam)

    def _decode_each(self, outputs: Any, available: np.ndarray) -> Any:
        # Fit the decoding splines to the outputs directly: one banded solve with M right-hand
        # sides per pattern, cheaper than building K x N decoders when M is small (logits).
        values = _to_float64(outputs)
        estimates = np.empty((values.shape[0], self.num_inputs, values.shape[2]))
        for chosen, masks, sites in self._by_size(available):
            answers = values[chosen][masks].reshape(*sites.shape, -1)
            estimates[chosen] = smoothing_spline_values(sites, answers, self.alphas, self.lam_dec)
        return _like(estimates, outputs)

    def params(self) -> dict[str, float]:
        return {"lam_enc": self.lam_enc, "lam_dec": self.lam_dec}

    params.__doc__ = CodingScheme.params.__doc__

    def decoder_key(self) -> tuple[Any, ...]:
        # The decoder does not depend on the encoder's lambda.
        return tuple(item for item in super().decoder_key() if item[0:1] != ("lam_enc",))

    decoder_key.__doc__ = CodingScheme.decoder_key.__doc__

    def _describe(self) -> dict[str, Any]:
        return {**super()._describe(), "lam_enc": self.lam_enc, "lam_dec": self.lam_dec}


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
