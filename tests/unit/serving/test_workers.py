"""The worker's delays and slow set without Ray: seeded per group and attempt, restart-proof."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nercc.serving import workers as workers_module
from nercc.serving.workers import Worker, delay_seed, pack_input, slow_workers, unpack_input
from nercc.stragglers import DelayModel


@pytest.fixture
def make_worker(monkeypatch):
    monkeypatch.setattr(workers_module, "freeze_startup_heap", lambda: None)

    def make(index=0, delays=None, slow=False, seed=0, extra_models=()):
        return Worker(index, lambda: torch.nn.Flatten(), delays, slow, seed, None, extra_models)

    return make


def test_delays_follow_the_model_from_a_stream_per_worker_group_and_attempt(make_worker):
    delays = DelayModel("shifted_exponential", shift=2.0, rate=0.5)
    worker = make_worker(index=3, delays=delays, seed=7)
    drawn = np.array([worker.delay_ms(group) for group in range(4000)])
    # shift + Exp(rate): mean 2 + 1 / 0.5 = 4 ms (SE 2/sqrt(4000) = 0.03), minimum the shift
    assert drawn.min() >= 2.0 and abs(drawn.mean() - 4.0) < 0.15
    again = make_worker(index=3, delays=delays, seed=7)  # a restarted worker draws the same
    assert [again.delay_ms(g) for g in range(50)] == list(drawn[:50])
    other = make_worker(index=4, delays=delays, seed=7)
    assert [other.delay_ms(g) for g in range(50)] != list(drawn[:50])
    assert worker.delay_ms(5, attempt=1) != worker.delay_ms(5)
    assert delay_seed(7, 3, 5) == delay_seed(7, 3, 5, 0) != delay_seed(7, 3, 5, 1)


def test_a_slow_worker_is_slow_factor_times_slower(make_worker):
    delays = DelayModel("shifted_exponential", shift=1.0, rate=1.0, slow_factor=10.0)
    fast = make_worker(index=2, delays=delays, slow=False)
    slow = make_worker(index=2, delays=delays, slow=True)
    for group in range(20):
        assert slow.delay_ms(group) == pytest.approx(10.0 * fast.delay_ms(group), rel=1e-12)


def test_no_delay_model_answers_at_once_and_computes_the_model(make_worker):
    worker = make_worker()
    assert worker.delay_ms(0) == 0.0
    coded = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    logits = worker.compute(pack_input(4, 0, coded))
    np.testing.assert_array_equal(np.frombuffer(logits, dtype=np.float32), coded.ravel())


def test_messages_round_trip():
    coded = np.random.default_rng(0).random((1, 3, 5, 7)).astype(np.float32)
    group, attempt, back, model = unpack_input(pack_input(123456789, 2, coded, model=3))
    assert (group, attempt, model) == (123456789, 2, 3)
    np.testing.assert_array_equal(back, coded)
    assert back.flags.writeable
    assert unpack_input(pack_input(1, 0, coded)).model == 0  # the classifier by default


class Doubled(torch.nn.Module):
    """An extra model built from the classifier: twice its output."""

    def __init__(self, base: torch.nn.Module) -> None:
        super().__init__()
        self.base = base

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2.0 * self.base(x)


def test_a_message_runs_the_model_it_names_and_an_unknown_model_is_refused(make_worker):
    worker = make_worker(extra_models=(Doubled,))
    coded = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    base = np.frombuffer(worker.compute(pack_input(0, 0, coded)), dtype=np.float32)
    extra = np.frombuffer(worker.compute(pack_input(0, 0, coded, model=1)), dtype=np.float32)
    np.testing.assert_array_equal(base, coded.ravel())
    np.testing.assert_array_equal(extra, 2.0 * coded.ravel())
    with pytest.raises(ValueError, match=r"model must be in \[0, 2\).*got 2"):
        worker.compute(pack_input(0, 0, coded, model=2))


def test_slow_workers_are_drawn_once_from_the_seed():
    model = DelayModel(slow_fraction=0.25)
    chosen = slow_workers(model, 12, seed=0)
    assert len(chosen) == 3 and chosen == slow_workers(model, 12, seed=0)
    assert len({tuple(slow_workers(model, 12, seed=s)) for s in range(20)}) > 1
    assert slow_workers(None, 12, 0) == [] and slow_workers(DelayModel(), 12, 0) == []
