"""The latency CDF of each scheme, side by side (log-scaled latency, tail visible)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nercc.serving.load import QueryRecord

__all__ = ["plot_latency_cdf"]


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
