"""Result tables and plots of a coded evaluation."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from nercc.coding import SCHEMES  # noqa: E402
from nercc.evaluation.variants import SPREAD_SUFFIXES  # noqa: E402
from nercc.utils.io import save_figure  # noqa: E402

__all__ = [
    "DETECTION_COLUMNS",
    "FIXED_COLUMNS",
    "INTERVAL_METRICS",
    "adversary_axis",
    "few_answers_note",
    "param_columns",
    "plot_vs_stragglers",
    "print_results",
    "save_figure",
    "spread_columns",
]


#: The columns of a result row that are not a scheme's parameters.
FIXED_COLUMNS = (
    "scheme", "variant", "num_inputs", "num_workers", "order", "grouping", "num_stragglers",
    "stragglers_mean", "stragglers_max", "few_answers", "num_adversaries", "adversary",
    "adversary_placement", "params_source", "mse", "mse_se", "mse_lo", "mse_hi", "acc", "base_acc",
    "rel_acc", "rel_acc_se", "rel_acc_lo", "rel_acc_hi", "agreement", "detection_precision",
    "detection_recall", "flagged_mean", "recon_share", "recon_agreement", "recon_agreement_se",
    "recon_agreement_lo", "recon_agreement_hi", "recon_acc", "recon_acc_se", "recon_acc_lo",
    "recon_acc_hi", "num_inputs_evaluated", "num_patterns",
)  # fmt: skip

#: The detection columns of a screening decoder's rows (None in the others').
DETECTION_COLUMNS = ("detection_precision", "detection_recall", "flagged_mean")

#: The metrics whose rows carry a 95 % interval (``<metric>_lo``, ``<metric>_hi``).
INTERVAL_METRICS = ("mse", "rel_acc")


def _interval(row: dict[str, Any], metric: str) -> tuple[float, float] | None:
    """The row's finite (lo, hi) of ``metric``, or None (no interval: one draw, older rows)."""
    lo, hi = row.get(f"{metric}_lo"), row.get(f"{metric}_hi")
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    return lo, hi


def _with_interval(row: dict[str, Any], metric: str, shown: str) -> str:
    """``shown`` (the formatted value), then `` ± `` the interval's half-width when it has one."""
    interval = _interval(row, metric)
    return shown if interval is None else f"{shown} ± {(interval[1] - interval[0]) / 2:.2g}"


def _is_spread(column: str, columns: Sequence[str]) -> bool:
    """``column`` is ``<name>_min`` or ``<name>_max`` of another column ``<name>``."""
    return any(
        column.endswith(suffix) and column[: -len(suffix)] in columns for suffix in SPREAD_SUFFIXES
    )


