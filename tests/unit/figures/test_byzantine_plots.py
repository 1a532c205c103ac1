"""The Byzantine figures' drawing and tables from hand-made rows: the fitted slopes of a power
law, the theory's slope carried beside them, the ratios of the tables per A."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nercc.figures.plots import plot_adversary_convergence, plot_vs_adversaries
from nercc.figures.summary import per_a_tables

PNG = b"\x89PNG\r\n\x1a\n"


def _row(label, n, mse, a_count, **extra):
    return {"label": label, "panel": extra.pop("panel", "p"), "num_workers": n, "mse": mse,
            "mse_lo": mse * 0.9, "mse_hi": mse * 1.1, "num_adversaries": a_count,
            "num_stragglers": extra.pop("s", 2), **extra}  # fmt: skip


def test_adversary_convergence_fits_each_power_law_and_returns_the_theory(tmp_path):
    ns = [40, 60, 100, 160, 240]
    rows = [_row("R", n, 5.0 * n**-0.6, round(n**0.5), panel="a=0.5") for n in ns]
    rows += [_row("P", n, 2.0 * n**0.25, round(n**0.5), panel="a=0.5") for n in ns]
    rows += [_row("R", n, 7.0 * n**-1.5, round(n**0.3), panel="a=0.3") for n in ns]
    path = tmp_path / "conv.png"
    found = plot_adversary_convergence(rows, path, "t", {"a=0.5": -0.6, "a=0.3": -0.84}, "R")
    assert path.read_bytes()[:8] == PNG
    assert found["slopes"]["a=0.5"] == {"R": pytest.approx(-0.6), "P": pytest.approx(0.25)}
    assert found["slopes"]["a=0.3"] == {"R": pytest.approx(-1.5)}
    assert found["theory"] == {"a=0.5": -0.6, "a=0.3": -0.84}
    assert found["slope_workers"]["a=0.3"]["R"] == ns
    assert found["slope_adversaries"]["a=0.5"]["R"] == [6, 8, 10, 13, 15]
    # a panel the theory does not name gets NaN, and is still drawn
    other = plot_adversary_convergence(rows, tmp_path / "b.png", "t", {})
    assert all(math.isnan(v) for v in other["theory"].values())


def test_vs_adversaries_draws_rows_of_one_s_only(tmp_path):
    rows = [_row("N", 12, 1.0 + a, a, rel_acc=1 - a / 10) for a in range(4)]
    assert plot_vs_adversaries(rows, ["mse", "rel_acc"], tmp_path / "a.png", "t") == {}
    assert (tmp_path / "a.png").read_bytes()[:8] == PNG
    rows.append(_row("N", 12, 1.0, 0, s=4))
    with pytest.raises(
        ValueError, match=r"rows must have one S to be drawn against A, got S=\[2, 4\]"
    ):
        plot_vs_adversaries(rows, ["mse"], tmp_path / "b.png", "t")


def _result(scheme, a, mse, rel_acc, recall=None):
    return {"scheme": scheme, "num_adversaries": a, "num_stragglers": 2, "mse": mse,
            "mse_lo": mse / 2, "mse_hi": mse * 2, "rel_acc": rel_acc, "rel_acc_lo": None,
            "rel_acc_hi": None, "detection_precision": None if recall is None else 1.0,
            "detection_recall": recall,
            "flagged_mean": None if recall is None else 0.5 * a}  # fmt: skip


def test_the_tables_per_a_pair_each_robust_scheme_with_its_plain_one():
    data = {"runs": [
        {"panel": "sign_flip", "labels": {"nercc": "NeRCC", "nercc_robust": "NeRCC robust"},
         "rows": [_result("nercc", 0, 1.0, 1.0), _result("nercc", 2, 40.0, 0.4),
                  _result("nercc_robust", 0, 1.25, 0.98, recall=float("nan")),
                  _result("nercc_robust", 2, 2.0, 0.95, recall=0.9)]},
        {"panel": "sign_flip", "labels": {"bacc": "BACC"},
         "rows": [_result("bacc", 0, 4.0, 0.9), _result("bacc", 2, 80.0, 0.3)]},
    ]}  # fmt: skip
    (panel,) = per_a_tables(data).values()
    assert panel["mse"]["columns"] == ["A", "NeRCC", "NeRCC robust", "BACC",
                                       "NeRCC robust / NeRCC"]  # fmt: skip
    assert panel["mse"]["data"] == [
        ["0", "1 [0.5, 2]", "1.25 [0.625, 2.5]", "4 [2, 8]", "1.25"],
        ["2", "40 [20, 80]", "2 [1, 4]", "80 [40, 160]", "0.05"],
    ]
    assert panel["rel_acc"]["columns"][-3:] == ["NeRCC / its A=0", "NeRCC robust / its A=0",
                                                "BACC / its A=0"]  # fmt: skip
    assert panel["rel_acc"]["data"][1] == ["2", "0.4", "0.95", "0.3", "0.4",
                                           f"{0.95 / 0.98:.3g}", f"{0.3 / 0.9:.3g}"]  # fmt: skip
    assert panel["detection"]["columns"] == [
        "A", "NeRCC robust precision", "NeRCC robust recall", "NeRCC robust flagged"
    ]  # fmt: skip
    assert panel["detection"]["data"] == [["0", "1", "n/a", "0"], ["2", "1", "0.9", "1"]]
    assert np.isclose(float(panel["mse"]["data"][1][-1]), 2.0 / 40.0)
