"""Straggler rules at their edges: S = N - 1 is served and S = N refused, and a deadline keeps
exactly the workers whose own drawn time meets it (plus the fastest one)."""

import pytest
import torch

from nercc.stragglers import (
    BernoulliStragglers,
    FixedStragglers,
    LatencyStragglers,
    WorstCaseStragglers,
)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


MODELS = {
    "fixed": lambda s: FixedStragglers(s),
    "bernoulli": lambda s: BernoulliStragglers(num_stragglers=s),
    "worst_case_random": lambda s: WorstCaseStragglers(s, placement="random"),
    "latency": lambda s: LatencyStragglers(num_stragglers=s),
}


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("num_workers", [2, 5, 12])
def test_one_answering_worker_is_allowed_and_none_is_refused(name, num_workers):
    """S = N - 1 leaves one worker: allowed (check passes, patterns keep one worker); S = N
    leaves none: refused with the documented message."""
    model = MODELS[name](num_workers - 1)
    model.check(num_workers)  # must not raise
    drawn = model.sample(64, num_workers, gen()).available
    assert drawn.shape == (64, num_workers)
    assert bool(drawn.any(dim=1).all())  # at least one worker answers in every pattern
    if name != "bernoulli":  # the others drop exactly S
        assert drawn.sum(dim=1).tolist() == [1] * 64
    # and the single worker kept varies with the pattern (not always the same one)
    if name in ("fixed", "latency"):
        assert len(torch.unique(drawn.float().argmax(dim=1))) > 1
    too_many = MODELS[name](num_workers)
    with pytest.raises(ValueError, match=f"at most num_workers - 1 = {num_workers - 1}"):
        too_many.check(num_workers)
    with pytest.raises(ValueError, match=f"got {num_workers}"):
        too_many.sample(1, num_workers, gen())


def test_the_boundary_through_the_evaluation_factory():
    from nercc.coding import BACC
    from nercc.evaluation import SchemeVariant
    from nercc.evaluation.module import straggler_models

    variants = [SchemeVariant("bacc", BACC(4, 10))]
    models = straggler_models(FixedStragglers, [0, 9], variants)
    assert sorted(models) == [0, 9] and models[9].num_stragglers == 9
    with pytest.raises(ValueError, match="S=10 for scheme bacc"):
        straggler_models(FixedStragglers, [9, 10], variants)


@pytest.mark.parametrize(
    ("deadline", "kwargs"),
    [
        (1.5, dict(shift=1.0, rate=2.0)),
        (1.05, dict(shift=1.0, rate=1.0)),  # most workers miss it
        (3.0, dict(distribution="pareto", scale=2.0, shape=3.0)),
    ],
)
def test_deadline_keeps_exactly_the_workers_on_time_plus_the_fastest(deadline, kwargs):
    model = LatencyStragglers(deadline=deadline, **kwargs)
    drawn = model.sample(3000, 9, gen(4))
    times = drawn.times
    # Reference computed from the returned times, independently of the model's own masking.
    expected = times <= deadline
    fastest = times.argmin(dim=1)
    expected[torch.arange(len(times)), fastest] = True
    assert torch.equal(drawn.available, expected)
    # The deadline really drops workers (the test could not pass with every worker kept) ...
    late = (~expected).float().mean().item()
    assert late > 0.1
    # ... and some patterns have nobody on time: only the fastest is kept there.
    nobody = ~(times <= deadline).any(dim=1)
    if deadline == 1.05:
        assert int(nobody.sum()) > 0
        assert drawn.available[nobody].sum(dim=1).tolist() == [1] * int(nobody.sum())


def test_deadline_times_are_the_distributions_own_draws():
    """The times that come back are those of :meth:`times` from the same generator state, so the
    mask above is checked against the draws that decided it, not against other numbers."""
    model = LatencyStragglers(deadline=1.5, shift=1.0, rate=2.0)
    drawn = model.sample(200, 6, gen(7))
    torch.testing.assert_close(drawn.times, model.times(200, 6, gen(7)), rtol=0, atol=0)
    # shifted exponential, written out: shift - log(u) / rate with u from the same generator
    u = torch.rand(200, 6, generator=gen(7), dtype=torch.float64)
    torch.testing.assert_close(drawn.times, 1.0 - torch.log(u) / 2.0)
    # A fraction exp(-rate * (deadline - shift)) = exp(-1) of the workers is late.
    late = (drawn.times > 1.5).float().mean().item()
    assert abs(late - 0.3679) < 0.05
    assert abs((~drawn.available).float().mean().item() - late) < 0.01