def param_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The schemes' parameter columns of result rows: for NeRCC ``lam_enc``, ``lam_dec``,
    ``df_enc``, ``df_dec`` (the median over each row's patterns of what they were decoded with).
    The spread columns (``<name>_min``, ``<name>_max``) are statistics of these, not parameters
    of their own: they are left out (see :func:`spread_columns`)."""
    columns = [c for c in dict.fromkeys(c for r in rows for c in r) if c not in FIXED_COLUMNS]
    return [c for c in columns if not _is_spread(c, columns)]


def spread_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The spread columns of result rows: ``<name>_min`` and ``<name>_max`` of a parameter."""
    columns = [c for c in dict.fromkeys(c for r in rows for c in r) if c not in FIXED_COLUMNS]
    return [c for c in columns if _is_spread(c, columns)]


def _shown(row: dict[str, Any], name: str, fmt: str) -> str:
    """A parameter's median, then ``[min, max]`` where the row has a spread of it."""
    value = row.get(name)
    if value is None:
        return ""
    low, high = row.get(f"{name}_min"), row.get(f"{name}_max")
    text = format(value, fmt)
    if low is not None and high is not None and low != high:
        text += f" [{low:{fmt}}, {high:{fmt}}]"
    return text


def _alternatives() -> dict[str, str]:
    """Every declared parameter that is another way to give a setting, to that setting's name
    (NeRCC: ``df_enc`` to ``lam_enc``, ``df_dec`` to ``lam_dec``), over every scheme class."""
    return {
        tunable.name: tunable.alternative_of
        for scheme in SCHEMES.values()
        for tunable in scheme.tunables
        if tunable.alternative_of is not None
    }


def _param_cells(params: Sequence[str]) -> list[tuple[str, Any]]:
    """The table's parameter columns: (header, row -> cell). A setting and its alternative (a
    lambda and the df of the same side) share one column, ``lam_dec (df)``: ``1e-06 (17.2)``,
    each with its spread, to three significant digits (the rows keep every digit); other
    parameters show alone."""
    shared = {
        setting: alternative
        for alternative, setting in _alternatives().items()
        if setting in params and alternative in params
    }
    cells = []
    for name in params:
        if name in shared.values():
            continue  # shown beside its setting
        other = shared.get(name)
        if other is not None:

            def cell(row: dict[str, Any], first: str = name, second: str = other) -> str:
                one, two = _shown(row, first, ".3g"), _shown(row, second, ".3g")
                if one and two:
                    return f"{one} ({two})"
                return one or two

            # the header names the alternative by its prefix: lam_dec (df)
            cells.append((f"{name} ({other.split('_')[0]})", cell))
        else:
            cells.append((name, lambda row, name=name: _shown(row, name, "g")))
    return cells


def print_results(
    rows: Sequence[dict[str, Any]], title: str, console: Console | None = None
) -> None:
    """A rich table: one line per (variant, S), with the schemes' parameters.

    Each parameter shows the median over the row's patterns of what they were decoded with,
    then ``[min, max]`` where they differ; a lambda and the effective degrees of freedom of the
    same side share a column (``lam_dec (df)``: ``0.0001 [1e-06, 0.01] (12.3 [9.1, 15])``).

    When the realised mean number of stragglers differs from S in some row (a straggler model
    that draws a random count), an ``S mean`` column shows it next to S. ``mse`` and ``rel_acc``
    show ``value ± half-width`` of their 95 % interval (1.96 standard errors over the
    (group, pattern) draws, see :class:`~nercc.evaluation.metrics.CodedMetrics`); the value
    alone where a row has none (a single draw).

    Where some rows were decoded from fewer answers than inputs (``few_answers`` > 0), a note
    line after the table names them, with the fraction of their draws.
    """
    params = param_columns(rows)
    realised = any(
        r.get("stragglers_mean") is not None and r["stragglers_mean"] != r["num_stragglers"]
        for r in rows
    )
    attacked = any(r.get("num_adversaries") for r in rows)
    detecting = any(r.get(c) is not None for r in rows for c in DETECTION_COLUMNS)
    intervals = any(_interval(r, m) for r in rows for m in INTERVAL_METRICS)
    caption = "±: 95 % interval, 1.96 SE over (group, pattern) draws" if intervals else None
    arranged = dict.fromkeys(
        f"inputs ordered {r['order']}, grouped {r['grouping']}"
        for r in rows
        if (r.get("order"), r.get("grouping")) not in ((None, None), ("none", "arrival"))
    )
    caption = "; ".join(filter(None, [caption, *arranged])) or None
    table = Table(title=title, caption=caption)
    table.add_column("scheme", no_wrap=True)
    counts = ("S", "S mean") if realised else ("S",)
    if attacked:
        counts = (*counts, "A")
    cells = _param_cells(params)
    headers = [header for header, _ in cells]
    found = ("precision", "recall", "flagged") if detecting else ()
    for column in (*counts, *headers, "mse", "acc", "base_acc", "rel_acc", "agreement", *found):
        table.add_column(column, justify="right")
    order = {label: i for i, label in enumerate(dict.fromkeys(r["variant"] for r in rows))}
    # a line per variant, S then A increasing (a table of per-S parameters splits a scheme in
    # variants)
    for row in sorted(
        rows,
        key=lambda r: (order[r["variant"]], r["num_stragglers"], r.get("num_adversaries") or 0),
    ):
        mean = (f"{row['stragglers_mean']:.4g}" if row.get("stragglers_mean") is not None else "",)
        table.add_row(
            row["variant"],
            str(row["num_stragglers"]),
            *(mean if realised else ()),
            *((str(row.get("num_adversaries") or 0),) if attacked else ()),
            *(cell(row) for _, cell in cells),
            _with_interval(row, "mse", f"{row['mse']:.4g}"),
            f"{row['acc']:.4f}",
            f"{row['base_acc']:.4f}",
            _with_interval(row, "rel_acc", f"{row['rel_acc']:.4f}"),
            f"{row['agreement']:.4f}",
            *(_number(row.get(c), ".3g") for c in DETECTION_COLUMNS if detecting),
        )
    if attacked:
        adversaries = dict.fromkeys(
            f"{r['adversary']} ({r['adversary_placement']})" for r in rows if r.get("adversary")
        )
        table.caption = "; ".join(
            filter(None, [caption, f"A adversarial workers: {', '.join(adversaries)}"])
        )
    if console is None:  # as wide as the table needs (the intervals widen it), at least 120
        natural = Console(width=1000).measure(table).maximum
        console = Console(width=max(120, Console().width, natural))
    console.print(table)
    note = few_answers_note(rows)
    if note is not None:
        console.print(note, soft_wrap=True)
    tuned = (r for r in rows if any(r.get(name) is not None for name in params))
    for scheme, source in dict.fromkeys((r["scheme"], r["params_source"]) for r in tuned):
        console.print(f"{scheme} parameters: {source}", soft_wrap=True)


def _number(value: Any, fmt: str) -> str:
    """``value`` formatted, or empty for None."""
    return "" if value is None else format(value, fmt)


def few_answers_note(rows: Sequence[dict[str, Any]]) -> str | None:
    """One line naming the rows with draws decoded from fewer answers than inputs (K), with the
    fraction of their draws, or None when there are none."""
    few = [r for r in rows if r.get("few_answers")]
    if not few:
        return None
    parts = {}
    for row in few:
        parts.setdefault(row["variant"], {})[
            f"S={row['num_stragglers']} {row['few_answers']:.0%}"
        ] = None  # once per S (the rows of several A share their patterns)
    listed = "; ".join(f"{variant} at {', '.join(cells)}" for variant, cells in parts.items())
    return (
        f"few_answers: fewer than K={few[0]['num_inputs']} workers answered (the estimates are "
        f"underdetermined) in this fraction of the draws: {listed}"
    )


def adversary_axis(rows: Sequence[dict[str, Any]]) -> bool:
    """Whether the rows are best drawn against A: several A values and a single S."""
    return (
        len({r.get("num_adversaries") or 0 for r in rows}) > 1
        and len({r["num_stragglers"] for r in rows}) == 1
    )


def plot_vs_stragglers(
    rows: Sequence[dict[str, Any]], metric: str, path: str | os.PathLike[str], title: str
) -> Path:
    """Plot ``metric`` against S, one line per variant; written atomically as PNG.

    Rows of several A (adversarial workers) at a single S are drawn against A instead
    (:func:`adversary_axis`); rows of several A and several S get one line per variant and A.
    Where the rows carry ``<metric>_lo`` and ``<metric>_hi`` (mse, rel_acc), each line gets a
    shaded band of its 95 % interval; on the log axis of an mse plot a lower end at or below 0
    runs off the bottom of the axis, whose limits follow the values and the positive ends.
    """
    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    nan = (float("nan"),) * 2
    banded = False
    against_a = adversary_axis(rows)
    several_a = len({r.get("num_adversaries") or 0 for r in rows}) > 1 and not against_a

    def line_of(row: dict[str, Any]) -> str:
        a = row.get("num_adversaries") or 0
        return f"{row['variant']}, A={a}" if several_a else row["variant"]

    def x_of(row: dict[str, Any]) -> int:
        return (row.get("num_adversaries") or 0) if against_a else row["num_stragglers"]

    for label in dict.fromkeys(line_of(r) for r in rows):
        points = sorted(
            (x_of(r), r[metric], *(_interval(r, metric) or nan))
            for r in rows
            if line_of(r) == label
        )
        xs, ys, lows, highs = zip(*points, strict=True)
        (line,) = axis.plot(xs, ys, marker="o", label=label)
        if any(math.isfinite(lo) for lo in lows):
            axis.fill_between(xs, lows, highs, color=line.get_color(), alpha=0.2, linewidth=0)
            banded = True
    if metric == "mse" and all(r["mse"] > 0 and math.isfinite(r["mse"]) for r in rows):
        axis.set_yscale("log")
        ends = [
            value
            for r in rows
            for value in (r["mse"], *(_interval(r, "mse") or ()))
            if value > 0 and math.isfinite(value)
        ]
        axis.set_ylim(min(ends) / 1.25, max(ends) * 1.25)
    if against_a:
        axis.set_xlabel(f"adversarial workers A (S = {rows[0]['num_stragglers']})")
    else:
        axis.set_xlabel("stragglers S")
    axis.set_ylabel(f"{metric} (band: 95 % interval)" if banded else metric)
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path)
