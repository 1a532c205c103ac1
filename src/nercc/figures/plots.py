"""Drawing a figure from its labelled rows (matplotlib, Agg), in the style of
:mod:`nercc.evaluation.report`: one line per label, a shaded band for the 95 % interval, written
atomically as PNG by :func:`~nercc.utils.io.save_figure`.

Each ``plot_*`` takes the figure's rows, each carrying ``label`` and ``panel`` besides the
evaluation's columns, and returns what the summary reports (the convergence slopes).
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from nercc.utils.io import save_figure  # noqa: E402

__all__ = [
    "fit_slope",
    "plot_adversary_convergence",
    "plot_convergence",
    "plot_lambda_grid",
    "plot_vs_adversaries",
    "plot_vs_stragglers",
]

#: Values this far below a panel's largest are float noise (exact recovery): drawn at the floor.
EXACT = 1e-9
#: Colours of the labels the figure configs use, the same in every figure; others take the rest.
LABEL_COLORS = {
    "NeRCC tuned": "tab:blue",
    "NeRCC auto": "tab:green",
    "NeRCC (0, 0)": "tab:orange",
    "NeRCC": "tab:blue",
    "BACC": "tab:red",
    "replication (equal cost)": "tab:gray",
    "replication, majority vote": "tab:olive",
    "NeRCC robust": "tab:purple",
    "BACC robust": "tab:brown",
    "NeRCC robust (0, 0)": "tab:purple",
}
#: Colours for other labels, the first one not yet used in the figure (ten distinct curves).
SPARE_COLORS = ("tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:blue",
                "tab:orange", "tab:green", "tab:red", "tab:gray")  # fmt: skip
METRIC_NAMES = {"mse": "mse", "rel_acc": "relative accuracy", "acc": "accuracy",
                "agreement": "agreement"}  # fmt: skip


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def fit_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of log y on log x over the points where both are positive and finite;
    NaN with fewer than two such points."""
    pairs = [(x, y) for x, y in zip(xs, ys, strict=True) if _finite(x) and _finite(y) and x > 0
             and y > 0]  # fmt: skip
    if len({x for x, _ in pairs}) < 2:
        return float("nan")
    lx, ly = np.log([p[0] for p in pairs]), np.log([p[1] for p in pairs])
    return float(np.polyfit(lx, ly, 1)[0])


def _series(rows: Sequence[dict], x: str, metric: str, where: dict) -> dict[str, list[tuple]]:
    """label -> sorted (x, value, lo, hi) of the rows matching ``where``."""
    found: dict[str, list[tuple]] = {}
    for r in rows:
        if any(r.get(k) != v for k, v in where.items()) or not _finite(r.get(x)):
            continue
        lo, hi = r.get(f"{metric}_lo"), r.get(f"{metric}_hi")
        band = (lo, hi) if _finite(lo) and _finite(hi) else (float("nan"),) * 2
        found.setdefault(r["label"], []).append((r[x], r[metric], *band))
    return {label: sorted(points) for label, points in found.items()}


def _log_limits(values: Sequence[float]) -> tuple[float, float] | None:
    positive = [v for v in values if _finite(v) and v > 0]
    if not positive:
        return None
    top = max(positive)
    floor = top * EXACT
    low = min(v for v in positive if v >= floor)
    return low / 1.5, top * 1.5


def _draw(axis: Any, series: dict[str, list[tuple]], colors: dict[str, Any], log_y: bool,
          fits: dict[str, float] | None = None) -> None:  # fmt: skip
    """Lines with markers and interval bands; on a log axis, values at or below the floor (exact
    recovery, or a lower end <= 0) are drawn at the floor, a point as a down triangle."""
    limits = None
    if log_y:
        limits = _log_limits([v for pts in series.values() for p in pts for v in p[1:]])
    for label, points in series.items():
        xs = [p[0] for p in points]
        ys = np.array([p[1] for p in points], dtype=float)
        lows = np.array([p[2] for p in points], dtype=float)
        highs = np.array([p[3] for p in points], dtype=float)
        shown = label if fits is None else f"{label}: slope {fits.get(label, float('nan')):.2f}"
        if label not in colors:
            used = set(colors.values())
            spare = [c for c in SPARE_COLORS if c not in used] or list(SPARE_COLORS)
            colors[label] = LABEL_COLORS.get(label, spare[0])
        kwargs = {"color": colors[label]}
        if limits is not None:
            below = ys <= limits[0]
            ys = np.where(below, limits[0], ys)
            lows = np.where(np.isfinite(lows), np.maximum(lows, limits[0]), lows)
            highs = np.where(np.isfinite(highs), np.maximum(highs, limits[0]), highs)
        (line,) = axis.plot(xs, ys, marker="o", label=shown, **kwargs)
        colors.setdefault(label, line.get_color())
        if limits is not None and below.any():
            axis.plot(np.array(xs)[below], ys[below], "v", color=line.get_color(), markersize=9)
        if np.isfinite(lows).any():
            axis.fill_between(xs, lows, highs, color=line.get_color(), alpha=0.18, linewidth=0)
    if log_y:
        axis.set_yscale("log")
        if limits is not None:
            axis.set_ylim(*limits)


