"""The latency CDF of each scheme, side by side (log-scaled latency, tail visible), and the load
curves' tail gap against the offered rate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from nercc.serving.load import QueryRecord

__all__ = ["plot_gap_vs_rate", "plot_latency_cdf"]


def plot_latency_cdf(records: Sequence[QueryRecord], path: str | Path, title: str) -> Path:
    """Plot the empirical CDF of the answered queries' latency per scheme, with the p99 marked,
    and save it to ``path`` (PNG, written atomically). Returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nercc.utils.io import save_figure

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for scheme in dict.fromkeys(r.scheme for r in records):
        latencies = np.sort(
            [r.latency_ms for r in records if r.scheme == scheme and r.status == "ok"]
        )
        if not len(latencies):
            continue
        fraction = np.arange(1, len(latencies) + 1) / len(latencies)
        p99 = float(np.percentile(latencies, 99))
        (line,) = axis.step(latencies, fraction, where="post", label=f"{scheme} (p99 {p99:.0f} ms)")
        axis.axvline(p99, color=line.get_color(), linestyle=":", linewidth=1)
    axis.set_xscale("log")
    axis.set_xlabel("latency (ms, log scale)")
    axis.set_ylabel("fraction of queries answered")
    axis.set_title(title, fontsize=9)
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(loc="lower right")
    figure.tight_layout()
    return save_figure(figure, path)


def plot_gap_vs_rate(
    curve: Sequence[Mapping],
    saturation: Mapping[str, float | None],
    path: str | Path,
    title: str,
) -> Path:
    """Plot each scheme's p99.9 - p50 gap against the offered rate (log y), the mean over the
    trials with its min-max as error bars, the saturation rate ringed, and save it to ``path``
    (PNG, written atomically). Returns the path.

    Parameters
    ----------
    curve : sequence of mapping
        :func:`nercc.serving.load.aggregate_trials` rows (``gap_ms``, ``gap_ms_min``,
        ``gap_ms_max``).
    saturation : mapping
        Scheme to its saturation rate, or None (:func:`nercc.serving.load.saturation_points`).
    path : str or Path
        Where the PNG goes.
    title : str
        The plot's title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    from nercc.utils.io import save_figure

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for scheme in dict.fromkeys(row["scheme"] for row in curve):
        rows = sorted((r for r in curve if r["scheme"] == scheme), key=lambda r: r["rate"])
        rates = np.array([r["rate"] for r in rows])
        gap = np.array([r["gap_ms"] for r in rows])
        # a gap of 0 (one answer) has no place on a log axis
        low = np.clip(gap - np.array([r["gap_ms_min"] for r in rows]), 0, None)
        high = np.clip(np.array([r["gap_ms_max"] for r in rows]) - gap, 0, None)
        at = saturation.get(scheme)
        label = (
            f"{scheme} (saturates at {at:g}/s)" if at is not None else f"{scheme} (not saturated)"
        )
        line = axis.errorbar(rates, gap, yerr=[low, high], marker="o", capsize=3, label=label)
        if at is not None:
            mark = gap[rates == at]
            axis.plot([at] * len(mark), mark, marker="o", markersize=14, fillstyle="none",
                      linestyle="none", color=line.lines[0].get_color())  # fmt: skip
    axis.set_xscale("log")
    axis.set_yscale("log")
    # the offered rates themselves as the ticks, written plainly (not 2 x 10^2)
    axis.set_xticks(sorted({float(r["rate"]) for r in curve}))
    axis.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:g}"))
    axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axis.set_xlabel("offered rate (queries/s, log scale)")
    axis.set_ylabel("p99.9 - p50 latency (ms, log scale)")
    axis.set_title(title, fontsize=9)
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(loc="best", fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path)
