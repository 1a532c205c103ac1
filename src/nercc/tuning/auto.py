"""Automatic lambdas: a short calibration on validation images inside the run.

``scheme.<name>.lam_enc=auto`` (and/or ``lam_dec=auto``) asks the evaluation to choose the
lambda per S before it starts: a few candidates are evaluated on a small sample of the
validation split (never the test split), together when both sides say auto, and the setting of
lowest mse at each S is used there. The encoder's candidates are spread in its effective degrees
of freedom from K (interpolation) down to about K/2, because df is what a lambda does to these
sites (method.md): the tuned tables of the default models lie between df = K and df = 0.75 K.
The decoder's candidates are 0 and one lambda per decade from 1e-9 to 1e-3, the range of the
decoders' lambdas in the tuned tables (its sites are the answering betas, which change with
every pattern, so a df would mean another lambda per pattern).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nercc.coding import effective_df, lam_for_df
from nercc.tuning.tables import ParamTable

__all__ = [
    "AUTO",
    "DECODER_CANDIDATES",
    "DF_FRACTIONS",
    "auto_candidates",
    "auto_table",
    "best_per_stragglers",
]

#: The value of ``lam_enc`` that asks for the calibration.
AUTO = "auto"
#: Candidate encoder smoothness, as fractions of K degrees of freedom (1: interpolation).
DF_FRACTIONS = (1.0, 0.995, 0.975, 0.92, 0.75, 0.55)
#: Candidate decoder lambdas.
DECODER_CANDIDATES = (0.0, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3)


def auto_candidates(alphas: Any, fractions: Sequence[float] = DF_FRACTIONS) -> list[float]:
    """Encoder lambdas whose effective degrees of freedom at ``alphas`` are ``fractions`` of K.

    Parameters
    ----------
    alphas : array_like of shape (K,)
        The encoder's sites.
    fractions : sequence of float in (2/K, 1]
        df / K of each candidate; 1 gives lambda 0 (interpolation).

    Returns
    -------
    list of float
        The lambdas, increasing (decreasing df); fractions at or below 2/K are dropped.
    """
    k = len(alphas)
    lams = []
    for fraction in fractions:
        df = fraction * k
        if fraction >= 1.0:
            lams.append(0.0)
        elif df > 2.0:
            lams.append(float(lam_for_df(alphas, df)))
    return sorted(set(lams))


def best_per_stragglers(
    rows: Sequence[dict[str, Any]],
    scheme: str,
    stragglers: Sequence[int],
    params: Sequence[str] = ("lam_enc",),
) -> dict[int, dict[str, float]]:
    """The ``params`` of the row of lowest finite mse of ``scheme`` at each S (ties: the
    smaller parameters, in the order given)."""
    best: dict[int, tuple] = {}
    for row in rows:
        if row["scheme"] != scheme or not math.isfinite(row["mse"]):
            continue
        s, values = int(row["num_stragglers"]), tuple(float(row[p]) for p in params)
        if s not in best or (row["mse"], values) < best[s]:
            best[s] = (row["mse"], values)
    missing = [s for s in stragglers if s not in best]
    if missing:
        raise ValueError(f"scheme.{scheme}: auto found no finite mse at S={missing}")
    return {s: dict(zip(params, best[s][1], strict=True)) for s in stragglers}


def auto_table(
    scheme: str,
    chosen: dict[int, dict[str, float]],
    alphas: Any,
    code: dict[str, Any],
    found_by: dict,
) -> ParamTable:
    """The calibration's choice as an in-memory table (``params_source`` ``table:auto(...)``)."""
    images = found_by.get("inputs")
    extra = {}
    if all("lam_enc" in params for params in chosen.values()):
        extra["df_enc"] = {
            int(s): float(effective_df(alphas, params["lam_enc"])) for s, params in chosen.items()
        }
    return ParamTable(
        path=Path(f"auto({found_by.get('split', 'val')}, {images} images)"),
        scheme=scheme,
        model=str(found_by.get("model", "")),
        dataset=str(found_by.get("dataset", "")),
        code=dict(code),
        by_stragglers={int(s): dict(params) for s, params in chosen.items()},
        found_by={**found_by, **extra},
    )
