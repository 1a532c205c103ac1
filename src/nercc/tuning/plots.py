"""Pictures of a parameter search: the validation objective over two parameters at one S."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nercc.utils.io import save_figure  # noqa: E402

__all__ = ["plot_search"]


def plot_search(
    rows: Sequence[Mapping[str, Any]],
    params: Sequence[str],
    metric: str,
    best: Mapping[str, float],
    path: str | os.PathLike[str],
    title: str,
) -> Path:
    """The ``metric`` of ``rows`` (one S, one scheme) over two parameters, written atomically.

    A full grid is drawn as a heatmap with the values in its cells; scattered settings (an
    Optuna search) as points on log axes. ``best`` is marked.
    """
    x_name, y_name = params
    figure, axis = plt.subplots(figsize=(7.2, 5.0))
    xs = sorted({r[x_name] for r in rows})
    ys = sorted({r[y_name] for r in rows})
    values = {(r[x_name], r[y_name]): r[metric] for r in rows}
    log = metric == "mse" and all(v > 0 for v in values.values() if math.isfinite(v))
    if len(values) == len(xs) * len(ys) and len(rows) == len(values):
        grid = np.array([[values[(x, y)] for x in xs] for y in ys])
        shown = np.log10(grid) if log else grid
        image = axis.imshow(
            shown, origin="lower", aspect="auto", cmap="viridis_r" if metric == "mse" else "viridis"
        )
        for (i, j), value in np.ndenumerate(grid):
            axis.text(j, i, f"{value:.3g}", ha="center", va="center", fontsize=7, color="w")
        axis.set_xticks(range(len(xs)), [f"{x:g}" for x in xs], rotation=45, fontsize=8)
        axis.set_yticks(range(len(ys)), [f"{y:g}" for y in ys], fontsize=8)
        if best[x_name] in xs and best[y_name] in ys:  # a refined best lies between the cells
            axis.plot(xs.index(best[x_name]), ys.index(best[y_name]), "r*", markersize=14)
    else:
        points = np.array([[r[x_name], r[y_name], r[metric]] for r in rows], dtype=float)
        shown = np.log10(points[:, 2]) if log else points[:, 2]
        image = axis.scatter(
            points[:, 0], points[:, 1], c=shown, cmap="viridis_r" if metric == "mse" else "viridis"
        )
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.plot(best[x_name], best[y_name], "r*", markersize=14)
    figure.colorbar(image, ax=axis, label=f"log10 {metric}" if log else metric)
    axis.set_xlabel(x_name)
    axis.set_ylabel(y_name)
    chosen = ", ".join(f"{k}={v:.3g}" for k, v in best.items())
    axis.set_title(f"{title}\nchosen: {chosen}", fontsize=10)
    figure.tight_layout()
    return save_figure(figure, path)
