"""The contract of every coding scheme: a linear code, an encoder matrix and one decoder matrix per
availability pattern.

With K inputs stacked along the first axis as ``X`` (K, ...), worker ``n`` receives row ``n`` of
``E @ X`` and returns ``f`` of it; from the outputs ``Y`` (N, ...) of the available workers the
estimate of ``f(X)`` is ``D_F @ Y``, where ``D_F`` (K, N) has zero columns at the stragglers. The
encoder matrix is built once; decoder matrices are cached per pattern, with their torch copies per
dtype and device (:class:`~nercc.coding.decoder_cache.DecoderCache`). A scheme may be shared by
threads; its caches are not pickled (a copy or an unpickled scheme starts with empty caches).

NeRCC and BACC decode any pattern with at least one answer, but with fewer answers than inputs the
estimates are underdetermined (a fit through fewer points than it must reproduce): their public
decoding methods then warn once per call with :class:`FewAnswersWarning` (Uncoded and Replication
never do: they report the inputs they lose through :meth:`CodingScheme.lost` instead).

A scheme that screens its answers (:attr:`CodingScheme.screens`: RobustNeRCC, RobustBACC, in
:mod:`nercc.coding.robust`) drops those it judges adversarial before decoding, so that its
estimates depend on the outputs beyond ``D_F @ Y``; :meth:`CodingScheme.decode_each_flagged` says
which answers it dropped (none for every other scheme).

Each scheme class declares its tunable parameters and properties as class-level data
(:attr:`CodingScheme.tunables`, :attr:`CodingScheme.loses_inputs`, :attr:`CodingScheme.reported`,
:attr:`CodingScheme.screens`; see :mod:`nercc.coding.params`).
"""

from __future__ import annotations

import threading
import warnings
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from nercc.coding import arrays
from nercc.coding.decoder_cache import DecoderCache
from nercc.coding.params import Tunable

__all__ = ["CodingScheme", "FewAnswersWarning"]


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


