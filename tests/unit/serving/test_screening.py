"""The exclusion of lying workers without Ray: the flag window, the threshold over the whole window,
the cap, a fresh window after an exclusion; and a Byzantine worker's own answer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nercc.adversaries import GaussianAdversary, SignFlipAdversary
from nercc.serving import workers as workers_module
from nercc.serving.screening import FlagTracker
from nercc.serving.workers import Worker, adversary_seed, delay_seed, pack_input


def test_a_worker_flagged_in_more_than_the_fraction_of_its_window_is_excluded_once():
    """window 4, fraction 0.5: excluded at the third flag among its last 4 answered groups
    (3 > 2), not at the second; the groups where it did not answer do not count."""
    tracker = FlagTracker(5, fraction=0.5, window=4)
    assert tracker.limit == 2
    assert tracker.record(0, [0, 1, 2], [1]) == []
    assert tracker.record(1, [0, 2], []) == []  # worker 1 did not answer: its window is unmoved
    assert tracker.record(2, [0, 1, 2], [1]) == []  # 2 flags of 2 answered: not more than 2
    assert tracker.recent_flags(1) == 2
    assert tracker.record(3, [0, 1, 2], [1]) == [1]  # 3 of 3 > 2
    assert tracker.exclusions == [(3, 1)]
    assert tracker.recent_flags(1) == 0  # a fresh window after the exclusion
    assert tracker.flagged_by_worker == [0, 3, 0, 0, 0]
    assert tracker.answered_by_worker == [4, 3, 4, 0, 0]


def test_old_flags_leave_the_window():
    """Flags older than the last ``window`` answered groups do not count: T T F F F T T holds at
    most 2 flags in any 4 consecutive groups, so the worker is never excluded, although 4 of its
    7 groups flagged it."""
    tracker = FlagTracker(1, fraction=0.5, window=4)
    for group, hit in enumerate([True, True, False, False, False, True, True]):
        assert tracker.record(group, [0], [0] if hit else []) == []
    assert tracker.recent_flags(0) == 2 and tracker.flagged_by_worker == [4]


def test_exclusion_threshold_counts_every_step():
    """The decision after each group looks at that group's window: here the 8th group makes
    the last four True, True, False, True = 3 > 2, which excludes."""
    tracker = FlagTracker(1, fraction=0.5, window=4)
    pattern = [True, False, False, False, True, True, False, True]
    excluded_at = [g for g, hit in enumerate(pattern) if tracker.record(g, [0], [0] if hit else [])]
    assert excluded_at == [7]


def test_already_excluded_workers_and_the_cap():
    """A worker excluded now is not excluded again; at most ``max_excluded`` at once, counting
    those excluded now."""
    tracker = FlagTracker(4, fraction=0.0, window=3, max_excluded=2)
    assert tracker.record(0, [0, 1, 2, 3], [0, 1, 2], excluded={3}) == [0]  # 1 now + 1 = cap
    assert tracker.record(1, [1, 2], [1, 2], excluded={3, 0}) == []  # the cap is reached
    assert tracker.record(2, [1, 2], [1, 2], excluded={0}) == [1]
    assert tracker.exclusions == [(0, 0), (2, 1)]
    assert tracker.flagged_by_worker == [1, 3, 3, 0]  # every flag counted once


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="fraction must be a number >= 0 and < 1, got 1.0"):
        FlagTracker(3, fraction=1.0)
    with pytest.raises(ValueError, match="window must be an integer >= 1, got 0"):
        FlagTracker(3, window=0)
    with pytest.raises(ValueError, match="max_excluded must be null or an integer >= 0"):
        FlagTracker(3, max_excluded=-1)
    tracker = FlagTracker(3)
    with pytest.raises(ValueError, match=r"worker must be in \[0, 3\), got 3"):
        tracker.record(0, [0, 3], [])
    with pytest.raises(ValueError, match=r"flagged must be workers that answered \[0, 1\]"):
        tracker.record(0, [0, 1], [2])


@pytest.fixture
def make_worker(monkeypatch):
    monkeypatch.setattr(workers_module, "freeze_startup_heap", lambda: None)

    def make(index=0, adversary=None, seed=0):
        return Worker(index, lambda: torch.nn.Flatten(), None, False, seed, adversary)

    return make


def test_a_byzantine_worker_corrupts_its_own_answer(make_worker):
    """sign_flip: -scale x the model's answer; gaussian: the answer plus noise drawn from the
    worker's (seed, index, group, attempt) stream, apart from its delays', the same after a
    restart; an honest worker answers the model."""
    coded = np.arange(1, 7, dtype=np.float32).reshape(1, 2, 3)
    honest = make_worker(index=2)
    liar = make_worker(index=2, adversary=SignFlipAdversary(scale=10.0))
    message = pack_input(5, 0, coded)
    np.testing.assert_array_equal(
        np.frombuffer(honest.compute(message), dtype=np.float32), coded.ravel()
    )
    np.testing.assert_array_equal(
        np.frombuffer(liar.compute(message), dtype=np.float32), -10.0 * coded.ravel()
    )
    noisy = make_worker(index=2, adversary=GaussianAdversary(scale=1.0), seed=3)
    again = make_worker(index=2, adversary=GaussianAdversary(scale=1.0), seed=3)
    first = np.frombuffer(noisy.compute(message), dtype=np.float32)
    assert np.array_equal(first, np.frombuffer(again.compute(message), dtype=np.float32))
    assert not np.allclose(first, coded.ravel())
    # the noise is the adversary's draw from the worker's stream for (seed 3, worker 2, group 5)
    generator = torch.Generator().manual_seed(adversary_seed(3, 2, 5))
    expected = GaussianAdversary(scale=1.0).attack(
        torch.from_numpy(coded.reshape(1, 1, 6)), np.ones((1, 1), bool), 1, generator
    )
    np.testing.assert_array_equal(first, expected.outputs.numpy().ravel())
    other = np.frombuffer(noisy.compute(pack_input(5, 1, coded)), dtype=np.float32)
    assert not np.array_equal(first, other)  # a resent input draws its own
    assert adversary_seed(3, 2, 5) != delay_seed(3, 2, 5)
