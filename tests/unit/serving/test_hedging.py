"""The hedging policy (no Ray): when an input is hedged, to which spare, the auto delay's window,
the counts, and the scheme's exact decode."""

from __future__ import annotations

import numpy as np
import pytest

from nercc.serving.hedging import (
    Hedged,
    HedgeDelay,
    Hedger,
    due_inputs,
    hedge_note,
    next_hedge_s,
    pick_spare,
)


@pytest.mark.parametrize(
    ("answered", "in_flight", "hedged", "elapsed", "delay", "due"),
    [
        # before the delay: only an input with nothing in flight (its primary failed or is down)
        ([False, False, False], [1, 0, 1], [False, False, False], 99.9, 100.0, [1]),
        ([False, False, False], [1, 1, 1], [False, False, False], 0.0, 100.0, []),
        # at and after the delay: every unanswered input not hedged yet
        ([False, True, False], [1, 0, 1], [False, False, False], 100.0, 100.0, [0, 2]),
        ([False, True, False], [1, 0, 2], [False, False, True], 500.0, 100.0, [0]),
        # hedged once: not again, unless all its requests failed (nothing in flight)
        ([False, False], [1, 0], [True, True], 1e6, 100.0, [1]),
        # no delay (auto without enough latencies): only the uncovered inputs
        ([False, False], [1, 0], [False, False], 1e6, None, [1]),
        ([True, True], [0, 0], [False, False], 1e6, 1.0, []),
    ],
)
def test_an_input_is_hedged_after_the_delay_or_at_once_when_nothing_covers_it(
    answered, in_flight, hedged, elapsed, delay, due
):
    assert due_inputs(answered, in_flight, hedged, elapsed, delay) == due


def test_due_inputs_refuses_lists_of_different_lengths():
    with pytest.raises(ValueError, match="one entry per input, got lengths 2, 1 and 2"):
        due_inputs([False, False], [1], [False, False], 0.0, 1.0)


def test_the_wait_ends_when_the_next_hedge_falls_due():
    assert next_hedge_s([False, False], [False, False], 30.0, 100.0) == pytest.approx(0.07)
    assert next_hedge_s([False, False], [False, False], 130.0, 100.0) == 0.0
    assert next_hedge_s([True, False], [False, True], 0.0, 100.0) is None  # all done or hedged
    assert next_hedge_s([False], [False], 0.0, None) is None


def test_the_spare_with_the_fewest_requests_in_flight_lowest_index_among_equals():
    in_flight = [9, 9, 2, 1, 1, 0]  # workers 0, 1 are primaries
    assert pick_spare(in_flight, [2, 3, 4, 5]) == 5
    assert pick_spare(in_flight, [2, 3, 4, 5], unavailable={5}) == 3  # 3 and 4 tie: 3
    assert pick_spare(in_flight, [2, 3, 4, 5], unavailable={3, 5}) == 4
    assert pick_spare(in_flight, [2, 3], unavailable={2, 3}) is None
    assert pick_spare(in_flight, []) is None


def test_hedges_spread_over_the_spares():
    """Hedges sent one after the other, none back yet, go round the spares: each pick counts
    as in flight for the next."""
    scheme = Hedged(2, 5, after_ms=10.0)
    hedger = Hedger(scheme)
    picks = []
    for _ in range(6):
        worker = hedger.choose(unavailable=set())
        hedger.sent(worker, "after_delay")
        picks.append(worker)
    assert picks == [2, 3, 4, 2, 3, 4]
    assert hedger.choose(unavailable={2, 3}) == 4


def test_a_fixed_delay_is_the_setting():
    delay = HedgeDelay(12.5)
    assert delay.current() == 12.5 and not delay.auto
    delay.record(1e6)
    assert delay.current() == 12.5


def test_the_auto_delay_is_the_percentile_of_the_last_window_latencies():
    """p95 of 1..20 by linear interpolation: position 0.95 x 19 = 18.05 between 19 and 20. None
    before 100 / (100 - 95) = 20 latencies. The window keeps the last 1000: after 0..1499,
    500..1499, whose p95 is 500 + 0.95 x 999."""
    delay = HedgeDelay("auto", 95.0)
    assert delay.min_samples == 20
    for value in range(1, 20):
        delay.record(float(value))
        assert delay.current() is None
    delay.record(20.0)
    assert delay.current() == pytest.approx(19.05)
    for value in range(1500):
        delay.record(float(value))
    assert delay.current() == pytest.approx(500 + 0.95 * 999)
    rng = np.random.default_rng(0)
    latencies = rng.pareto(1.5, 3000) * 5 + 5
    other = HedgeDelay("auto", 99.0, window=1000)
    for value in latencies:
        other.record(value)
    assert other.current() == pytest.approx(np.percentile(latencies[-1000:], 99.0))


