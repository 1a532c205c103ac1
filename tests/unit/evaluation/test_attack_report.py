"""The result table and plots of rows with adversaries: the A column, the detection columns under
their own headers, the plot against A at a single S."""

from rich.console import Console

from nercc.evaluation import report
from nercc.evaluation.report import adversary_axis, plot_vs_stragglers, print_results


def _row(variant, s, a, precision=None, recall=None, flagged=None):
    return {
        "scheme": variant, "variant": variant, "num_inputs": 4, "num_workers": 12,
        "num_stragglers": s, "stragglers_mean": float(s), "stragglers_max": s,
        "few_answers": 0.0, "num_adversaries": a, "adversary": "sign_flip",
        "adversary_placement": "random", "params_source": "given", "mse": 1.0 + a,
        "mse_se": 0.1, "mse_lo": 0.8 + a, "mse_hi": 1.2 + a, "acc": 0.9, "base_acc": 0.9,
        "rel_acc": 1.0, "rel_acc_se": 0.01, "rel_acc_lo": 0.98, "rel_acc_hi": 1.0,
        "agreement": 0.9, "detection_precision": precision, "detection_recall": recall,
        "flagged_mean": flagged, "num_inputs_evaluated": 64, "num_patterns": 32,
    }  # fmt: skip


ROWS = [
    _row("plain", 2, 0), _row("plain", 2, 3),
    _row("robust", 2, 0, None, None, 0.25), _row("robust", 2, 3, 0.875, 0.5, 1.75),
]  # fmt: skip


def test_the_table_shows_a_and_each_detection_number_under_its_header():
    console = Console(record=True, width=250)
    print_results(ROWS, "attack", console=console)
    text = console.export_text()
    lines = text.splitlines()
    (header,) = [line for line in lines if "precision" in line]
    (robust,) = [line for line in lines if "robust" in line and "0.875" in line]
    for name, value in (("precision", "0.875"), ("recall", "0.5"), ("flagged", "1.75")):
        start = header.index(name)
        assert value in robust[start - 8 : start + len(name) + 2], name
    assert header.index(" A ") < header.index("mse")
    assert "A adversarial workers: sign_flip (random)" in text


def test_rows_of_one_s_and_several_a_are_drawn_against_a(tmp_path, monkeypatch):
    assert adversary_axis(ROWS) and not adversary_axis([_row("x", 2, 0), _row("x", 4, 0)])
    figures = []
    save = report.save_figure
    monkeypatch.setattr(report, "save_figure", lambda f, p: figures.append(f) or save(f, p))
    plot_vs_stragglers(ROWS, "mse", tmp_path / "mse.png", "mse")
    (axis,) = figures[-1].axes
    assert axis.get_xlabel().startswith("adversarial workers A")
    (line, _) = axis.get_lines()
    assert list(line.get_xdata()) == [0, 3]
