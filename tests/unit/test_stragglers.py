"""Straggler models: counts, distributions, the adversarial block and bad parameters."""

import re

import numpy as np
import pytest
import torch

from nercc.coding import BACC, NeRCC
from nercc.stragglers import (
    BernoulliStragglers,
    DelayModel,
    FixedStragglers,
    LatencyStragglers,
    Setting,
    WaitPolicy,
    WorstCaseStragglers,
    several_s_refusal,
)
from tests.processes import fresh_python


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
        (
            lambda: BernoulliStragglers(p=1.0),
            r"p must be null or a finite number in \[0, 1\), got 1.0",
        ),
        (lambda: BernoulliStragglers(p=True), "got True"),
        (lambda: BernoulliStragglers(p=-0.1), "got -0.1"),
        (lambda: BernoulliStragglers(), "p or num_stragglers"),
        (lambda: WorstCaseStragglers(2, placement="middle"), "'middle'"),
        (lambda: WorstCaseStragglers(2).sample(1, 5, gen()), "needs the scheme"),
        (lambda: LatencyStragglers(), "num_stragglers or deadline must be given, got neither"),
        (lambda: LatencyStragglers(12, deadline=1.0).sample(1, 12, gen()), "at most"),
        (lambda: LatencyStragglers(2, distribution="normal"), "'normal'"),
        (lambda: LatencyStragglers(2, rate=0.0), "rate must be a finite number > 0, got 0.0"),
        (
            lambda: LatencyStragglers(deadline=-1.0),
            "deadline must be null or a finite number > 0, got -1.0",
        ),
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


# -- the latency model in two pieces: DelayModel (worker delays) and WaitPolicy (the master) ------
def reference_times(p, n, generator, distribution="shifted_exponential", **params):
    """The base delays written out: inverse CDFs of u ~ U(0, 1] drawn as the model draws them."""
    u = torch.rand(p, n, generator=generator, dtype=torch.float64).clamp_min(1e-300)
    if distribution == "shifted_exponential":
        return params["shift"] - torch.log(u) / params["rate"]
    return params["scale"] * u ** (-1 / params["shape"])


BASES = [
    dict(distribution="shifted_exponential", shift=0.5, rate=3.0),
    dict(distribution="pareto", scale=2.0, shape=1.5),
]


@pytest.mark.parametrize("params", BASES)
def test_delay_base_times_are_the_inverse_cdf_draws(params):
    """Bit-identical to the formula (the draws of LatencyStragglers before the split, so old
    results reproduce), and the generator is left where one (P, N) float64 draw leaves it."""
    g, g_ref = gen(11), gen(11)
    times = DelayModel(**params).times(300, 7, g)
    expected = reference_times(300, 7, g_ref, **params)
    assert times.dtype == torch.float64 and times.shape == (300, 7)
    assert torch.equal(times, expected)
    assert torch.equal(torch.rand(5, generator=g), torch.rand(5, generator=g_ref))
    # The old entry point gives the same numbers.
    assert torch.equal(LatencyStragglers(2, **params).times(300, 7, gen(11)), expected)


def test_slow_count_rounds_half_up():
    """floor(f N + 0.5): 0.25 of 10 is 3 and 0.05 of 10 is 1 (Python's round: 2 and 0)."""
    assert [DelayModel(slow_fraction=0.25).slow_count(n) for n in (1, 2, 4, 10)] == [0, 1, 1, 3]
    assert DelayModel(slow_fraction=0.05).slow_count(10) == 1
    assert DelayModel(slow_fraction=0.04).slow_count(10) == 0
    assert DelayModel().slow_count(1000) == 0


def test_slow_workers_per_pattern_are_exactly_slow_factor_times_the_base():
    model = DelayModel(shift=1.0, rate=2.0, slow_fraction=0.25, slow_factor=7.0)
    times = model.times(4000, 10, gen(3))
    base = reference_times(4000, 10, gen(3), shift=1.0, rate=2.0)  # drawn first, same numbers
    slow = times != base
    assert slow.sum(dim=1).tolist() == [3] * 4000  # slow_count(10) = 3 in every pattern
    assert torch.equal(times[slow], base[slow] * 7.0)
    assert torch.equal(times[~slow], base[~slow])
    # Uniform over the workers: each slow with probability 3/10 (sd ~ 0.007 over 4000 rows).
    frequency = slow.double().mean(dim=0)
    torch.testing.assert_close(
        frequency, torch.full((10,), 0.3, dtype=torch.float64), atol=0.03, rtol=0
    )
    assert torch.equal(times, model.times(4000, 10, gen(3)))


