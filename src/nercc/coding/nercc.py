"""NeRCC: nested-regression coded computing, smoothing splines at both ends.

The scheme (:class:`NeRCC`) and the machinery of its smoothing: each side's lambda given as a
number or as effective degrees of freedom, the decoder's lambda chosen per pattern by GCV, and the
eigen-decompositions both need, cached per mask
(:class:`~nercc.coding.spectrum_cache.SpectrumCache`; the spectral helpers are those of
:mod:`nercc.coding.gcv`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from nercc.coding import arrays
from nercc.coding._validation import check_df, check_lam
from nercc.coding.base import CodingScheme
from nercc.coding.gcv import (
    DEFAULT_LAM_GRID,
    argmin_rows,
    lam_for_df,
    spectrum,
    spectrum_df,
    spectrum_energy,
    spectrum_gcv,
    spectrum_lam_for_df,
)
from nercc.coding.params import Choice, Tunable
from nercc.coding.point_scheme import PointScheme
from nercc.coding.spectrum_cache import SpectrumCache
from nercc.coding.splines import (
    lam_bound,
    smoothing_spline_df,
    smoothing_spline_matrices,
    smoothing_spline_values,
)

__all__ = ["NeRCC"]

#: At most this many patterns are eigen-decomposed in one batch (bounds the temporary memory).
SPECTRUM_CHUNK = 256

#: Stands for :data:`DEFAULT_LAM_GRID` in a pickled NeRCC (which keeps it by identity).
_DEFAULT_GRID = "default"


def _log_grid(low: float, high: float, num: int) -> tuple[float, ...]:
    """0 followed by ``num`` log-spaced values from ``low`` to ``high`` (both included): the
    values of ``${nercc_log_grid:low,high,num}``."""
    return (0.0, *(float(v) for v in np.geomspace(low, high, num)))


class NeRCC(PointScheme):
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

    #: Candidate encoder smoothness of a calibration (``lam_enc="auto"``), as fractions of K
    #: degrees of freedom (1: interpolation): the tuned tables of the default models lie between
    #: df = K and df = 0.75 K (see :meth:`auto_candidates`).
    AUTO_DF_FRACTIONS: ClassVar[tuple[float, ...]] = (1.0, 0.995, 0.975, 0.92, 0.75, 0.55)

    tunables: ClassVar[tuple[Tunable, ...]] = (
        Tunable(
            name="lam_enc",
            side="encoder",
            meaning="the encoder's smoothing parameter on its K alphas (0 interpolates)",
            log=True,
            search=(1e-12, 1e-3),
            grid=_log_grid(1e-10, 1e-3, 8),
            auto=True,
            per_pattern="never",
        ),
        Tunable(
            name="lam_dec",
            side="decoder",
            meaning="the decoder's smoothing parameter on each pattern's answering betas "
            "(0 interpolates)",
            log=True,
            search=(1e-12, 1e-5),
            grid=_log_grid(1e-11, 1e-4, 8),
            choices=(
                Choice(
                    "gcv",
                    "chosen per pattern by cross-validation on the answers",
                    in_grid=True,
                    from_outputs=True,
                ),
            ),
            auto=True,
            auto_candidates=(0.0, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3),
            per_pattern="unless_fixed",
        ),
        Tunable(
            name="df_enc",
            side="encoder",
            meaning="the encoder's effective degrees of freedom on its K alphas: 2 is the "
            "straight line, K interpolates",
            low=2.0,
            low_open=True,
            high="num_inputs",
            alternative_of="lam_enc",
            per_pattern="never",
        ),
        Tunable(
            name="df_dec",
            side="decoder",
            meaning="the decoder's effective degrees of freedom on each pattern's answering "
            "workers: a pattern with at most df_dec answers is interpolated",
            low=2.0,
            low_open=True,
            high="num_workers",
            alternative_of="lam_dec",
            per_pattern="always",
        ),
    )
    reported: ClassVar[tuple[str, ...]] = ("lam_enc", "lam_dec", "df_enc", "df_dec")

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
        self._enc_bound = lam_bound(self.alphas)
        self._dec_bound = lam_bound(self.betas)

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
        self._spectra = SpectrumCache()  # eigen-decompositions per mask (GCV, df_dec)
        self._encoder_df: float | None = None

    _CACHES = (*CodingScheme._CACHES, "_spectra", "_encoder_df")

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

    @property
    def spectrum_cache(self) -> SpectrumCache:
        """The scheme's cache of eigen-decompositions per mask (for inspection; the scheme fills
        it)."""
        return self._spectra

    def auto_candidates(self, name: str) -> list[float]:
        """Return the values a calibration (``name="auto"``) tries.

        ``lam_enc``: the lambdas whose effective degrees of freedom on the alphas are
        :attr:`AUTO_DF_FRACTIONS` of K (1 gives 0, interpolation; fractions at or below 2/K are
        dropped), increasing. ``lam_dec``: the declared candidates, 0 and one lambda per decade
        from 1e-9 to 1e-3, the range of the decoders' lambdas in the tuned tables (the decoder's
        sites change with every pattern, so a df would mean another lambda per pattern).
        """
        if name != "lam_enc":
            return super().auto_candidates(name)
        k = self.num_inputs
        lams = []
        for fraction in self.AUTO_DF_FRACTIONS:
            df = fraction * k
            if fraction >= 1.0:
                lams.append(0.0)
            elif df > 2.0:
                lams.append(float(lam_for_df(self.alphas, df)))
        return sorted(set(lams))

    def encoder_params(self) -> dict[str, float]:
        """Return ``lam_enc`` and ``df_enc`` as :meth:`decode_each_with_params` reports them."""
        return {"lam_enc": self.lam_enc, "df_enc": self.encoder_df()}

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
                d, _ = spectrum(self.alphas[None], vectors=False)
                df = float(spectrum_df(d, np.array([[self.lam_enc]]))[0, 0])
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
        d, _ = spectrum(self.alphas[None], vectors=False)
        return float(spectrum_lam_for_df(d, np.array([[df]]), self._enc_bound)[0, 0])

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
        return arrays.readonly(np.unique(grid))

    def _decoder_setting(
        self, masks: np.ndarray, sites: np.ndarray, answers: np.ndarray | None, with_df: bool
    ) -> tuple[np.ndarray | float, np.ndarray | None]:
        """The decoder's lambda for patterns of one size (``masks`` (p, N), ``sites`` (p, n),
        ``answers`` (p, n, m) for GCV), and with ``with_df`` its df per pattern (p,).

        Fixed lambdas come back as the number itself, their df from the banded smoother
        (:func:`~nercc.coding.splines.smoothing_spline_df`). Eigen-decompositions are made
        (cached per mask) only where a lambda is chosen: GCV, or df_dec below n."""
        p, n = sites.shape
        if n < 3:  # a constant or a line, whatever lambda: df = n
            lam = self.lam_dec if isinstance(self.lam_dec, float) else np.zeros(p)
            return lam, np.full(p, float(n)) if with_df else None
        if self.df_dec is not None and self.df_dec >= n:  # more df than sites: interpolate
            return np.zeros(p), np.full(p, float(n)) if with_df else None
        if isinstance(self.lam_dec, float):
            # A fixed lambda needs no spectrum: its df is the trace of the banded smoother.
            return self.lam_dec, smoothing_spline_df(sites, self.lam_dec) if with_df else None
        gcv = self.lam_dec == "gcv"
        lams = np.empty(p)
        dfs = np.empty(p) if with_df else None
        for start in range(0, p, SPECTRUM_CHUNK):
            part = slice(start, start + SPECTRUM_CHUNK)
            d, vectors = self._spectra.lookup(masks[part], sites[part], vectors=gcv)
            if gcv:
                grid = self.lam_grid
                energy = spectrum_energy(vectors, answers[part])
                scores = spectrum_gcv(d, energy, np.broadcast_to(grid, (len(d), grid.size)))
                lam = grid[argmin_rows(scores)]
            else:
                lam = spectrum_lam_for_df(d, np.full((len(d), 1), self.df_dec), self._dec_bound)[
                    :, 0
                ]
            lams[part] = lam
            if dfs is not None:
                dfs[part] = spectrum_df(d, lam[:, None])[:, 0]
        return lams, dfs

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

    def _decodes_by_outputs(self) -> bool:
        return super()._decodes_by_outputs() or self.lam_dec == "gcv"

    def _decode_each(
        self, outputs: Any, available: np.ndarray, with_params: bool = False
    ) -> tuple[Any, dict[str, np.ndarray]]:
        count = available.shape[0]
        settings = (np.empty(count), np.empty(count)) if with_params else None  # lam, df
        if arrays.on_accelerator(outputs):
            result = self._decode_on_device(outputs, available, settings)
        else:
            result = self._fit_on_host(outputs, available, settings)
        if settings is None:
            return result, {}
        return result, {
            "lam_enc": np.full(count, self.lam_enc),
            "lam_dec": settings[0],
            "df_enc": np.full(count, self.encoder_df()),
            "df_dec": settings[1],
        }

    def _decode_on_device(
        self, outputs: Any, available: np.ndarray, settings: tuple[np.ndarray, ...] | None
    ) -> Any:
        """:meth:`_decode_each` of outputs on a GPU, in float64 there (the host path fits in
        float64 too); the outputs never leave the device. A fixed lambda or df: each pattern's
        decoder, built once on the CPU and cached with its device copy, applied in one batched
        product. GCV: :meth:`_gcv_on_device`. Fills ``settings`` (lam, df per pattern) when
        given."""
        values = outputs.double()
        if not arrays.all_finite(values):
            values = arrays.zero_stragglers(values, available)
        if self.lam_dec == "gcv":
            return self._gcv_on_device(values, available, settings).to(outputs.dtype)
        result = (self._decoder_operand(available, values) @ values).to(outputs.dtype)
        if settings is not None:
            for chosen, masks, sites in self._by_size(available):
                lam, df = self._decoder_setting(masks, sites, None, with_df=True)
                settings[0][chosen], settings[1][chosen] = lam, df
        return result

    def _gcv_on_device(
        self, values: Any, available: np.ndarray, settings: tuple[np.ndarray, ...] | None
    ) -> Any:
        """GCV's decoding of float64 outputs (P, N, M) on their device.

        In each pattern's eigenbasis (:mod:`nercc.coding.gcv`), with W and d from the spectrum
        cache: the projections ``E = W^T Y`` on the device, only their energies (p, n - 2)
        brought to the host to score the grid, then the fit ``Y - W diag(r) E`` at the chosen
        lambda (r_i = n lam d_i / (1 + n lam d_i)) and the natural interpolant of those knot
        values at the alphas (the lam = 0 decoder of the pattern's sites): a smoothing spline
        is the natural cubic spline through its own fitted values."""
        estimates = values.new_empty((values.shape[0], self.num_inputs, values.shape[2]))
        for chosen, masks, sites in self._by_size(available):
            p, n = sites.shape
            answers = values[chosen][masks].reshape(p, n, -1)
            lams, dfs = np.zeros(p), np.full(p, float(n))
            if n >= 3:
                fitted = answers.clone()
                for start in range(0, p, SPECTRUM_CHUNK):
                    part = slice(start, start + SPECTRUM_CHUNK)
                    d, vectors = self._spectra.lookup(masks[part], sites[part], vectors=True)
                    w = arrays.to_torch(vectors, values)
                    projected = w.transpose(1, 2) @ answers[part]  # (p, n-2, M)
                    energy = arrays.to_host((projected**2).sum(dim=2))  # (p, n-2): small
                    grid = np.broadcast_to(self.lam_grid, (len(d), self.lam_grid.size))
                    lam = self.lam_grid[argmin_rows(spectrum_gcv(d, energy, grid))]
                    with np.errstate(divide="ignore"):
                        r = 1.0 / (1.0 + 1.0 / (n * lam[:, None] * d))  # 0 at lam = 0
                    fitted[part] -= w @ (arrays.to_torch(r, values)[..., None] * projected)
                    lams[part] = lam
                    dfs[part] = spectrum_df(d, lam[:, None])[:, 0]
                answers = fitted
            interpolants = smoothing_spline_matrices(sites, self.alphas, 0.0)  # (p, K, n)
            estimates[chosen] = arrays.to_torch(interpolants, values) @ answers
            if settings is not None:
                settings[0][chosen], settings[1][chosen] = lams, dfs
        return estimates

    def _fit_on_host(
        self, outputs: Any, available: np.ndarray, settings: tuple[np.ndarray, ...] | None
    ) -> Any:
        """:meth:`_decode_each` on the host: the decoding splines fitted to the outputs
        directly, one banded solve with M right-hand sides per pattern (cheaper than building
        K x N decoders when M is small: logits). GCV chooses each lambda from the answers'
        projections on the pattern's eigenvectors, so its answers come here from any device.
        Fills ``settings`` (lam, df per pattern) when given."""
        values = arrays.as_float64(outputs)
        estimates = np.empty((values.shape[0], self.num_inputs, values.shape[2]))
        for chosen, masks, sites in self._by_size(available):
            answers = values[chosen][masks].reshape(*sites.shape, -1)
            lam, df = self._decoder_setting(masks, sites, answers, settings is not None)
            estimates[chosen] = smoothing_spline_values(sites, answers, self.alphas, lam)
            if settings is not None:
                settings[0][chosen], settings[1][chosen] = lam, df
        return arrays.like(estimates, outputs)

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
