"""Standard errors and 95 % intervals of ``mse`` and ``rel_acc`` over (group, pattern) draws.

References: (1) coverage of a synthetic law whose mean is known (per-draw noise variance
Gamma(2, rate 2), mean 1; per-draw probability correct Beta(0.5, 0.5), mean 1/2), with random
numbers of real inputs per draw as a padded remainder group has; (2) the per-draw values of the
module's own run recomputed here with numpy one group at a time, and their SE written two ways
(the n-1 sample sd over sqrt(draws) when every draw is full, the delta method's covariance form
otherwise); (3) two processes' sums reduced as torchmetrics reduces them; (4) the table and the
plots.
"""

import math

import numpy as np
import pytest
import torch
from rich.console import Console
from torch.nn.functional import one_hot

from nercc.coding import BACC, NeRCC, Replication
from nercc.evaluation import SchemeVariant, report
from nercc.evaluation.metrics import INTERVAL_Z, CodedMetrics
from nercc.evaluation.module import stable_seed
from nercc.evaluation.report import plot_vs_stragglers, print_results
from nercc.stragglers import FixedStragglers
from tests.unit.evaluation.test_module import run_module
from tests.unit.evaluation.test_straggler_counts import fake_gather

K, C = 4, 3


def simulated_batch(generator, groups=25, patterns=4):
    """Pairs of ``groups * patterns`` independent draws of the synthetic law: for the MSE
    (estimates, reference, labels, valid) and for the accuracy (the same with one-hot logits),
    a draw having 1..K real inputs."""
    shape = (groups, patterns)
    variance = torch.distributions.Gamma(2.0, 2.0).sample(shape)  # per draw, mean 1
    real = torch.randint(1, K + 1, shape, generator=generator)
    valid = torch.arange(K) < real[..., None]
    reference = torch.randn(groups, 1, K, C, generator=generator)
    noise = (
        torch.randn(groups, patterns, K, C, generator=generator) * variance[..., None, None].sqrt()
    )
    labels = torch.randint(0, C, (groups, 1, K), generator=generator)
    mse_pairs = (reference + noise, reference, labels, valid)
    p = torch.distributions.Beta(0.5, 0.5).sample(shape)  # per draw, mean 1/2
    right = torch.rand(groups, patterns, K, generator=generator) < p[..., None]
    decoded = one_hot(torch.where(right, labels, (labels + 1) % C), C).float()
    # The classifier is wrong on the first input of every group: base_acc < 1, fixed.
    base = one_hot(torch.where(torch.arange(K) == 0, (labels + 1) % C, labels), C).float()
    return mse_pairs, (decoded, base, labels, valid), groups * patterns


def test_intervals_cover_the_known_mean_95_percent_of_the_time():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    covered, naive = [], []
    for _ in range(400):
        mse_metric, acc_metric = CodedMetrics(), CodedMetrics()
        for _ in range(4):  # batches of 100 draws
            mse_pairs, acc_pairs, draws = simulated_batch(generator)
            lost = torch.zeros(acc_pairs[-1].shape, dtype=torch.bool)
            mse_metric.update(*mse_pairs, lost, draws)
            acc_metric.update(*acc_pairs, lost, draws)
        m, a = mse_metric.compute(), acc_metric.compute()
        assert m["mse_hi"] - m["mse"] == pytest.approx(INTERVAL_Z * m["mse_se"])
        # base_acc is fixed for the inputs: covering acc's mean 1/2 is covering 1/2 / base_acc
        covered.append(
            (
                m["mse_lo"] <= 1.0 <= m["mse_hi"],
                a["rel_acc_lo"] <= 0.5 / a["base_acc"] <= a["rel_acc_hi"],
            )
        )
        # Pairs of a draw share its p: a binomial SE over pairs is too small.
        half = INTERVAL_Z * math.sqrt(a["acc"] * (1 - a["acc"]) / int(acc_metric.pairs))
        naive.append(abs(a["acc"] - 0.5) <= half)
    coverage = np.mean(covered, axis=0)
    assert 0.92 <= coverage[0] <= 0.98 and 0.92 <= coverage[1] <= 0.98, coverage
    assert np.mean(naive) < 0.9  # the check can tell a wrong SE