def _grid(rows_count: int, cols_count: int) -> tuple[Any, np.ndarray]:
    width = max(5.6 * cols_count, 7.5)
    figure, axes = plt.subplots(
        rows_count, cols_count, figsize=(width, 3.9 * rows_count + 0.4), squeeze=False
    )
    return figure, axes


def _log_workers_axis(axis: Any, series: dict, panel: str) -> None:
    """The axes of an mse-against-N panel: log N with a tick at every N drawn, log mse."""
    axis.set_xscale("log")
    ns = sorted({p[0] for pts in series.values() for p in pts})
    axis.set_xticks(ns, [str(int(n)) for n in ns])
    axis.minorticks_off()
    axis.set_xlabel("workers N (log)")
    axis.set_ylabel("mse (log)")
    axis.set_title(panel, fontsize=10)
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=7)


def _finish(figure: Any, title: str, path: str | os.PathLike[str], note: str = "") -> Path:
    width = figure.get_size_inches()[0]
    figure.suptitle(textwrap.fill(title, width=int(width * 12)), fontsize=11)
    if note:
        figure.text(0.5, 0.005, note, ha="center", va="bottom", fontsize=7, color="0.35")
    figure.tight_layout(rect=(0, 0.03 if note else 0, 1, 0.96))
    return save_figure(figure, path)


def _plot_curves(rows: Sequence[dict], metrics: Sequence[str], path: str | os.PathLike[str],
                 title: str, x: str, x_label: str, panel_title: str) -> None:  # fmt: skip
    """One row of panels per metric, one column per panel, ``x`` on the horizontal axis;
    ``panel_title`` formats a panel's name (``{panel}``) into its title."""
    panels = list(dict.fromkeys(r["panel"] for r in rows))
    figure, axes = _grid(len(metrics), len(panels))
    colors: dict[str, Any] = {}
    exact = False
    for i, metric in enumerate(metrics):
        for j, panel in enumerate(panels):
            axis = axes[i, j]
            series = _series(rows, x, metric, {"panel": panel})
            log_y = metric == "mse"
            _draw(axis, series, colors, log_y)
            if log_y:
                top = max((p[1] for pts in series.values() for p in pts), default=0)
                exact |= any(0 <= p[1] <= top * EXACT for pts in series.values() for p in pts)
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # S and A are counts
            axis.set_xlabel(x_label)
            axis.set_ylabel(METRIC_NAMES[metric])
            axis.set_title(METRIC_NAMES[metric] + (panel_title.format(panel=panel) if panel
                                                   else ""), fontsize=10)  # fmt: skip
            axis.grid(alpha=0.3)
            axis.legend(fontsize=7)
    note = "bands: 95 % intervals over (group, pattern) draws"
    if exact:
        note += f"; down triangles: exact recovery (mse below {EXACT:g} x the largest)"
    _finish(figure, title, path, note)


def plot_vs_stragglers(
    rows: Sequence[dict], metrics: Sequence[str], path: str | os.PathLike[str], title: str
) -> dict[str, Any]:
    """One row of panels per metric, one column per panel (straggler model), x = S."""
    _plot_curves(rows, metrics, path, title, "num_stragglers", "stragglers S",
                 " ({panel} stragglers)")  # fmt: skip
    return {}


def plot_vs_adversaries(
    rows: Sequence[dict], metrics: Sequence[str], path: str | os.PathLike[str], title: str
) -> dict[str, Any]:
    """One row of panels per metric, one column per panel (adversary kind), x = A, the
    adversarial workers among those that answer, at the rows' one S."""
    stragglers = sorted({r["num_stragglers"] for r in rows})
    if len(stragglers) != 1:
        raise ValueError(f"rows must have one S to be drawn against A, got S={stragglers}")
    _plot_curves(rows, metrics, path, title, "num_adversaries",
                 f"adversarial workers A (of the N - S answering, S = {stragglers[0]})",
                 ": adversary {panel}")  # fmt: skip
    return {}


