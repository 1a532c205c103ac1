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

from nercc.utils.io import file_mode  # noqa: E402

__all__ = [
    "FIXED_COLUMNS",
    "param_columns",
    "plot_vs_stragglers",
    "print_results",
    "save_figure",
]


#: The columns of a result row that are not a scheme's parameters.
FIXED_COLUMNS = (
    "scheme", "variant", "num_inputs", "num_workers", "num_stragglers", "stragglers_mean",
    "stragglers_max", "params_source", "mse", "acc", "base_acc", "rel_acc", "agreement",
    "num_inputs_evaluated", "num_patterns",
)  # fmt: skip


def param_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The schemes' parameter columns of result rows (``lam_enc``, ``lam_dec`` for NeRCC)."""
    return [c for c in dict.fromkeys(c for r in rows for c in r) if c not in FIXED_COLUMNS]


def print_results(
    rows: Sequence[dict[str, Any]], title: str, console: Console | None = None
) -> None:
    """A rich table: one line per (variant, S), with the schemes' parameters.

    When the realised mean number of stragglers differs from S in some row (a straggler model
    that draws a random count), an ``S mean`` column shows it next to S.
    """
    params = param_columns(rows)
    realised = any(
        r.get("stragglers_mean") is not None and r["stragglers_mean"] != r["num_stragglers"]
        for r in rows
    )
    table = Table(title=title)
    table.add_column("scheme", no_wrap=True)
    counts = ("S", "S mean") if realised else ("S",)
    for column in (*counts, *params, "mse", "acc", "base_acc", "rel_acc", "agreement"):
        table.add_column(column, justify="right")
    show = lambda value: "" if value is None else f"{value:g}"  # noqa: E731
    for row in rows:
        mean = (f"{row['stragglers_mean']:.4g}" if row.get("stragglers_mean") is not None else "",)
        table.add_row(
            row["variant"],
            str(row["num_stragglers"]),
            *(mean if realised else ()),
            *(show(row.get(name)) for name in params),
            f"{row['mse']:.4g}",
            f"{row['acc']:.4f}",
            f"{row['base_acc']:.4f}",
            f"{row['rel_acc']:.4f}",
            f"{row['agreement']:.4f}",
        )
    console = console or Console(width=max(120, Console().width))
    console.print(table)
    tuned = (r for r in rows if any(r.get(name) is not None for name in params))
    for scheme, source in dict.fromkeys((r["scheme"], r["params_source"]) for r in tuned):
        console.print(f"{scheme} parameters: {source}", soft_wrap=True)


def plot_vs_stragglers(
    rows: Sequence[dict[str, Any]], metric: str, path: str | os.PathLike[str], title: str
) -> Path:
    """Plot ``metric`` against S, one line per variant; written atomically as PNG."""
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
    return save_figure(figure, path)


def save_figure(figure: Any, path: str | os.PathLike[str]) -> Path:
    """Save a matplotlib figure as PNG through a temporary file and a rename, then close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        figure.savefig(tmp, dpi=120)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    finally:
        plt.close(figure)
        Path(tmp).unlink(missing_ok=True)
    return path