def test_no_slow_worker_draws_nothing_more():
    """A fraction that rounds to no slow worker draws as slow_fraction=0 (same generator use)."""
    g, g_ref = gen(2), gen(2)
    times = DelayModel(slow_fraction=0.04).times(50, 10, g)
    assert torch.equal(times, reference_times(50, 10, g_ref, shift=1.0, rate=1.0))
    assert torch.equal(torch.rand(5, generator=g), torch.rand(5, generator=g_ref))


@pytest.mark.parametrize("fraction", [0.0, 0.5])
def test_a_given_slow_mask_is_honoured(fraction):
    """The mask names the slow workers, whatever slow_fraction says, and nothing more is drawn."""
    model = DelayModel(distribution="pareto", scale=2.0, shape=3.0, slow_fraction=fraction)
    base = reference_times(6, 4, gen(5), distribution="pareto", scale=2.0, shape=3.0)
    column = torch.tensor([True, False, False, True])
    g, g_ref = gen(5), gen(5)
    times = model.times(6, 4, g, slow=column)
    reference_times(6, 4, g_ref, distribution="pareto", scale=2.0, shape=3.0)
    assert torch.equal(torch.rand(5, generator=g), torch.rand(5, generator=g_ref))
    assert torch.equal(times[:, column], base[:, column] * 10.0)
    assert torch.equal(times[:, ~column], base[:, ~column])
    per_pattern = torch.rand(6, 4, generator=gen(9)) < 0.5
    times = model.times(6, 4, gen(5), slow=per_pattern)
    assert torch.equal(times, torch.where(per_pattern, base * 10.0, base))


RARE = dict(distribution="shifted_exponential", shift=5.0, rate=0.5)


@pytest.mark.parametrize("params", [*BASES, dict(RARE, slow_fraction=0.25, slow_factor=3.0)])
def test_slow_probability_zero_draws_as_before(params):
    """The default (0) draws bit for bit what the model drew without the setting, and leaves
    the generator where it did (reference: the base formula, then the slow-worker draw)."""
    g, g_ref = gen(21), gen(21)
    times = DelayModel(**params, slow_probability=0.0).times(200, 10, g)
    expected = reference_times(200, 10, g_ref, **params)
    if params.get("slow_fraction"):
        order = torch.rand(200, 10, generator=g_ref, dtype=torch.float64).argsort(dim=1)
        slow = torch.zeros(200, 10, dtype=torch.bool).scatter_(1, order[:, :3], True)
        expected = torch.where(slow, expected * params["slow_factor"], expected)
    assert torch.equal(times, expected)
    assert torch.equal(torch.rand(5, generator=g), torch.rand(5, generator=g_ref))
    assert DelayModel(**params) == DelayModel(**params, slow_probability=0)


def test_slow_answers_are_slow_factor_times_the_base_with_the_given_probability():
    """Each answer is slow with probability 0.05, independently: over 20000 x 10 draws (seed 7)
    the slow fraction is 0.05 within 0.003 (6 standard errors, sd = sqrt(.05 .95 / 2e5) =
    0.00049), each of the 10 workers' within 0.008 (5 sd, sd 0.0015); a slow answer is exactly
    10 x its base draw, the others exactly the base; the mean is (shift + 1/rate)(1 + p (f - 1))
    = 7 x 1.45."""
    model = DelayModel(**RARE, slow_probability=0.05, slow_factor=10.0)
    g = gen(7)
    times = model.times(20000, 10, g)
    base = reference_times(20000, 10, gen(7), **RARE)  # the same first draws
    slow = times != base
    assert torch.equal(times[slow], base[slow] * 10.0)
    assert torch.equal(times[~slow], base[~slow])
    assert abs(slow.double().mean().item() - 0.05) < 0.003
    per_worker = slow.double().mean(dim=0)
    assert float((per_worker - 0.05).abs().max()) < 0.008
    # mean 10.15; the sd of one delay is about 14, of the mean over 2e5 about 0.03
    assert abs(times.mean().item() - 7.0 * 1.45) < 0.2
    # independent of the base draw: the slow answers' base delays have the base mean (7)
    assert abs(base[slow].mean().item() - 7.0) < 0.2