def _lambda_axis(rows: Sequence[dict], which: str) -> str:
    """``df_<which>`` where every NeRCC row has a finite one, else ``lam_<which>``."""
    df = f"df_{which}"
    if rows and all(_finite(r.get(df)) for r in rows):
        return df
    return f"lam_{which}"


def plot_lambda_grid(
    rows: Sequence[dict], path: str | os.PathLike[str], title: str, metric: str = "mse"
) -> dict[str, Any]:
    """NeRCC's ``metric`` over its (lam_enc, lam_dec) grid: per S (a row of panels), against the
    encoder's smoothing with one curve per decoder setting, and against the decoder's with one
    curve per encoder setting; a labelled baseline (BACC) as a dashed line; the best point
    starred. The axes are effective degrees of freedom where the rows give them."""
    grid = [r for r in rows if r.get("scheme") == "nercc" and _finite(r.get(metric))]
    others = [r for r in rows if r.get("scheme") != "nercc"]
    values = sorted({r["num_stragglers"] for r in grid})
    figure, axes = _grid(max(len(values), 1), 2)
    axes_used = {}
    for i, s in enumerate(values):
        at = [r for r in grid if r["num_stragglers"] == s]
        best = min(at, key=lambda r: r[metric])
        for j, (which, other) in enumerate((("enc", "dec"), ("dec", "enc"))):
            axis = axes[i, j]
            x = _lambda_axis(at, which)
            curve = f"lam_{other}"
            axes_used[which] = x
            keys = sorted({r[curve] for r in at})
            cmap = plt.get_cmap("viridis", max(len(keys), 2))
            for k, key in enumerate(keys):
                points = sorted((r[x], r[metric]) for r in at if r[curve] == key)
                axis.plot([p[0] for p in points], [p[1] for p in points], marker=".",
                          color=cmap(k), label=f"{curve}={key:g}")  # fmt: skip
            axis.plot(
                [best[x]],
                [best[metric]],
                "*",
                color="crimson",
                markersize=13,
                label=f"best: lam_enc={best['lam_enc']:g}, lam_dec={best['lam_dec']:g}",
            )
            for r in others:
                if r["num_stragglers"] == s and _finite(r.get(metric)):
                    axis.axhline(r[metric], color="0.3", linestyle="--", linewidth=1,
                                 label=f"{r['label']}: {r[metric]:.3g}")  # fmt: skip
            if x.startswith("lam_"):
                positive = [r[x] for r in at if r[x] > 0]
                axis.set_xscale("symlog", linthresh=min(positive) if positive else 1e-12)
                axis.set_xlabel(f"{x} (symlog: 0 at the left)")
            else:
                axis.set_xlabel(f"{x} (effective degrees of freedom)")
            axis.set_yscale("log")
            axis.set_ylabel(metric)
            coder = "encoder" if which == "enc" else "decoder"
            axis.set_title(f"S={s}: {metric} against the {coder}'s smoothing", fontsize=10)
            axis.grid(alpha=0.3)
            axis.legend(fontsize=6, ncol=2)
    count = max((r.get("num_inputs_evaluated") or 0 for r in rows), default=0)
    _finish(figure, title, path, f"{count} images; one curve per value of the other lambda")
    return {"axes": axes_used}


def plot_convergence(
    rows: Sequence[dict], path: str | os.PathLike[str], title: str
) -> dict[str, Any]:
    """mse against N on log-log axes, one panel per straggler regime (``panel``: fixed fraction,
    fixed S); each label's least-squares slope of log mse on log N is in the legend (and
    returned: ``slopes[panel][label]``), with its fitted line dashed."""
    panels = list(dict.fromkeys(r["panel"] for r in rows))
    figure, axes = _grid(1, len(panels))
    colors: dict[str, Any] = {}
    slopes: dict[str, dict[str, float]] = {}
    workers: dict[str, dict[str, list[int]]] = {}
    for j, panel in enumerate(panels):
        axis = axes[0, j]
        series = _series(rows, "num_workers", "mse", {"panel": panel})
        fits = {
            label: fit_slope([p[0] for p in pts], [p[1] for p in pts])
            for label, pts in series.items()
        }
        slopes[panel] = fits
        workers[panel] = {label: [int(p[0]) for p in pts] for label, pts in series.items()}
        _draw(axis, series, colors, log_y=True, fits=fits)
        for label, pts in series.items():
            slope = fits[label]
            good = [(p[0], p[1]) for p in pts if p[1] > 0]
            if math.isfinite(slope) and good:
                lx = np.log([g[0] for g in good])
                intercept = float(np.mean(np.log([g[1] for g in good])) - slope * lx.mean())
                ns = np.array([pts[0][0], pts[-1][0]], dtype=float)
                axis.plot(ns, np.exp(intercept) * ns**slope, "--", color=colors[label],
                          linewidth=1, alpha=0.7)  # fmt: skip
        _log_workers_axis(axis, series, panel)
    _finish(figure, title, path, "bands: 95 % intervals; dashed: least-squares fit of log mse "
            "on log N")  # fmt: skip
    return {"slopes": slopes, "slope_workers": workers}


