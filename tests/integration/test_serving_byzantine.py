"""Byzantine workers on a real local Ray instance: tiny model, N = 8, one worker that lies.

Shares the Ray instance and the clean-up checks of tests/integration/test_serving.py
(``ray_session``: no actor outlives a test, no Ray process outlives the module).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nercc.adversaries import SignFlipAdversary
from nercc.coding import NeRCC, RobustNeRCC
from nercc.stragglers import WaitPolicy
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

K, N, S = 2, 8, 0  # S = 0: every worker asked answers, so the liar's absence is an exclusion
LIAR = 5
SCALE = 100.0
GROUPS = 12


def one_group_at_a_time(front: Frontend, queries: np.ndarray) -> list:
    """K queries submitted together, answered, then the next K: each group decodes (and may
    exclude) before the next is sent."""
    answers = []
    for start in range(0, len(queries), K):
        futures = [front.submit(image) for image in queries[start : start + K]]
        answers += [future.result(timeout=120) for future in futures]
    return answers


def test_a_lying_worker_is_screened_flagged_excluded_and_probed_by_a_robust_scheme(
    workers_of,  # noqa: F811 (the fixture imported above)
):
    """Worker 5 answers -100 x its logits. RobustNeRCC: every query answered once, each answer
    the robust decoder's estimate from its group's answers (recomputed from the trace), worker
    5's row is what it says (-100 x the model's) and flagged whenever it answered; after 3
    flagged groups of its last 4 it is excluded (not asked for 3 groups), then probed and asked
    again, flagged again and excluded again. Plain NeRCC on the same workers never flags it."""
    model = tiny_model()
    queries = images(K * GROUPS, seed=7)
    workers = workers_of(
        tiny_model, N, None, seed=0, adversary=SignFlipAdversary(scale=SCALE), adversaries=[LIAR]
    )
    robust = RobustNeRCC(K, N, screen=4.0)
    options = {"max_wait_ms": 50, "flag_fraction": 0.5, "flag_window": 4, "exclude_groups": 3}
    with Frontend(
        workers, robust, "nercc_robust", WaitPolicy(S), keep_traces=True, **options
    ) as front:
        answers = one_group_at_a_time(front, queries)
    assert len({(a.group, a.position) for a in answers}) == len(queries)  # each once
    traces = {t.group: t for t in front.traces}
    liar_answered = []
    by_group: dict[int, tuple[list[int], tuple[int, ...]]] = {}
    for answer in answers:
        trace = traces[answer.group]
        assert answer.workers == tuple(np.flatnonzero(trace.available))
        with torch.no_grad():
            truth = model(torch.from_numpy(trace.coded)).numpy()
        taken = np.flatnonzero(trace.available)
        honest = [row for row in taken if trace.answered_by[row] != LIAR]
        np.testing.assert_allclose(trace.outputs[honest], truth[honest], rtol=1e-5, atol=1e-6)
        lied = [row for row in taken if trace.answered_by[row] == LIAR]
        np.testing.assert_allclose(trace.outputs[lied], -SCALE * truth[lied], rtol=1e-5, atol=1e-4)
        # the robust decoder's estimate from this group's answers, recomputed
        outputs = trace.outputs.astype(np.float64)
        expected, _, flagged = robust.decode_each_flagged(outputs[None], trace.available[None])
        np.testing.assert_array_equal(trace.flagged, flagged[0])
        np.testing.assert_allclose(answer.logits, expected[0][answer.position], rtol=1e-4,
                                   atol=1e-4)  # fmt: skip
        assert answer.flagged == tuple(sorted(trace.answered_by[trace.flagged]))
        if answer.position == 0:
            by_group[answer.group] = ([int(trace.answered_by[r]) for r in taken], answer.flagged)
        if lied:
            if answer.position == 0:
                liar_answered.append(answer.group)
        else:  # not asked: excluded now, or probed (down until its probe answered)
            assert LIAR in answer.excluded or LIAR in answer.failed
        if LIAR in answer.excluded:
            assert answer.failed == () and len(answer.workers) == N - 1
    flagged_liar = [g for g in liar_answered if LIAR in by_group[g][1]]
    assert len(flagged_liar) > len(liar_answered) / 2  # a -100x answer is dropped, mostly
    assert front.flagged_by_worker == [
        sum(w in flags for _, flags in by_group.values()) for w in range(N)
    ]
    # the rule replayed on the flags the decoder gave, group after group: a worker is excluded
    # at its third flag among its last 4 answered groups (3 > 0.5 x 4), then starts afresh
    recent: dict[int, list[bool]] = {w: [] for w in range(N)}
    expected = []
    for group in sorted(by_group):
        taken, flags = by_group[group]
        for worker in taken:
            recent[worker] = (recent[worker] + [worker in flags])[-4:]
            if sum(recent[worker]) > 2:
                expected.append((group, worker))
                recent[worker] = []
    assert front.exclusions == expected
    excluded_at = [group for group, worker in front.exclusions if worker == LIAR]
    assert len(excluded_at) >= 2, front.exclusions  # excluded, probed, asked, excluded again
    held = [a.group for a in answers if LIAR in a.excluded]
    assert held and all(any(e < g < e + 3 for e in excluded_at) for g in held)
    first, second = excluded_at[:2]
    assert any(first + 3 <= g <= second for g in liar_answered)  # asked again after its probe
    with Frontend(workers, NeRCC(K, N), "nercc", WaitPolicy(S), **options) as front:
        plain = one_group_at_a_time(front, queries)
    assert all(a.flagged == () and a.excluded == () for a in plain)
    assert sum(LIAR in a.workers for a in plain) > len(plain) // 2  # its answers were decoded
    assert front.flagged_by_worker == [0] * N and front.exclusions == []