@pytest.mark.parametrize(
    ("percentile", "window", "needed"), [(50, 1000, 2), (99, 1000, 100), (99.95, 1000, 1000)]
)
def test_the_auto_delay_waits_for_enough_latencies_to_see_its_percentile(
    percentile, window, needed
):
    assert HedgeDelay("auto", percentile, window).min_samples == needed


def test_the_counts_of_a_hedger():
    """Two groups of K=2: 4 primaries, one hedge on time and one on a failure (6 requests); 5
    answers back, 4 taken: 1 late answer ignored. The auto delay of the groups: none for the
    first (no latencies yet), one for the second."""
    hedger = Hedger(Hedged(2, 4, after_ms="auto", percentile=50.0))
    assert hedger.group_delay() is None
    sent = [hedger.sent(w, "primary") for w in (0, 1)]
    hedger.finished(0, sent[0], ok=True)
    hedger.finished(1, sent[1], ok=True)
    hedger.accepted(2)
    second = hedger.group_delay()
    assert second is not None
    sent = [hedger.sent(w, "primary") for w in (0, 1)]
    hedge = hedger.sent(2, "after_delay")
    retry = hedger.sent(3, "on_failure")
    assert hedger.in_flight() == [1, 1, 1, 1]
    hedger.finished(0, sent[0], ok=False)  # the primary failed: input 0 went to worker 3
    hedger.finished(3, retry, ok=True)
    hedger.finished(2, hedge, ok=True)  # the hedge of input 1 wins
    hedger.accepted(2)
    assert not hedger.wait_idle(0.0)
    hedger.finished(1, sent[1], ok=True)  # the primary of input 1, late: ignored
    assert hedger.wait_idle(0.0)
    summary = hedger.summary()
    assert summary == {
        "hedge_delay": "auto",
        "hedge_percentile": 50.0,
        "hedge_after_ms": second,
        "primary_requests": 4,
        "hedges": 2,
        "hedge_fraction": 0.5,
        "hedges_after_delay": 1,
        "hedges_on_failure": 1,
        "late_answers": 1,
        "groups": 2,
        "groups_without_delay": 1,
    }
    assert hedge_note(summary).startswith("2 hedges (1 after the delay, 1 on failures) for 4 ")


def test_a_fixed_delay_is_reported_as_set():
    hedger = Hedger(Hedged(3, 4, after_ms=40))
    hedger.group_delay()
    summary = hedger.summary()
    assert summary["hedge_delay"] == "fixed" and summary["hedge_after_ms"] == 40.0
    assert summary["hedge_percentile"] is None and summary["hedge_fraction"] == 0.0


def test_the_scheme_sends_each_input_to_its_primary_and_decodes_it_exactly():
    scheme = Hedged(3, 5)
    inputs = np.random.default_rng(1).random((3, 1, 2, 2))
    coded = np.asarray(scheme.encode(inputs))
    assert coded.shape == (5, 1, 2, 2)
    np.testing.assert_array_equal(coded[:3], inputs)
    np.testing.assert_array_equal(coded[3:], 0.0)  # the spares hold nothing of their own
    outputs = np.zeros((5, 4), dtype=np.float32)
    outputs[:3] = np.random.default_rng(2).random((3, 4))
    available = np.array([True, False, True, False, False])
    estimates = np.asarray(scheme.decode(outputs, available))
    np.testing.assert_array_equal(estimates[[0, 2]], outputs[[0, 2]])
    np.testing.assert_array_equal(scheme.lost(available), [False, True, False])
    assert scheme.loses_inputs and not scheme.underdetermined(available)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_workers": 3}, "num_workers must be an integer > num_inputs=3 .*, got 3"),
        ({"after_ms": 0}, "after_ms must be a finite number > 0 or 'auto', got 0"),
        ({"after_ms": True}, "after_ms must be .*, got True"),
        ({"after_ms": "fast"}, "after_ms must be .*, got 'fast'"),
        ({"after_ms": float("nan")}, "after_ms must be .*, got nan"),
        ({"percentile": 100}, "percentile must be a number in \\(0, 100\\), got 100"),
        ({"window": 0}, "window must be an integer >= 1, got 0"),
    ],
)
def test_bad_hedge_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Hedged(**{"num_inputs": 3, "num_workers": 5, **kwargs})