def plot_adversary_convergence(
    rows: Sequence[dict],
    path: str | os.PathLike[str],
    title: str,
    theory: dict[str, float],
    anchor: str | None = None,
) -> dict[str, Any]:
    """mse against N on log-log axes under A = round(N^a) adversaries, one panel per exponent a
    (``panel``); each label's least-squares slope of log mse on log N in the legend, its fit
    dashed, and the theory's slope ``theory[panel]`` as a dotted line through the centre (mean
    log N, mean log mse) of ``anchor``'s points (the first label when None).

    Returns
    -------
    dict
        ``slopes[panel][label]``, ``slope_workers[panel][label]`` (the N fitted),
        ``slope_adversaries[panel][label]`` (the A at each N) and ``theory[panel]``.
    """
    panels = list(dict.fromkeys(r["panel"] for r in rows))
    figure, axes = _grid(1, len(panels))
    colors: dict[str, Any] = {}
    slopes: dict[str, dict[str, float]] = {}
    workers: dict[str, dict[str, list[int]]] = {}
    counts: dict[str, dict[str, list[int]]] = {}
    for j, panel in enumerate(panels):
        axis = axes[0, j]
        mine = [r for r in rows if r["panel"] == panel]
        series = _series(mine, "num_workers", "mse", {})
        fits = {
            label: fit_slope([p[0] for p in pts], [p[1] for p in pts])
            for label, pts in series.items()
        }
        slopes[panel] = fits
        workers[panel] = {label: [int(p[0]) for p in pts] for label, pts in series.items()}
        counts[panel] = {
            label: [int(r["num_adversaries"]) for r in sorted(mine, key=lambda r: r["num_workers"])
                    if r["label"] == label]
            for label in series
        }  # fmt: skip
        _draw(axis, series, colors, log_y=True, fits=fits)
        for label, pts in series.items():
            centre = _centre(pts)
            if math.isfinite(fits[label]) and centre is not None:
                _line(axis, pts, centre, fits[label], "--", colors[label], 0.7)
        base = anchor if anchor in series else next(iter(series), None)
        slope = theory.get(panel, float("nan"))
        centre = _centre(series[base]) if base is not None else None
        if centre is not None and math.isfinite(slope):
            _line(axis, series[base], centre, slope, ":", "black", 0.9,
                  f"theory: slope {slope:.2f}")  # fmt: skip
        _log_workers_axis(axis, series, panel)
    _finish(figure, title, path, "bands: 95 % intervals; dashed: least-squares fit of log mse "
            "on log N; dotted: the theory's slope (6/5)(a - 1)")  # fmt: skip
    return {"slopes": slopes, "slope_workers": workers, "slope_adversaries": counts,
            "theory": {panel: theory.get(panel, float("nan")) for panel in panels}}  # fmt: skip


def _centre(points: Sequence[tuple]) -> tuple[float, float] | None:
    """(mean log N, mean log mse) over the points with a positive mse."""
    good = [(p[0], p[1]) for p in points if _finite(p[1]) and p[1] > 0]
    if not good:
        return None
    logs = np.log(np.array(good, dtype=float))
    return float(logs[:, 0].mean()), float(logs[:, 1].mean())


def _line(axis: Any, points: Sequence[tuple], centre: tuple[float, float], slope: float,
          style: str, color: Any, alpha: float, label: str | None = None) -> None:  # fmt: skip
    """A line of ``slope`` on log-log axes through ``centre``, over the points' N."""
    ns = np.array([points[0][0], points[-1][0]], dtype=float)
    ys = np.exp(centre[1] + slope * (np.log(ns) - centre[0]))
    axis.plot(ns, ys, style, color=color, linewidth=1.2 if label else 1, alpha=alpha, label=label)