class CodingScheme(ABC):
    """A linear code for K inputs over N workers.

    Subclasses build the encoder matrix and the decoder matrices of a batch of patterns; this class
    validates arguments, caches decoders and applies both to numpy arrays and torch tensors.

    Every method may be called from several threads at once: the caches are only read and changed
    under a lock (the decoders' under that of the scheme's :class:`DecoderCache`, the encoder's
    under the scheme's own), while matrices are built outside it (two threads missing the same
    pattern may both build it; the first one cached is kept and returned to both).

    A scheme class declares what evaluation, tuning, reports, serving and the config checks need
    to know of it, as class-level data: :attr:`tunables` (its tunable parameters, looked up with
    :meth:`tunable`), :attr:`loses_inputs` and :attr:`reported`.
    """

    #: The scheme's tunable parameters (keyword arguments of its constructor), in order: what
    #: each accepts, its side, default grid, alternatives and choices (see :class:`Tunable`).
    tunables: ClassVar[tuple[Tunable, ...]] = ()

    #: Whether an input can be lost: its estimate all zeros when the workers that compute it
    #: straggle (Uncoded, Replication; :meth:`lost`). Such a scheme waits until every input has an
    #: answer; a code (NeRCC, BACC) estimates every input from any answer, and waits for a quorum.
    loses_inputs: ClassVar[bool] = False

    #: The parameters :meth:`decode_each_with_params` reports for every pattern, in its order:
    #: the names of :meth:`params` for a scheme whose parameters are fixed; NeRCC reports
    #: ``lam_enc``, ``lam_dec``, ``df_enc`` and ``df_dec`` whichever were given.
    reported: ClassVar[tuple[str, ...]] = ()

    #: Whether decoding may drop answers it judges adversarial (RobustNeRCC, RobustBACC): every
    #: decoding method then decodes each pattern from the answers left, and
    #: :meth:`decode_each_flagged` says which it dropped. False: every answer is trusted.
    screens: ClassVar[bool] = False

    #: The workers that run another model than the classifier on their coded input (ParM's
    #: parity worker), and that model's checkpoint (:attr:`parity_model`): none for a code whose
    #: workers all compute f.
    parity_workers: tuple[int, ...] = ()

    #: The checkpoint of the model :attr:`parity_workers` run (None: no such worker).
    parity_model: str | None = None

    @classmethod
    def tunable(cls, name: str) -> Tunable:
        """Return the declaration of the tunable parameter ``name``.

        Parameters
        ----------
        name : str

        Returns
        -------
        Tunable

        Raises
        ------
        ValueError
            Where the scheme has no such parameter (the message lists those it has).
        """
        for tunable in cls.tunables:
            if tunable.name == name:
                return tunable
        known = ", ".join(t.name for t in cls.tunables) or "none"
        raise ValueError(f"{name!r} is not a parameter of {cls.__name__} (its parameters: {known})")

    @classmethod
    def settings(cls) -> tuple[str, ...]:
        """Return the scheme's settings in order: one per tunable parameter, named by the
        parameter it is given by when it has alternatives (NeRCC: ``lam_enc``, ``lam_dec``)."""
        return tuple(dict.fromkeys(t.setting for t in cls.tunables))

    def auto_candidates(self, name: str) -> list[float]:
        """Return the values a calibration (``name="auto"``) tries for this scheme's code.

        The declared :attr:`Tunable.auto_candidates` by default; a scheme whose candidates depend
        on its code computes them (NeRCC's ``lam_enc``).

        Parameters
        ----------
        name : str
            A parameter declared with ``auto=True``.

        Returns
        -------
        list of float
            Increasing.

        Raises
        ------
        ValueError
            Where ``name`` is not a parameter of the scheme or cannot be calibrated.
        """
        tunable = self.tunable(name)
        if not tunable.auto:
            raise ValueError(f"{name} of {type(self).__name__} cannot be calibrated (auto)")
        return sorted({float(v) for v in tunable.auto_candidates})

    def encoder_params(self) -> dict[str, float]:
        """Return the reported parameters (:attr:`reported`) that the encoder fixes, with the
        values :meth:`decode_each_with_params` reports for them (the same for every pattern).

        Schemes that share a decoder (equal :meth:`decoder_key`) decode side by side and report
        the same decoder parameters; these are the ones in which they can still differ.
        """
        fixed = self.params()
        return {
            name: float(fixed[name])
            for name in self.reported
            if name in fixed and self.tunable(name).side == "encoder"
        }

    def __init__(self, num_inputs: int, num_workers: int) -> None:
        self.num_inputs = num_inputs
        self.num_workers = num_workers
        self._reset_caches()

    @property
    def decoder_cache(self) -> DecoderCache:
        """The scheme's cache of decoder matrices and their torch copies, per pattern (for
        inspection: the scheme fills it)."""
        return self._decoders

    def _reset_caches(self) -> None:
        """Empty caches and a new lock (at construction and after unpickling or copying)."""
        self._lock = threading.RLock()
        self._encoder: np.ndarray | None = None
        self._torch_cache: dict[tuple[Any, Any], Any] = {}  # the encoder's torch copies
        self._decoders = DecoderCache()  # the decoders and their torch copies, per pattern

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
                    self._encoder = arrays.readonly(self._build_encoder())
                encoder = self._encoder
        return encoder

    @property
    def mixes_inputs(self) -> bool:
        """Whether some worker computes on a mix of inputs (a row of ``E`` with two nonzeros): a
        curve through the group's inputs (NeRCC, BACC) or a sum (ParM). Only for such a scheme
        do the order and grouping of the inputs matter (:mod:`nercc.coding.order`); uncoded and
        replication send each worker one input as it is."""
        return bool((np.count_nonzero(self.encoder_matrix(), axis=1) > 1).any())

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
        return self._decoders.entries(mask[None], self._build_decoders)[0].matrix

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
        inputs = arrays.as_values(inputs, "inputs")
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
        if self._decodes_by_outputs():
            return self._decode_stacked(outputs, shape, mask)
        decoders = self._decoder_operand(mask, outputs)  # (K, N) or (P, K, N)
        flat = outputs if len(shape) == 2 else outputs.reshape(self.num_workers, -1)
        if not arrays.all_finite(flat):
            flat = arrays.zero_stragglers(flat, mask)  # (N, M) or (P, N, M)
        estimates = decoders @ flat  # (K, M) or (P, K, M)
        if mask.ndim == 1:
            if len(shape) == 2:
                return estimates
            return estimates.reshape((self.num_inputs, *shape[1:]))
        return estimates.reshape((mask.shape[0], self.num_inputs, *shape[1:]))

    def _decodes_by_outputs(self) -> bool:
        """Whether what a pattern is decoded with depends on the outputs, not only on the
        pattern (a scheme that screens; NeRCC choosing lam_dec by GCV): :meth:`decode` then
        decodes like :meth:`decode_each`, with no decoder matrix of its own."""
        return self.screens

    def _decode_stacked(self, outputs: Any, shape: tuple[int, ...], mask: np.ndarray) -> Any:
        """:meth:`_decode` of a scheme that decodes by its outputs: the one set of outputs
        stacked once per pattern and decoded like :meth:`decode_each`."""
        rows = np.atleast_2d(mask)
        count = rows.shape[0]
        if arrays.is_tensor(outputs):
            stacked = outputs.unsqueeze(0).expand(count, *shape)
        else:
            stacked = np.broadcast_to(outputs, (count, *shape))
        flat = stacked.reshape(count, self.num_workers, -1)
        estimates, _, _ = self._decode_each_flagged(flat, rows, False)
        estimates = estimates.reshape((count, self.num_inputs, *shape[1:]))
        return estimates[0] if mask.ndim == 1 else estimates

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
        return self._decode_each_checked(outputs, available, with_params=True)[:2]

    def decode_each_flagged(
        self, outputs: Any, available: Any
    ) -> tuple[Any, dict[str, np.ndarray], np.ndarray]:
        """Decode like :meth:`decode_each_with_params` and say which answers were dropped.

        A scheme that screens its answers (:attr:`screens`: RobustNeRCC, RobustBACC) drops those
        it judges adversarial and decodes each pattern from the rest; every other scheme trusts
        every answer and flags none. The estimates and parameters are those of
        :meth:`decode_each_with_params` (which screens too).

        Parameters
        ----------
        outputs : array_like or torch.Tensor of shape (P, N, ...)
        available : array_like of bool, shape (P, N)

        Returns
        -------
        estimates
            As :meth:`decode_each`: the type, dtype and device of ``outputs``, shape (P, K, ...).
        params : dict of str to ndarray of shape (P,), float64
            As :meth:`decode_each_with_params`.
        flagged : ndarray of bool, shape (P, N)
            True at the answers the decoder dropped (always within ``available``); all False for
            a scheme that does not screen.

        Warns
        -----
        FewAnswersWarning
            As :meth:`decode`: once per call when some pattern has fewer than K answers.
        """
        return self._decode_each_checked(outputs, available, with_params=True)

    def _decode_each_checked(
        self, outputs: Any, available: Any, with_params: bool
    ) -> tuple[Any, dict[str, np.ndarray], np.ndarray]:
        """The checked body of :meth:`decode_each`, :meth:`decode_each_with_params` and
        :meth:`decode_each_flagged`."""
        outputs = arrays.as_values(outputs, "outputs")
        mask = self._check_available(available)
        shape = tuple(outputs.shape)
        if mask.ndim != 2 or len(shape) < 2 or shape[:2] != mask.shape:
            raise ValueError(
                f"outputs must have shape (P, {self.num_workers}, ...) matching available "
                f"{mask.shape}, got shape {shape}"
            )
        self._warn_few_answers(mask)
        flat = outputs.reshape(shape[0], self.num_workers, -1)
        estimates, params, flagged = self._decode_each_flagged(flat, mask, with_params)
        return estimates.reshape((shape[0], self.num_inputs, *shape[2:])), params, flagged

    def _decode_each_flagged(
        self, outputs: Any, available: np.ndarray, with_params: bool
    ) -> tuple[Any, dict[str, np.ndarray], np.ndarray]:
        """:meth:`_decode_each` and the answers dropped (P, N): none, unless a screening scheme
        overrides this."""
        estimates, params = self._decode_each(outputs, available, with_params)
        return estimates, params, np.zeros(available.shape, dtype=bool)

    def _decode_each(
        self, outputs: Any, available: np.ndarray, with_params: bool = False
    ) -> tuple[Any, dict[str, np.ndarray]]:
        """(P, N, M) outputs and valid patterns (P, N) to (P, K, M) through the decoders, and the
        parameters per pattern when asked (the fixed :meth:`params`, broadcast)."""
        if not arrays.all_finite(outputs):
            outputs = arrays.zero_stragglers(outputs, available)
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
        outputs = arrays.as_values(outputs, "outputs")
        shape = tuple(outputs.shape)
        if len(shape) == 0 or shape[0] != self.num_workers:
            raise ValueError(
                f"outputs must have first axis num_workers={self.num_workers}, got shape {shape}"
            )
        return outputs, shape

    def _check_available(self, available: Any) -> np.ndarray:
        if arrays.is_tensor(available):
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
        """Decoders (P, K, N) of valid patterns (P, N), stacked (from the decoder cache)."""
        return self._decoders.matrices(masks, self._build_decoders)

    def _decoder_operand(self, masks: np.ndarray, like: Any) -> Any:
        """The decoders of valid patterns (N,) or (P, N), (K, N) or (P, K, N), in the type, dtype
        and device of ``like`` (see :meth:`DecoderCache.operand`)."""
        return self._decoders.operand(masks, like, self._build_decoders)

    def _encoder_operand(self, like: Any) -> Any:
        """The encoder in the type, dtype and device of ``like``; its torch copies are kept per
        (dtype, device)."""
        encoder = self.encoder_matrix()
        if not arrays.is_tensor(like):
            return arrays.like(encoder, like)
        key = (like.dtype, like.device)
        with self._lock:
            tensor = self._torch_cache.get(key)
        if tensor is None:
            tensor = arrays.to_torch(encoder, like)
            with self._lock:
                tensor = self._torch_cache.setdefault(key, tensor)
        return tensor

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self._describe().items())
        return f"{type(self).__name__}({fields})"

    def _describe(self) -> dict[str, Any]:
        return {"num_inputs": self.num_inputs, "num_workers": self.num_workers}
