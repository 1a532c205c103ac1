"""Straggler models: counts, distributions, the adversarial block and bad parameters."""

import numpy as np
import pytest
import torch

from nercc.coding import BACC, NeRCC
from nercc.stragglers import (
    BernoulliStragglers,
    FixedStragglers,
    LatencyStragglers,
    WorstCaseStragglers,
)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_fixed_exact_count_uniform_and_seeded():
    drawn = FixedStragglers(7).sample(4000, 20, gen()).available
    assert drawn.dtype == torch.bool and drawn.shape == (4000, 20)
    assert bool(((~drawn).sum(dim=1) == 7).all())
    frequency = (~drawn).float().mean(dim=0)
    # Each worker straggles with probability 7/20; 4000 draws: std ~ 0.0075.
    torch.testing.assert_close(frequency, torch.full((20,), 0.35), atol=0.04, rtol=0)
    assert torch.equal(drawn, FixedStragglers(7).sample(4000, 20, gen()).available)
    assert not torch.equal(drawn, FixedStragglers(7).sample(4000, 20, gen(1)).available)


def test_bernoulli_rate_and_never_empty():
    drawn = BernoulliStragglers(p=0.3).sample(5000, 10, gen()).available
    assert abs((~drawn).float().mean().item() - 0.3) < 0.02
    expected = BernoulliStragglers(num_stragglers=5).sample(5000, 20, gen()).available
    assert abs((~expected).float().mean().item() - 0.25) < 0.02
    nearly_all = BernoulliStragglers(p=0.95).sample(500, 3, gen()).available
    assert bool(nearly_all.any(dim=1).all())


