"""ParM served on a real local Ray instance: K = 2 data workers and one parity worker.

The classifier is affine, f(x) = W x + b, and the parity model g(x) = W x + K b, so that
g(x_1 + x_2) = f(x_1) + f(x_2) exactly: a missing output recovered by subtraction is exact when
the parity row runs g, and off by b when it runs f. Shares the Ray instance and the clean-up
checks of tests/integration/test_serving.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nercc.coding import ParM
from nercc.stragglers import DelayModel, WaitPolicy
from tests.integration.test_serving import (  # noqa: F401 (fixtures)
    images,
    nothing_left_running,
    ray_session,
    shared_ray,
    workers_of,  # noqa: F811 (the fixture imported above)
)

ray = pytest.importorskip("ray", reason="the serve extra (ray[serve]) is installed by make test")

from nercc.serving import Frontend  # noqa: E402

K, N, CLASSES = 2, 3, 5


class Affine(torch.nn.Module):
    """f(x) = W x + times * b, the same W and b in every process."""

    def __init__(self, times: int = 1) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.weight = torch.randn(16, CLASSES, generator=g)
        self.bias = 5.0 * torch.randn(CLASSES, generator=g)
        self.times = times

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight + self.times * self.bias


def affine() -> torch.nn.Module:
    return Affine()


def parity_of(base: torch.nn.Module) -> torch.nn.Module:
    """The exact parity model of :func:`affine` for groups of K (built from the classifier, as
    a worker builds its extra models)."""
    assert isinstance(base, Affine)
    return Affine(times=K)


def exact(queries: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return affine()(torch.from_numpy(queries)).numpy()


def answer_all(front: Frontend, queries: np.ndarray) -> list:
    futures = [front.submit(image) for image in queries]
    return [future.result(timeout=120) for future in futures]


def test_a_slow_data_workers_output_is_recovered_by_subtraction_from_the_parity_model(
    workers_of,  # noqa: F811 (the fixture imported above)
):
    """Worker 0 sleeps 2 s or more, the others about 1 ms: every group is decoded from worker 1
    and the parity worker 2 (never waiting for worker 0), input 0 recovered exactly; that needs
    the parity row run by g (with f there, the estimate is off by the bias)."""
    delays = DelayModel("shifted_exponential", shift=1.0, rate=10.0, slow_factor=2000.0)
    workers = workers_of(affine, N, delays, seed=0, slow=[0], extra_models=[parity_of])
    queries = images(8, seed=7)
    scheme = ParM(K, N, parity_model="g")
    with Frontend(
        workers, scheme, "parm", WaitPolicy(1), max_wait_ms=5, keep_traces=True,
        row_models=[0, 0, 1],
    ) as front:  # fmt: skip
        answers = answer_all(front, queries)
    assert len({(a.group, a.position) for a in answers}) == len(queries)  # each answered once
    np.testing.assert_allclose([a.logits for a in answers], exact(queries), rtol=1e-4, atol=1e-4)
    assert all(a.workers == (1, 2) and a.scheme == "parm" for a in answers)
    for trace in front.traces:
        assert list(trace.available) == [False, True, True]
        np.testing.assert_allclose(trace.coded[2], trace.coded[0] + trace.coded[1], atol=1e-6)


def test_a_dead_parity_worker_is_stood_in_for_by_a_data_worker_running_the_parity_model(
    workers_of,  # noqa: F811 (the fixture imported above)
):
    """Worker 2 (parity) is dead and worker 0 slow: input 0 is lost until the parity row is
    computed elsewhere; the frontend sends it to worker 1, which runs g on it (the row's model,
    not the worker's), and the answers are exact without waiting for worker 0."""
    delays = DelayModel("shifted_exponential", shift=1.0, rate=10.0, slow_factor=20000.0)
    workers = workers_of(
        affine, N, delays, seed=0, slow=[0], extra_models=[parity_of], max_restarts=0
    )
    ray.kill(workers[2], no_restart=True)
    queries = images(4, seed=8)
    with Frontend(
        workers, ParM(K, N, parity_model="g"), "parm", WaitPolicy(1), max_wait_ms=50,
        keep_traces=True, retry_s=30, row_models=[0, 0, 1],
    ) as front:  # fmt: skip
        answers = answer_all(front, queries)
    np.testing.assert_allclose([a.logits for a in answers], exact(queries), rtol=1e-4, atol=1e-4)
    assert all(2 in a.failed for a in answers)
    for trace in front.traces:
        assert trace.answered_by[2] == 1 and not trace.available[0]


def test_a_frontend_without_the_row_models_of_a_parity_scheme_is_refused(
    workers_of,  # noqa: F811 (the fixture imported above)
):
    workers = workers_of(affine, N, None)
    with pytest.raises(ValueError, match=r"row_models must give the model of each of the N=3"):
        Frontend(workers, ParM(K, N, parity_model="g"), "parm", WaitPolicy(1))
    with pytest.raises(ValueError, match=r"another model than the classifier \(0\).*\[2\]"):
        Frontend(workers, ParM(K, N, parity_model="g"), "parm", WaitPolicy(1), row_models=[0] * 3)
    with pytest.raises(ValueError, match=r"row_models must be N=3 integers >= 0, got \[0, 1\]"):
        Frontend(workers, ParM(K, N, parity_model="g"), "parm", WaitPolicy(1), row_models=[0, 1])


def test_the_frontend_groups_and_orders_a_buffer_of_queries_and_answers_each_its_own(
    workers_of,  # noqa: F811 (the fixture imported above)
):
    """Two clouds of queries (dark and bright images) sent interleaved; with buffer=2 (4
    queries) and clustered grouping each group holds one cloud, and ParM's exact decode still
    answers every query with f of that query (a wrong mapping back would give another's)."""
    from nercc.coding.order import Arranger, principal_direction

    rng = np.random.default_rng(9)
    dark = 0.1 * rng.random((4, 1, 4, 4))
    bright = 0.9 + 0.1 * rng.random((4, 1, 4, 4))
    queries = np.empty((8, 1, 4, 4), dtype=np.float32)
    queries[0::2], queries[1::2] = dark, bright
    direction = principal_direction(queries.reshape(8, -1))
    workers = workers_of(affine, N, None, extra_models=[parity_of])
    arranger = Arranger(K, "path", "clustered", direction)
    with Frontend(
        workers, ParM(K, N, parity_model="g"), "parm", WaitPolicy(1), max_wait_ms=2000,
        keep_traces=True, row_models=[0, 0, 1], arranger=arranger, buffer=2,
    ) as front:  # fmt: skip
        futures = [front.submit(image) for image in queries]
        answers = [future.result(timeout=120) for future in futures]
    np.testing.assert_allclose([a.logits for a in answers], exact(queries), rtol=1e-4, atol=1e-4)
    assert len({(a.group, a.position) for a in answers}) == 8
    for trace in front.traces:
        brightness = trace.coded[:K].mean(axis=(1, 2, 3))
        assert (brightness < 0.5).all() or (brightness > 0.5).all()  # one cloud per group


def test_schemes_that_do_not_mix_inputs_are_not_arranged(
    workers_of,  # noqa: F811 (the fixture imported above)
):
    from nercc.coding import BACC, Uncoded
    from nercc.coding.order import Arranger

    workers = workers_of(affine, N, None)
    arranger = Arranger(K, "path")
    with Frontend(workers, Uncoded(K), "uncoded", WaitPolicy(0), arranger=arranger) as front:
        assert front.arranger is None
    with Frontend(workers, BACC(K, N), "bacc", WaitPolicy(1), arranger=arranger) as front:
        assert front.arranger is arranger
    with pytest.raises(ValueError, match="buffer must be an integer >= 1, got 0"):
        Frontend(workers, BACC(K, N), "bacc", WaitPolicy(1), buffer=0)