def test_slow_answers_come_on_top_of_slow_workers_from_the_generator_after_the_base():
    """Slow answers are drawn after the base delays (and after the per-pattern slow workers)
    from the same generator; a slow worker's slow answer is slow_factor ** 2 times its base."""
    model = DelayModel(**RARE, slow_fraction=0.25, slow_factor=3.0, slow_probability=0.2)
    g = gen(13)
    base = reference_times(400, 8, g, **RARE)
    order = torch.rand(400, 8, generator=g, dtype=torch.float64).argsort(dim=1)
    workers = torch.zeros(400, 8, dtype=torch.bool).scatter_(1, order[:, :2], True)
    answers = torch.rand(400, 8, generator=g, dtype=torch.float64) < 0.2
    expected = torch.where(workers, base * 3.0, base)  # the slow workers first, then answers
    expected = torch.where(answers, expected * 3.0, expected)
    assert torch.equal(model.times(400, 8, gen(13)), expected)
    both = workers & answers
    assert bool(both.any()) and torch.allclose(expected[both], base[both] * 9.0, rtol=1e-15)
    # with a fixed mask the slow answers are drawn right after the base delays
    column = torch.tensor([True, False] * 4)
    g = gen(13)
    base = reference_times(400, 8, g, **RARE)
    answers = torch.rand(400, 8, generator=g, dtype=torch.float64) < 0.2
    expected = torch.where(column, base * 3.0, base)
    expected = torch.where(answers, expected * 3.0, expected)
    assert torch.equal(model.times(400, 8, gen(13), slow=column), expected)


def test_latency_stragglers_pass_slow_probability_to_their_delays():
    model = LatencyStragglers(2, **RARE, slow_probability=0.1)
    assert model.slow_probability == 0.1 and model.delays.slow_probability == 0.1
    delays = DelayModel(**RARE, slow_probability=0.1)
    assert torch.equal(model.times(50, 6, gen(3)), delays.times(50, 6, gen(3)))


def test_slow_workers_is_a_seeded_uniform_set():
    model = DelayModel(slow_fraction=0.3)
    drawn = torch.stack([model.slow_workers(10, gen(seed)) for seed in range(2000)])
    assert drawn.dtype == torch.bool and drawn.shape == (2000, 10)
    assert drawn.sum(dim=1).tolist() == [3] * 2000
    assert torch.equal(drawn[0], model.slow_workers(10, gen(0)))
    assert len({tuple(row.tolist()) for row in drawn}) > 100  # C(10, 3) = 120 sets
    frequency = drawn.double().mean(dim=0)  # sd ~ 0.01
    torch.testing.assert_close(
        frequency, torch.full((10,), 0.3, dtype=torch.float64), atol=0.05, rtol=0
    )
    assert not bool(DelayModel().slow_workers(10, gen()).any())


def test_wait_keeps_the_first_n_minus_s_answers():
    times = reference_times(500, 12, gen(4), shift=1.0, rate=1.0)
    kept = WaitPolicy(num_stragglers=4).keep(times)
    expected = np.zeros((500, 12), dtype=bool)
    np.put_along_axis(expected, np.argsort(times.numpy(), axis=1)[:, :8], True, axis=1)
    assert kept.dtype == torch.bool and np.array_equal(kept.numpy(), expected)


def test_wait_with_a_deadline_keeps_those_on_time_and_the_fastest():
    times = torch.tensor([[0.5, 2.0, 1.0, 3.0], [2.5, 4.0, 2.1, 3.0], [0.1, 0.2, 0.3, 0.4]])
    expected = torch.tensor(
        [[True, False, True, False], [False, False, True, False], [True, True, True, True]]
    )
    for s in (None, 0, 3):  # S is a label only
        assert torch.equal(WaitPolicy(num_stragglers=s, deadline=1.0).keep(times), expected)


def test_wait_quorum_and_uses_num_stragglers():
    assert WaitPolicy(num_stragglers=3).quorum(10) == 7
    assert WaitPolicy(num_stragglers=9).quorum(10) == 1
    assert WaitPolicy(num_stragglers=0).quorum(4) == 4
    assert WaitPolicy(num_stragglers=3, deadline=2.0).quorum(10) == 10
    assert WaitPolicy(deadline=2.0).quorum(1) == 1
    assert WaitPolicy(num_stragglers=3).uses_num_stragglers is True
    assert WaitPolicy(num_stragglers=3, deadline=2.0).uses_num_stragglers is False
    WaitPolicy(num_stragglers=9).check(10)  # S = N - 1 is served


