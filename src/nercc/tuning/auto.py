"""Automatic parameters: a short calibration on validation images inside the run.

``scheme.<name>.<param>=auto`` asks the evaluation to choose that parameter per S before it
starts, for a parameter its scheme declares with ``auto=True`` (:class:`nercc.coding.Tunable`;
NeRCC's ``lam_enc`` and ``lam_dec``): the scheme's candidates
(:meth:`nercc.coding.CodingScheme.auto_candidates`) are evaluated on a small sample of the
validation split (never the test split), every such parameter of a scheme together, and the
setting of lowest mse at each S is used there. NeRCC's encoder candidates are spread in its
effective degrees of freedom from K (interpolation) down to about K/2, because df is what a
lambda does to these sites (method.md); its decoder's are 0 and one lambda per decade from 1e-9
to 1e-3, the range of the decoders' lambdas in the tuned tables.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nercc.tuning.tables import ParamTable

__all__ = ["AUTO", "auto_table", "best_rows"]

#: The value of a parameter that asks for the calibration.
AUTO = "auto"


def best_rows(
    rows: Sequence[dict[str, Any]], scheme: str, stragglers: Sequence[int], params: Sequence[str]
) -> dict[int, dict[str, Any]]:
    """The row of lowest finite mse of ``scheme`` at each S (ties: the smaller ``params``, in
    the order given).

    Parameters
    ----------
    rows : sequence of dict
        Result rows (``scheme``, ``num_stragglers``, ``mse`` and the ``params``).
    scheme : str
        The scheme whose rows compete.
    stragglers : sequence of int
        Every S that must have a row.
    params : sequence of str
        The calibrated parameters.

    Returns
    -------
    dict of int to dict
        The chosen row per S, in the order of ``stragglers``.

    Raises
    ------
    ValueError
        An S without a row of finite mse.
    """
    best: dict[int, tuple] = {}
    for row in rows:
        if row["scheme"] != scheme or not math.isfinite(row["mse"]):
            continue
        s, values = int(row["num_stragglers"]), tuple(float(row[p]) for p in params)
        if s not in best or (row["mse"], values) < best[s][:2]:
            best[s] = (row["mse"], values, row)
    missing = [s for s in stragglers if s not in best]
    if missing:
        raise ValueError(f"scheme.{scheme}: auto found no finite mse at S={missing}")
    return {s: best[s][2] for s in stragglers}


def auto_table(
    scheme: str,
    chosen: dict[int, dict[str, float]],
    code: dict[str, Any],
    found_by: dict,
    reported: Mapping[int, Mapping[str, float]] | None = None,
) -> ParamTable:
    """The calibration's choice as an in-memory table (``params_source`` ``table:auto(...)``).

    Parameters
    ----------
    scheme : str
        The scheme's config name.
    chosen : dict of int to dict
        The parameters chosen per S.
    code : dict
        ``num_inputs``, ``num_workers``, ``points``.
    found_by : dict
        How they were found (``split``, ``inputs``, ``candidates``, ``model``, ``dataset``).
    reported : mapping of int to mapping, optional
        Per S, what the scheme reports for the chosen setting in other words (NeRCC's
        ``df_enc`` for a chosen ``lam_enc``): recorded in ``found_by`` as ``{name: {S: value}}``.

    Returns
    -------
    ParamTable
    """
    images = found_by.get("inputs")
    extra: dict[str, dict[int, float]] = {}
    for s, values in (reported or {}).items():
        for name, value in values.items():
            extra.setdefault(name, {})[int(s)] = float(value)
    return ParamTable(
        path=Path(f"auto({found_by.get('split', 'val')}, {images} images)"),
        scheme=scheme,
        model=str(found_by.get("model", "")),
        dataset=str(found_by.get("dataset", "")),
        code=dict(code),
        by_stragglers={int(s): dict(params) for s, params in chosen.items()},
        found_by={**found_by, **extra},
    )