def per_draw(variant, s, net, data, patterns, batch_size, seed):
    """Each (group, pattern) draw's squared error summed over its real inputs (averaged over
    logits), its number correct and its number of real inputs, recomputed with numpy."""
    scheme, k, n = variant.scheme, variant.scheme.num_inputs, variant.scheme.num_workers
    classify = lambda x: net.layers(torch.as_tensor(x, dtype=torch.float32)).double().numpy()  # noqa: E731
    images, labels = data.images.numpy().astype(np.float64), data.labels.numpy()
    draws = []
    for start in range(0, len(images), batch_size):
        x, y = images[start : start + batch_size], labels[start : start + batch_size]
        groups = -(-len(x) // k)
        generator = torch.Generator().manual_seed(stable_seed(seed, s, n, start))
        masks = FixedStragglers(s).sample(groups * patterns, n, generator).available.numpy()
        for g in range(groups):
            real = [g * k + j for j in range(k) if g * k + j < len(x)]
            members = [(g * k + j) % len(x) for j in range(k)]
            reference = classify(x[real])
            outputs = classify(scheme.encoder_matrix() @ x[members].reshape(k, -1))
            for t in range(patterns):
                decoded = (scheme.decoder_matrix(masks[g * patterns + t]) @ outputs)[: len(real)]
                kept = decoded.any(axis=1)  # a lost input decodes to zeros and counts as wrong
                draws.append(
                    (
                        np.mean((decoded - reference) ** 2, axis=1).sum(),
                        np.sum((decoded.argmax(axis=1) == y[real]) & kept),
                        len(real),
                    )
                )
    return np.array(draws, dtype=np.float64).T


VARIANTS = [
    SchemeVariant("nercc", NeRCC(8, 20, 1e-5, 1e-3)),
    SchemeVariant("bacc", BACC(8, 20)),
    SchemeVariant("replication", Replication(8, 2)),  # loses inputs at S = 12
]


@pytest.mark.parametrize("count", [48, 50])  # every draw full; a remainder group of 2 inputs
def test_standard_errors_match_the_per_draw_values(count):
    module, net, data = run_module(VARIANTS, [5, 12], patterns=3, count=count)
    assert len(module.results) == 6
    for row in module.results:
        variant = next(v for v in VARIANTS if v.label == row["variant"])
        error, correct, real = per_draw(variant, row["num_stragglers"], net, data, 3, 24, 3)
        draws = len(real)
        assert row["num_patterns"] == draws and real.sum() == count * 3
        mse, acc = error.sum() / real.sum(), correct.sum() / real.sum()
        assert row["mse"] == pytest.approx(mse, rel=1e-5)
        if count == 48:  # K real inputs in every draw: the sd of the per-draw means
            assert (real == 8).all()
            mse_se = np.std(error / real, ddof=1) / math.sqrt(draws)
            acc_se = np.std(correct / real, ddof=1) / math.sqrt(draws)
        else:  # the ratio's delta method: Var(y - R n) from the sample covariance of (y, n)
            assert sorted(set(real)) == [2, 8]
            mse_se, acc_se = (
                math.sqrt(np.array([1, -r]) @ np.cov(y, real) @ np.array([1, -r]) / draws)
                / real.mean()
                for y, r in ((error, mse), (correct, acc))
            )
        assert row["mse_se"] == pytest.approx(mse_se, rel=1e-4)
        assert row["rel_acc_se"] == pytest.approx(acc_se / row["base_acc"], rel=1e-9, abs=1e-15)
        for name, se in (("mse", row["mse_se"]), ("rel_acc", row["rel_acc_se"])):
            assert row[f"{name}_lo"] == pytest.approx(row[name] - 1.96 * se, rel=1e-12)
            assert row[f"{name}_hi"] == pytest.approx(row[name] + 1.96 * se, rel=1e-12)
        assert row["mse_se"] > 0 and row["rel_acc_se"] > 0
    keys = list(module.results[0])
    at = keys.index("mse")
    assert keys[at : at + 4] == ["mse", "mse_se", "mse_lo", "mse_hi"]
    at = keys.index("rel_acc")
    assert keys[at : at + 5] == ["rel_acc", "rel_acc_se", "rel_acc_lo", "rel_acc_hi", "agreement"]


def test_one_draw_has_no_interval_and_equal_draws_a_zero_one():
    metric = CodedMetrics()
    reference = torch.randn(1, 1, K, C)
    labels, valid = reference.argmax(-1), torch.ones(1, 1, K, dtype=torch.bool)
    metric.update(reference + 1.0, reference, labels, valid, ~valid, 1)
    one = metric.compute()
    assert one["mse"] == pytest.approx(1.0) and one["rel_acc"] == 1.0
    for key in ("mse_se", "mse_lo", "mse_hi", "rel_acc_se", "rel_acc_lo", "rel_acc_hi"):
        assert math.isnan(one[key]), key
    metric.update(reference + 1.0, reference, labels, valid, ~valid, 1)
    two = metric.compute()
    assert two["mse_se"] == 0.0 and two["mse_lo"] == two["mse_hi"] == pytest.approx(1.0)
    assert two["rel_acc_se"] == 0.0 and two["rel_acc_lo"] == two["rel_acc_hi"] == 1.0
    with pytest.raises(ValueError, match="patterns must be the number of draws.*got 3"):
        metric.update(reference, reference, labels, valid, ~valid, 3)


def test_two_processes_reduce_the_draw_sums_exactly():
    generator = torch.Generator().manual_seed(5)
    torch.manual_seed(5)
    batches = [simulated_batch(generator, groups=5, patterns=2) for _ in range(4)]
    single, ranks = CodedMetrics(), [CodedMetrics(), CodedMetrics()]
    for i, (pairs, _, draws) in enumerate(batches):
        lost = torch.zeros(pairs[-1].shape, dtype=torch.bool)
        single.update(*pairs, lost, draws)
        ranks[i % 2].update(*pairs, lost, draws)
    for name in CodedMetrics.SUMS:
        assert ranks[0]._reductions[name].__name__ == "dim_zero_sum", name
    ranks[0].dist_sync_fn = fake_gather(*ranks)
    ranks[0].distributed_available_fn = lambda: True
    one, two = single.compute(), ranks[0].compute()
    assert one.keys() == two.keys()
    for key in one:
        assert two[key] == pytest.approx(one[key], rel=1e-12), key
    alone = ranks[1].compute()
    assert alone["mse_se"] != pytest.approx(one["mse_se"], rel=1e-3)  # the reduction combined


def test_table_and_plots_show_the_intervals(tmp_path, monkeypatch):
    module, _, _ = run_module(VARIANTS[:2], [0, 5, 12], patterns=3)
    rows = module.results
    console = Console(record=True, width=200)
    print_results(rows, "intervals", console=console)
    text = console.export_text()
    for row in rows:
        assert f"{row['mse']:.4g} ± {1.96 * row['mse_se']:.2g}" in text
        assert f"{row['rel_acc']:.4f} ± {1.96 * row['rel_acc_se']:.2g}" in text
    assert "95 % interval" in text
    figures = []
    save = report.save_figure
    monkeypatch.setattr(report, "save_figure", lambda f, p: figures.append(f) or save(f, p))
    for metric in ("mse", "rel_acc"):
        path = plot_vs_stragglers(rows, metric, tmp_path / f"{metric}.png", metric)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        (axis,) = figures[-1].axes
        bands = axis.collections
        assert len(bands) == 2  # one shaded band per variant
        for band, variant in zip(bands, ("nercc", "bacc"), strict=True):
            ys = band.get_paths()[0].vertices[:, 1]
            mine = [r for r in rows if r["variant"] == variant]
            assert ys.min() == pytest.approx(min(r[f"{metric}_lo"] for r in mine))
            assert ys.max() == pytest.approx(max(r[f"{metric}_hi"] for r in mine))