@pytest.mark.parametrize(
    ("num_stragglers", "deadline", "params"),
    [
        (3, None, dict(shift=1.0, rate=2.0)),
        (3, None, dict(distribution="pareto", scale=2.0, shape=3.0, slow_fraction=0.2)),
        (0, 1.6, dict(shift=1.0, rate=2.0, slow_fraction=0.25, slow_factor=4.0)),
        (None, 3.0, dict(distribution="pareto", scale=2.0, shape=3.0)),
    ],
)
def test_latency_is_the_wait_policy_over_the_delays(num_stragglers, deadline, params):
    model = LatencyStragglers(num_stragglers=num_stragglers, deadline=deadline, **params)
    delays, wait = DelayModel(**params), WaitPolicy(num_stragglers, deadline)
    assert model.delays == delays and model.wait == wait
    drawn = model.sample(400, 12, gen(8))
    times = delays.times(400, 12, gen(8))
    assert torch.equal(drawn.times, times)
    assert torch.equal(drawn.available, wait.keep(times))
    for key, value in params.items():
        assert getattr(model, key) == value
    assert (model.num_stragglers, model.deadline) == (num_stragglers, deadline)


def test_latency_repr_reads_as_the_call():
    model = LatencyStragglers(3, rate=2, slow_fraction=0.1)
    text = (
        "LatencyStragglers(num_stragglers=3, deadline=None, distribution='shifted_exponential', "
        "shift=1.0, rate=2.0, scale=1.0, shape=2.0, slow_fraction=0.1, slow_factor=10.0, "
        "slow_probability=0.0)"
    )
    assert repr(model) == text
    assert repr(eval(text, {"LatencyStragglers": LatencyStragglers})) == text


@pytest.mark.parametrize(
    ("build", "text"),
    [
        (
            lambda: DelayModel(distribution="normal"),
            "distribution must be 'shifted_exponential' or 'pareto', got 'normal'",
        ),
        (lambda: DelayModel(rate=0.0), "rate must be a finite number > 0, got 0.0"),
        (lambda: DelayModel(scale=-1.0), "scale must be a finite number > 0, got -1.0"),
        (lambda: DelayModel(shape=float("inf")), "shape must be a finite number > 0, got inf"),
        (lambda: DelayModel(shift=-0.5), "shift must be a finite number >= 0, got -0.5"),
        (
            lambda: DelayModel(slow_fraction=1.0),
            "slow_fraction must be a finite number in [0, 1), got 1.0",
        ),
        (
            lambda: DelayModel(slow_fraction=-0.1),
            "slow_fraction must be a finite number in [0, 1), got -0.1",
        ),
        (
            lambda: DelayModel(slow_fraction=float("nan")),
            "slow_fraction must be a finite number in [0, 1), got nan",
        ),
        (
            lambda: DelayModel(slow_fraction=True),
            "slow_fraction must be a finite number in [0, 1), got True",
        ),
        (lambda: DelayModel(slow_factor=0.5), "slow_factor must be a finite number >= 1, got 0.5"),
        (
            lambda: DelayModel(slow_factor="10"),
            "slow_factor must be a finite number >= 1, got '10'",
        ),
        (
            lambda: DelayModel(slow_factor=float("inf")),
            "slow_factor must be a finite number >= 1, got inf",
        ),
        (
            lambda: DelayModel(slow_probability=1.5),
            "slow_probability must be a finite number in [0, 1), got 1.5",
        ),
        (
            lambda: DelayModel(slow_probability=1.0),
            "slow_probability must be a finite number in [0, 1), got 1.0",
        ),
        (
            lambda: DelayModel(slow_probability=-0.01),
            "slow_probability must be a finite number in [0, 1), got -0.01",
        ),
        (
            lambda: LatencyStragglers(1, slow_probability=float("nan")),
            "slow_probability must be a finite number in [0, 1), got nan",
        ),
        (lambda: DelayModel().slow_count(0), "n must be an integer >= 1, got 0"),
        (lambda: DelayModel().slow_workers(2.0, gen()), "n must be an integer >= 1, got 2.0"),
        (lambda: DelayModel().times(-1, 3, gen()), "p must be an integer >= 0, got -1"),
        (
            lambda: DelayModel().times(2, 3, gen(), slow=torch.ones(4, dtype=torch.bool)),
            "slow must be a bool mask of shape (3,) or (2, 3), got torch.bool of shape (4,)",
        ),
        (
            lambda: DelayModel().times(2, 3, gen(), slow=torch.ones(3)),
            "slow must be a bool mask of shape (3,) or (2, 3), got torch.float32 of shape (3,)",
        ),
        (lambda: WaitPolicy(), "num_stragglers or deadline must be given, got neither"),
        (lambda: WaitPolicy(-1), "num_stragglers must be an integer >= 0, got -1"),
        (lambda: WaitPolicy(2.5), "num_stragglers must be an integer >= 0, got 2.5"),
        (lambda: WaitPolicy(deadline=0), "deadline must be null or a finite number > 0, got 0"),
        (lambda: WaitPolicy(deadline=float("nan")), "a finite number > 0, got nan"),
        (lambda: WaitPolicy(deadline=float("inf")), "a finite number > 0, got inf"),
        (
            lambda: WaitPolicy(5).check(5),
            "num_stragglers must be at most num_workers - 1 = 4 (at least one worker must answer), "
            "got 5",
        ),
        (lambda: WaitPolicy(5, deadline=1.0).quorum(5), "at most num_workers - 1 = 4"),
        (lambda: WaitPolicy(deadline=1.0).quorum(0), "n must be an integer >= 1, got 0"),
        (lambda: WaitPolicy(5).keep(torch.rand(2, 5)), "at most num_workers - 1 = 4"),
        (lambda: WaitPolicy(1).keep(torch.rand(5)), "times must have shape (p, n), got shape (5,)"),
        (
            lambda: LatencyStragglers(2, slow_fraction=1.5),
            "slow_fraction must be a finite number in [0, 1), got 1.5",
        ),
        (
            lambda: LatencyStragglers(2, slow_factor=0.0),
            "slow_factor must be a finite number >= 1, got 0.0",
        ),
    ],
)
def test_bad_delay_and_wait_parameters(build, text):
    with pytest.raises(ValueError, match=re.escape(text)):
        build()


