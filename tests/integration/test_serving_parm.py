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
