"""Automatic encoder lambdas: a short calibration on validation images inside the run.

``scheme.<name>.lam_enc=auto`` asks the evaluation to choose the encoder's lambda per S before it
starts: a few candidates, spread evenly in the encoder's effective degrees of freedom from K
(interpolation) down to about K/2, are evaluated on a small sample of the validation split (never
the test split), and the candidate of lowest mse at each S is used there. The candidates are
stated in df because df is what a lambda does to these sites (method.md): the tuned tables of the
default models lie between df = K and df = 0.75 K.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nercc.coding import effective_df, lam_for_df
from nercc.tuning.tables import ParamTable

__all__ = ["AUTO", "DF_FRACTIONS", "auto_candidates", "auto_table", "best_per_stragglers"]

#: The value of ``lam_enc`` that asks for the calibration.
AUTO = "auto"
#: Candidate encoder smoothness, as fractions of K degrees of freedom (1: interpolation).
DF_FRACTIONS = (1.0, 0.995, 0.975, 0.92, 0.75, 0.55)


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
    rows: Sequence[dict[str, Any]], scheme: str, stragglers: Sequence[int]
) -> dict[int, float]:
    """The ``lam_enc`` of the row of lowest finite mse of ``scheme`` at each S (ties: the
    smaller lambda)."""
    best: dict[int, tuple[float, float]] = {}
    for row in rows:
        if row["scheme"] != scheme or not math.isfinite(row["mse"]):
            continue
        s, lam = int(row["num_stragglers"]), float(row["lam_enc"])
        if s not in best or (row["mse"], lam) < best[s]:
            best[s] = (row["mse"], lam)
    missing = [s for s in stragglers if s not in best]
    if missing:
        raise ValueError(f"scheme.{scheme}.lam_enc=auto: no finite mse at S={missing}")
    return {s: best[s][1] for s in stragglers}


def auto_table(
    scheme: str, chosen: dict[int, float], alphas: Any, code: dict[str, Any], found_by: dict
) -> ParamTable:
    """The calibration's choice as an in-memory table (``params_source`` ``table:auto(...)``)."""
    images = found_by.get("inputs")
    return ParamTable(
        path=Path(f"auto({found_by.get('split', 'val')}, {images} images)"),
        scheme=scheme,
        model=str(found_by.get("model", "")),
        dataset=str(found_by.get("dataset", "")),
        code=dict(code),
        by_stragglers={int(s): {"lam_enc": lam} for s, lam in chosen.items()},
        found_by={
            **found_by,
            "df_enc": {int(s): float(effective_df(alphas, lam)) for s, lam in chosen.items()},
        },
    )