# -- the declarations the config checks read ----------------------------------------------------
@pytest.mark.parametrize(
    "cls",
    [FixedStragglers, BernoulliStragglers, WorstCaseStragglers, LatencyStragglers, DelayModel],
)
def test_declared_settings_are_the_constructors_arguments_with_their_defaults(cls):
    """A setting the checks accept is one the constructor takes, with the same default; every
    argument but S is declared."""
    import inspect

    params = inspect.signature(cls).parameters
    declared = {s.name: s.default for s in cls.settings}
    assert declared == {name: p.default for name, p in params.items() if name != "num_stragglers"}
    for setting in cls.settings:  # each default is accepted by its own declaration
        setting.check(setting.default)


@pytest.mark.parametrize(
    ("setting", "value", "text"),
    [
        (Setting("x", low=0.0, low_open=True), 0, "must be a finite number > 0"),
        (Setting("x", low=1.0), float("nan"), "must be a finite number >= 1"),
        (Setting("x", high=2.0, high_open=True), 2, "must be a finite number < 2"),
        (
            Setting("x", low=0.0, high=1.0, high_open=True),
            True,
            "must be a finite number in [0, 1)",
        ),
        (
            Setting("x", optional=True, low=0.5, high=1.0),
            0.25,
            "must be null or a finite number in [0.5, 1]",
        ),
        (Setting("x", options=("a", "b", "c")), "d", "must be 'a', 'b' or 'c'"),
        (Setting("x", options=("a",)), None, "must be 'a'"),
        (Setting("x"), "1", "must be a finite number"),
    ],
)
def test_a_setting_refuses_values_outside_its_declaration(setting, value, text):
    assert setting.refusal(value) == text
    with pytest.raises(ValueError, match=re.escape(f"x {text}, got {value!r}")):
        setting.check(value)


def test_a_setting_accepts_its_ends_where_closed_and_null_where_optional():
    assert Setting("x", low=0.0, high=1.0).refusal(0) is None
    assert Setting("x", low=0.0, high=1.0).refusal(1.0) is None
    assert Setting("x", optional=True, low=0.0).refusal(None) is None
    assert Setting("x", options=("a", "b")).refusal("b") is None


def test_the_settings_that_make_s_a_label_are_the_ones_uses_num_stragglers_sees():
    ignoring = {
        cls.__name__: [s.name for s in cls.settings if s.ignores_s]
        for cls in (FixedStragglers, BernoulliStragglers, WorstCaseStragglers, LatencyStragglers)
    }
    assert ignoring == {
        "FixedStragglers": [],
        "BernoulliStragglers": ["p"],
        "WorstCaseStragglers": [],
        "LatencyStragglers": ["deadline"],
    }
    assert WaitPolicy(deadline=1.0).uses_num_stragglers is False


def test_several_s_are_refused_once_with_the_list_and_the_fix():
    assert several_s_refusal("a deadline", [3]) is None
    assert several_s_refusal("a deadline", [3, 3]) is None
    assert several_s_refusal("a deadline", [0, 5], "give one S (a label)") == (
        "a deadline ignores S, so the rows of stragglers=[0, 5] would be the same run under "
        "different labels; give one S (a label)"
    )


def test_reading_the_declarations_imports_no_torch():
    code = (
        "import sys; from nercc.stragglers import LatencyStragglers as L; L.settings; "
        "L(num_stragglers=2).uses_num_stragglers; print('torch' in sys.modules)"
    )
    assert fresh_python(code) == "False"
