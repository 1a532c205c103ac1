"""The realised number of stragglers in every result row (``stragglers_mean``, ``stragglers_max``).

References: for the fixed model, S itself; for the others, the counts of the very patterns the
module draws, recomputed here from its seeds (``stable_seed(seed, S, N, first input)``), and the
binomial law: with P patterns of N workers each straggling with probability p, the mean count has
sd ``sqrt(N p (1 - p) / P)``.
"""

from functools import partial

import numpy as np
import pytest
import torch
from rich.console import Console

from nercc.coding import BACC, NeRCC
from nercc.evaluation import CodedInferenceModule, SchemeVariant
from nercc.evaluation.data import ShardedBatchSampler
from nercc.evaluation.metrics import CodedMetrics
from nercc.evaluation.module import stable_seed
from nercc.evaluation.report import param_columns, print_results
from nercc.stragglers import BernoulliStragglers, LatencyStragglers
from tests.unit.evaluation.test_module import FakeData, TinyNet, run_module

VARIANTS = [SchemeVariant("nercc", NeRCC(8, 20, 1e-5, 1e-3)), SchemeVariant("bacc", BACC(8, 20))]


def drawn_counts(model, s, n=20, count=50, batch_size=24, k=8, patterns=2, seed=3):
    """The straggler count of every pattern the module draws for S = s, batch by batch."""
    counts = []
    for start in range(0, count, batch_size):
        groups = -(-min(batch_size, count - start) // k)
        generator = torch.Generator().manual_seed(stable_seed(seed, s, n, start))
        available = model.sample(groups * patterns, n, generator).available
        counts.append((~available).sum(dim=1).numpy())
    return np.concatenate(counts)


def test_fixed_rows_realise_exactly_s():
    module, _, _ = run_module(VARIANTS, [0, 5, 12])
    assert len(module.results) == 6
    for row in module.results:
        s = row["num_stragglers"]
        assert row["stragglers_mean"] == s and row["stragglers_max"] == s
        assert isinstance(row["stragglers_mean"], float) and isinstance(row["stragglers_max"], int)
    assert "stragglers_mean" not in param_columns(module.results)


def test_bernoulli_with_p_reports_p_n_not_the_label():
    factory = partial(BernoulliStragglers, p=0.3)
    patterns = 20
    module, _, _ = run_module(VARIANTS, [3], patterns=patterns, factory=factory)
    expected = drawn_counts(BernoulliStragglers(num_stragglers=3, p=0.3), 3, patterns=patterns)
    assert len(expected) == 7 * patterns  # 3 + 3 + 1 groups
    sd = (20 * 0.3 * 0.7 / len(expected)) ** 0.5  # ~0.17
    for row in module.results:
        assert row["num_patterns"] == len(expected)
        assert row["stragglers_mean"] == pytest.approx(expected.mean(), rel=1e-12)
        assert row["stragglers_max"] == expected.max()
        assert abs(row["stragglers_mean"] - 0.3 * 20) < 4 * sd
        assert abs(row["stragglers_mean"] - 3) > 10 * sd  # the label S = 3 is not what happened


def test_bernoulli_expected_count_and_latency_deadline_rows():
    module, _, _ = run_module(VARIANTS, [4], patterns=20, factory=BernoulliStragglers)
    expected = drawn_counts(BernoulliStragglers(num_stragglers=4), 4, patterns=20)
    sd = (20 * 0.2 * 0.8 / len(expected)) ** 0.5
    for row in module.results:
        assert row["stragglers_mean"] == pytest.approx(expected.mean(), rel=1e-12)
        assert abs(row["stragglers_mean"] - 4) < 4 * sd and row["stragglers_max"] > 4
    factory = partial(LatencyStragglers, deadline=1.5, shift=1.0, rate=2.0)
    module, _, _ = run_module(VARIANTS, [2], factory=factory)
    expected = drawn_counts(factory(num_stragglers=2), 2)
    # P(time > 1.5) = exp(-1): about 7.4 of 20 late, nothing like the label S = 2.
    for row in module.results:
        assert row["stragglers_mean"] == pytest.approx(expected.mean(), rel=1e-12)
        assert row["stragglers_max"] == expected.max()
        assert row["stragglers_mean"] > 5


@pytest.mark.parametrize(
    "factory",
    [partial(BernoulliStragglers, p=0.3), partial(LatencyStragglers, deadline=1.5)],
)
def test_a_model_that_ignores_s_is_refused_for_several_s(factory):
    with pytest.raises(ValueError, match=r"stragglers: .* ignores S.*stragglers=\[0, 5\]"):
        CodedInferenceModule(TinyNet(), VARIANTS, [0, 5], factory)
    CodedInferenceModule(TinyNet(), VARIANTS, [5, 5], factory)  # one S, repeated: one label


def fake_gather(mine, theirs):
    """What ``gather_all_tensors`` returns to rank 0 of two: each state of both processes."""

    def gather(tensor, group=None):
        (name,) = [a for a in mine._reductions if getattr(mine, a) is tensor]
        return [tensor, getattr(theirs, name)]

    return gather


def test_two_process_reduction_gives_the_one_process_counts():
    """Two modules each test half of the batches (as ShardedBatchSampler deals them); their
    metrics reduce through torchmetrics' own reduction with a stand-in for the all-gather."""
    factory = partial(BernoulliStragglers, p=0.3)
    data = FakeData(50)

    def build():
        return CodedInferenceModule(
            TinyNet(), VARIANTS, [3], factory, num_patterns=5, chunk_size=7, seed=3
        )

    def test(module, rank, world):
        for batch in ShardedBatchSampler(50, 12, rank, world):
            index = torch.as_tensor(batch)
            with torch.no_grad():
                module.test_step((data.images[index], data.labels[index], index), 0)

    single = build()
    test(single, 0, 1)
    single.on_test_epoch_end()
    ranks = [build(), build()]
    for rank, module in enumerate(ranks):
        test(module, rank, 2)
    for i in range(len(VARIANTS)):
        mine, theirs = ranks[0].metrics[i][0], ranks[1].metrics[i][0]
        assert mine.patterns > 0 and theirs.patterns > 0  # both processes drew patterns
        mine.dist_sync_fn = fake_gather(mine, theirs)
        mine.distributed_available_fn = lambda: True
    ranks[0].on_test_epoch_end()
    assert len(single.results) == len(ranks[0].results) == 2
    for one, two in zip(single.results, ranks[0].results, strict=True):
        assert one.keys() == two.keys()
        assert two["stragglers_mean"] == one["stragglers_mean"]  # sums of integers: exact
        assert two["stragglers_max"] == one["stragglers_max"]
        assert two["num_patterns"] == one["num_patterns"] == 9 * 5  # groups 2+2+2+2+1, T = 5
        assert two["mse"] == pytest.approx(one["mse"], rel=1e-12)
        for key in ("mse_se", "mse_lo", "mse_hi", "rel_acc_se", "rel_acc_lo", "rel_acc_hi"):
            assert two[key] == pytest.approx(one[key], rel=1e-9), key  # sums, then one formula
        assert abs(one["stragglers_mean"] - 6) < 4 * (20 * 0.21 / one["num_patterns"]) ** 0.5
    # One rank alone has another mean: the reduction really combined them.
    alone = ranks[1].metrics[0][0].compute()["stragglers_mean"]
    assert alone != single.results[0]["stragglers_mean"]


def test_metrics_check_and_reduce_the_counts():
    metric = CodedMetrics()
    logits = torch.zeros(2, 1, 3, 4)
    args = (logits, logits, torch.zeros(2, 1, 3, dtype=torch.long))
    mask = torch.ones(2, 1, 3, dtype=torch.bool)
    metric.update(*args, mask, ~mask, 2, torch.tensor([3, 7]))
    metric.update(*args, mask, ~mask, 2, torch.tensor([1, 5]))
    values = metric.compute()
    assert (values["stragglers_mean"], values["stragglers_max"]) == (4.0, 7)
    with pytest.raises(ValueError, match=r"stragglers must have shape \(2,\)"):
        metric.update(*args, mask, ~mask, 2, torch.tensor([1, 2, 3]))


def test_print_results_shows_the_realised_mean_only_when_it_differs():
    fixed, _, _ = run_module(VARIANTS[1:], [0, 5])
    console = Console(record=True, width=160)
    print_results(fixed.results, "fixed", console=console)
    assert "S mean" not in console.export_text()
    rows = [dict(row) for row in fixed.results]
    rows[1]["stragglers_mean"] = 6.0125
    console = Console(record=True, width=160)
    print_results(rows, "bernoulli", console=console)
    text = console.export_text()
    assert "S mean" in text and "6.013" in text
