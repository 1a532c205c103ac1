"""Result tables and plots of a coded evaluation."""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

__all__ = ["plot_vs_stragglers", "print_results"]


def print_results(
    rows: Sequence[dict[str, Any]], title: str, console: Console | None = None
) -> None:
    """A rich table: one line per (variant, S)."""
    table = Table(title=title)
    for column in (
        "scheme",
        "S",
        "lam_enc",
        "lam_dec",
        "mse",
        "acc",
        "base_acc",
        "rel_acc",
        "agreement",
    ):
        if column == "scheme":
            table.add_column(column, no_wrap=True)
        else:
            table.add_column(column, justify="right")
    lam = lambda value: "" if value is None else f"{value:g}"  # noqa: E731
    for row in rows:
        table.add_row(
            row["variant"],
            str(row["num_stragglers"]),
            lam(row["lam_enc"]),
            lam(row["lam_dec"]),
            f"{row['mse']:.4g}",
            f"{row['acc']:.4f}",
            f"{row['base_acc']:.4f}",
            f"{row['rel_acc']:.4f}",
            f"{row['agreement']:.4f}",
        )
    (console or Console(width=max(120, Console().width))).print(table)


def plot_vs_stragglers(
    rows: Sequence[dict[str, Any]], metric: str, path: str | os.PathLike[str], title: str
) -> Path:
    """Plot ``metric`` against S, one line per variant; written atomically as PNG."""
    path = Path(path)
    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    for label in dict.fromkeys(r["variant"] for r in rows):
        points = sorted((r["num_stragglers"], r[metric]) for r in rows if r["variant"] == label)
        xs, ys = zip(*points, strict=True)
        axis.plot(xs, ys, marker="o", label=label)
    if metric == "mse" and all(r["mse"] > 0 and math.isfinite(r["mse"]) for r in rows):
        axis.set_yscale("log")
    axis.set_xlabel("stragglers S")
    axis.set_ylabel(metric)
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        figure.savefig(tmp, dpi=120)
        os.replace(tmp, path)
    finally:
        plt.close(figure)
        Path(tmp).unlink(missing_ok=True)
    return path
