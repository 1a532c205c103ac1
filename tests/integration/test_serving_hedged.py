"""Hedged requests on a real local Ray instance: tiny model, K = 2 primaries, 2 spares.

Shares the Ray instance and the clean-up checks of tests/integration/test_serving.py
(``ray_session``: no actor outlives a test, no Ray process outlives the module). The delays are
injected (a slow worker sleeps a thousand times longer), so which input is hedged is known.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from nercc.stragglers import DelayModel, WaitPolicy
from tests.integration.test_serving import (  # noqa: F401 (fixtures)
    images,
    nothing_left_running,
    ray_session,
    shared_ray,
    tiny_model,
    workers_of,
)

ray = pytest.importorskip("ray", reason="the serve extra (ray[serve]) is installed by make test")

from nercc.serving import Frontend  # noqa: E402
from nercc.serving.hedging import Hedged  # noqa: E402

K, N = 2, 4
SPARES = (2, 3)


def exact(queries: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return tiny_model()(torch.from_numpy(queries)).numpy()


def answer_all(front: Frontend, queries: np.ndarray) -> tuple[list, list[float]]:
    """Submit every query at once; the answers and each query's seconds from its submission."""
    done: dict[int, float] = {}
    futures = []
    for i, image in enumerate(queries):
        sent = time.perf_counter()
        future = front.submit(image)
        future.add_done_callback(
            lambda f, i=i, s=sent: done.__setitem__(i, time.perf_counter() - s)
        )
        futures.append(future)
    answers = [future.result(timeout=120) for future in futures]
    return answers, [done[i] for i in range(len(queries))]


def check_once_and_exact(answers: list, queries: np.ndarray) -> None:
    seats = [(a.group, a.position) for a in answers]
    assert len(set(seats)) == len(queries)  # one answer per query, none shared
    np.testing.assert_allclose([a.logits for a in answers], exact(queries), rtol=1e-5, atol=1e-6)
    assert all(a.workers == (0, 1) and a.scheme == "hedged" for a in answers)


def test_a_slow_primarys_input_is_hedged_once_after_the_delay_and_its_late_answer_ignored(
    workers_of,  # noqa: F811 (the fixture imported above)
):
    """Worker 1 sleeps 2.5 s or more, the others about 1 ms; hedge after 800 ms (a margin for a
    busy machine). Each group's input 1 goes to a spare after 800 ms (never before: every query
    waits that long), once; its answer is the spare's, exact; worker 1's answer comes later and
    is counted, not taken."""
    delays = DelayModel("shifted_exponential", shift=1.0, rate=10.0, slow_factor=2500.0)
    workers = workers_of(tiny_model, N, delays, seed=0, slow=[1])
    queries = images(8, seed=4)
    scheme = Hedged(K, N, after_ms=800.0)
    with Frontend(
        workers, scheme, "hedged", WaitPolicy(0), max_wait_ms=5, keep_traces=True
    ) as front:
        answers, seconds = answer_all(front, queries)
    check_once_and_exact(answers, queries)
    assert min(seconds) >= 0.8  # the hedge is sent at 800 ms; worker 1 answers after 2.5 s
    groups = {a.group for a in answers}
    assert len(groups) == 4  # the 8 queries went as 4 full groups
    for trace in front.traces:
        assert trace.answered_by[0] == 0 and trace.answered_by[1] in SPARES
        assert not trace.available[K:].any()
    # close() waits LATE_WAIT_S for worker 1's answers; a busy machine may take longer
    deadline = time.monotonic() + 60  # a liveness bound
    while front.hedge_summary()["late_answers"] < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    summary = front.hedge_summary()
    assert summary == {
        "hedge_delay": "fixed",
        "hedge_percentile": None,
        "hedge_after_ms": 800.0,
        "primary_requests": 8,
        "hedges": 4,
        "hedge_fraction": 0.5,
        "hedges_after_delay": 4,
        "hedges_on_failure": 0,
        "late_answers": 4,  # worker 1's
        "groups": 4,
        "groups_without_delay": 0,
    }


def test_a_dead_primary_is_hedged_at_once(workers_of):  # noqa: F811 (the fixture)
    """Worker 1 is dead: its input goes to a spare as its call fails (the delay is a minute:
    never reached), then, once the frontend knows it is down, without asking it."""
    workers = workers_of(tiny_model, N, None, max_restarts=0)
    ray.kill(workers[1], no_restart=True)
    queries = images(4, seed=5)
    scheme = Hedged(K, N, after_ms=60_000.0)
    with Frontend(workers, scheme, "hedged", WaitPolicy(0), max_wait_ms=50, keep_traces=True,
                  retry_s=30) as front:  # fmt: skip
        first, _ = answer_all(front, queries[:2])
        second, _ = answer_all(front, queries[2:])
    answers = first + second
    check_once_and_exact(answers, queries)
    assert all(a.failed == (1,) for a in answers)
    assert all(t.answered_by[1] in SPARES for t in front.traces)
    summary = front.hedge_summary()
    assert summary["primary_requests"] == 3  # the second group does not ask worker 1
    assert (summary["hedges_on_failure"], summary["hedges_after_delay"]) == (2, 0)
    assert front.workers_down() == {1}


def test_the_auto_delay_follows_the_latencies_and_killed_workers_lose_no_query(
    workers_of,  # noqa: F811 (the fixture imported above)
):
    """Every worker sleeps 200 ms or more, so every latency the auto delay sees is too: its
    median (p50) is at least 200 ms. One worker killed every 3rd group (Ray restarts it): each
    query is answered once, exactly. The first group had no delay (no latencies yet)."""
    delays = DelayModel("shifted_exponential", shift=200.0, rate=0.5)
    workers = workers_of(tiny_model, N, delays, seed=2)
    queries = images(16, seed=6)
    scheme = Hedged(K, N, after_ms="auto", percentile=50.0)
    with Frontend(workers, scheme, "hedged", WaitPolicy(0), max_wait_ms=5, kill_every=3) as front:
        warm = [front.predict(image, timeout=120) for image in queries[:3]]  # one group each
        answers, _ = answer_all(front, queries[3:])
    answers = warm + answers
    check_once_and_exact(answers, queries)
    assert len(front.killed) >= 2
    summary = front.hedge_summary()
    assert summary["hedge_delay"] == "auto" and summary["hedge_percentile"] == 50.0
    assert summary["groups_without_delay"] >= 1
    assert summary["hedge_after_ms"] >= 200.0
    assert summary["primary_requests"] <= K * summary["groups"]  # a primary known down is not asked