def test_worst_case_block_is_adjacent_and_adversarial():
    scheme = NeRCC(6, 16, lam_dec=1e-4)
    model = WorstCaseStragglers(5)
    drawn = model.sample(3, 16, gen(), scheme).available
    assert bool((drawn == drawn[0]).all())
    stragglers = torch.nonzero(~drawn[0]).flatten()
    assert torch.equal(stragglers, torch.arange(int(stragglers[0]), int(stragglers[0]) + 5))
    # Brute force over every offset, with the error written out independently.
    errors = []
    for offset in range(12):
        mask = np.ones(16, dtype=bool)
        mask[offset : offset + 5] = False
        product = scheme.decoder_matrix(mask) @ scheme.encoder_matrix()
        errors.append(np.linalg.norm(product - np.eye(6)))
    # The block at either end is worst here (the points are symmetric: a tie up to rounding).
    assert errors[int(stragglers[0])] == pytest.approx(max(errors), rel=1e-12)
    assert max(errors) > 1.2 * sorted(errors)[len(errors) // 2]
    bacc = BACC(6, 16)
    assert model.worst_offset(bacc) in range(12)


def test_worst_case_random_offsets_vary():
    drawn = WorstCaseStragglers(3, placement="random").sample(200, 10, gen()).available
    offsets = (~drawn).float().argmax(dim=1)
    assert len(torch.unique(offsets)) == 8
    assert bool(((~drawn).sum(dim=1) == 3).all())


def test_latency_keeps_the_fastest():
    drawn = LatencyStragglers(num_stragglers=4).sample(50, 12, gen())
    assert drawn.times is not None and drawn.times.shape == (50, 12)
    slowest_kept = torch.where(drawn.available, drawn.times, -torch.inf).max(dim=1).values
    fastest_dropped = torch.where(~drawn.available, drawn.times, torch.inf).min(dim=1).values
    assert bool((slowest_kept < fastest_dropped).all())
    assert bool(((~drawn.available).sum(dim=1) == 4).all())


def test_latency_deadline_and_distributions():
    model = LatencyStragglers(deadline=1.5, shift=1.0, rate=2.0)
    drawn = model.sample(4000, 8, gen())
    assert torch.equal(
        drawn.available | (drawn.times == drawn.times.min(1, keepdim=True).values), drawn.available
    )
    within = drawn.times <= 1.5
    assert torch.equal(drawn.available | within, drawn.available) and bool(
        drawn.available.any(1).all()
    )
    times = model.times(20000, 1, gen())
    assert times.min() >= 1.0 and abs(times.mean().item() - 1.5) < 0.02  # shift + 1 / rate
    pareto = LatencyStragglers(num_stragglers=1, distribution="pareto", scale=2.0, shape=3.0)
    sample = pareto.times(20000, 1, gen())
    assert sample.min() >= 2.0 and abs(sample.median().item() - 2.0 * 2 ** (1 / 3)) < 0.03


@pytest.mark.parametrize(
    ("build", "text"),
    [
        (lambda: FixedStragglers(10).sample(1, 10, gen()), "at most num_workers - 1 = 9"),
        (lambda: FixedStragglers(-1), "num_stragglers must be an integer >= 0, got -1"),
        (lambda: FixedStragglers(2.5), "got 2.5"),
        (lambda: BernoulliStragglers(p=1.0), r"p must lie in \[0, 1\), got 1.0"),
        (lambda: BernoulliStragglers(p=-0.1), "got -0.1"),
        (lambda: BernoulliStragglers(), "p or num_stragglers"),
        (lambda: WorstCaseStragglers(2, placement="middle"), "'middle'"),
        (lambda: WorstCaseStragglers(2).sample(1, 5, gen()), "needs the scheme"),
        (lambda: LatencyStragglers(), "num_stragglers or deadline must be given, got neither"),
        (lambda: LatencyStragglers(12, deadline=1.0).sample(1, 12, gen()), "at most"),
        (lambda: LatencyStragglers(2, distribution="normal"), "'normal'"),
        (lambda: LatencyStragglers(2, rate=0.0), "rate must be a finite number > 0, got 0.0"),
        (lambda: LatencyStragglers(deadline=-1.0), "deadline must be a number > 0, got -1.0"),
    ],
)
def test_bad_parameters(build, text):
    with pytest.raises(ValueError, match=text):
        build()


def test_uses_num_stragglers_says_how_s_is_honoured():
    assert FixedStragglers(3).uses_num_stragglers is True
    assert WorstCaseStragglers(3, placement="random").uses_num_stragglers is True
    assert LatencyStragglers(num_stragglers=3).uses_num_stragglers is True
    assert BernoulliStragglers(num_stragglers=3).uses_num_stragglers == "expected"
    assert BernoulliStragglers(num_stragglers=3, p=0.3).uses_num_stragglers is False
    assert BernoulliStragglers(p=0.3).uses_num_stragglers is False
    assert LatencyStragglers(num_stragglers=3, deadline=1.5).uses_num_stragglers is False
    assert LatencyStragglers(deadline=1.5).uses_num_stragglers is False


@pytest.mark.parametrize(
    "build",
    [
        lambda s: BernoulliStragglers(num_stragglers=s, p=0.3),
        lambda s: LatencyStragglers(num_stragglers=s, deadline=1.5),
    ],
)
def test_a_model_that_ignores_s_draws_the_same_patterns_for_every_s(build):
    """What ``uses_num_stragglers is False`` promises: S is a label, the draws do not see it."""
    drawn = [build(s).sample(300, 10, gen()).available for s in (0, 2, 7)]
    assert torch.equal(drawn[0], drawn[1]) and torch.equal(drawn[0], drawn[2])
    counts = (~drawn[0]).sum(dim=1)
    assert len(torch.unique(counts)) > 2  # a random count, not S


def test_expected_count_follows_s():
    """With ``p=None`` the mean count is S (binomial sd sqrt(N p (1-p) / P) ~ 0.03 here), but
    single patterns vary."""
    for s in (2, 5):
        counts = (~BernoulliStragglers(num_stragglers=s).sample(4000, 20, gen()).available).sum(1)
        assert abs(counts.double().mean().item() - s) < 5 * (s * (1 - s / 20) / 4000) ** 0.5
        assert len(torch.unique(counts)) > 3
