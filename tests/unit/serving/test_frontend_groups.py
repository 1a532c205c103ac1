"""The frontend's group numbers without Ray: they start at ``first_group`` and reach the workers
(which seed their delays by group), so frontends started apart draw other delays."""

from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("ray", reason="the serve extra (ray[serve]) is installed by make test")

from nercc.coding import NeRCC  # noqa: E402
from nercc.serving import endpoint as endpoint_module  # noqa: E402
from nercc.serving.endpoint import PredictEndpoint  # noqa: E402
from nercc.serving.frontend import Frontend, QueryFailed  # noqa: E402
from nercc.serving.workers import unpack_input  # noqa: E402
from nercc.stragglers import WaitPolicy  # noqa: E402

SHAPE = (1, 2, 2)


class Refuses(RuntimeError):
    """The fake worker's answer to every call."""


class RecordingWorker:
    """A worker handle that records the group of each message sent to it and computes nothing
    (its call raises, so the group fails at once, with no Ray)."""

    def __init__(self, seen: list[int], lock: threading.Lock) -> None:
        self.seen, self.lock = seen, lock
        self.compute = self
        self.ready = self

    def remote(self, message: bytes = b"") -> None:
        group = unpack_input(message).group
        with self.lock:
            self.seen.append(group)
        raise Refuses("no compute in this test")


def groups_sent(num_groups: int, **options) -> tuple[list[int], list[str]]:
    """The groups the workers got (sorted, one entry per group) and each query's error, for
    ``num_groups`` groups of K = 2 queries through a frontend built with ``options``."""
    seen: list[int] = []
    lock = threading.Lock()
    workers = [RecordingWorker(seen, lock) for _ in range(4)]
    scheme, policy = NeRCC(2, 4), WaitPolicy(num_stragglers=1)
    frontend = Frontend(workers, scheme, "nercc", policy, max_wait_ms=1000.0, **options)
    errors = []
    try:
        for _ in range(num_groups):  # a full group leaves at once; one at a time, in order
            futures = [frontend.submit(np.zeros(SHAPE)) for _ in range(2)]
            for future in futures:
                with pytest.raises(QueryFailed) as failed:
                    future.result(timeout=30)
                errors.append(str(failed.value))
    finally:
        frontend.close()
    return sorted(set(seen)), errors


def test_groups_are_numbered_from_zero_by_default():
    groups, errors = groups_sent(3)
    assert groups == [0, 1, 2]
    assert [e.split(":")[0] for e in errors] == ["group 0"] * 2 + ["group 1"] * 2 + ["group 2"] * 2


def test_groups_are_numbered_from_first_group():
    groups, errors = groups_sent(3, first_group=2_000_000)
    assert groups == [2_000_000, 2_000_001, 2_000_002]
    assert errors[0].startswith("group 2000000: ") and errors[-1].startswith("group 2000002: ")


@pytest.mark.parametrize("bad", [-1, 1.5, True, "0", None])
def test_a_bad_first_group_is_refused(bad):
    workers = [RecordingWorker([], threading.Lock()) for _ in range(4)]
    with pytest.raises(ValueError, match=r"^first_group must be an integer >= 0, got "):
        Frontend(workers, NeRCC(2, 4), "nercc", WaitPolicy(num_stragglers=1), first_group=bad)


def test_the_endpoint_passes_first_group_to_its_frontend(monkeypatch):
    monkeypatch.setattr(endpoint_module, "freeze_startup_heap", lambda: None)
    workers = [RecordingWorker([], threading.Lock()) for _ in range(4)]
    made = PredictEndpoint(
        SHAPE, workers, NeRCC(2, 4), "nercc", WaitPolicy(num_stragglers=1), first_group=7
    )
    try:
        assert made.frontend.first_group == 7
    finally:
        made.frontend.close()
