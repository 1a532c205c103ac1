"""Coded serving on a real local Ray instance: tiny model, N = 6, delays of a few ms.

The tests of the module share one Ray instance on 127.0.0.1 (``ray_session``: it starts once,
about 4 s and 0.5 GB); each test stops the workers it started and shuts Serve down, a fixture
checks that no actor outlives a test and that no Ray process outlives the module.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import time
import urllib.error
import urllib.request
import warnings

import numpy as np
import pytest
import torch

from nercc.coding import BACC, FewAnswersWarning, NeRCC, Replication, Uncoded
from nercc.stragglers import DelayModel, WaitPolicy

ray = pytest.importorskip("ray", reason="the serve extra (ray[serve]) is installed by make test")

from nercc import serving  # noqa: E402
from nercc.serving import (  # noqa: E402
    Frontend,
    NonFiniteOutputs,
    QueryFailed,
    ray_cluster,
    start_workers,
    stop_workers,
)
from nercc.serving.images import image_to_png  # noqa: E402

SHAPE = (1, 4, 4)
RAY_PROCESSES = ("raylet", "gcs_server", "ray::", "default_worker.py")
#: A query whose first pixel is MARK makes the marked model answer NaN logits.
MARK = 7.0


def tiny_model() -> torch.nn.Module:
    """A fixed small classifier (4x4 images to 5 logits), the same in every process."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.Tanh(),
                               torch.nn.Linear(8, 5))  # fmt: skip


class _Marked(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = tiny_model()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.inner(x)
        return torch.where((x.flatten(1)[:, :1] == MARK), torch.nan, logits)


def marked_model() -> torch.nn.Module:
    """:func:`tiny_model`, but NaN logits for an input whose first pixel is MARK (uncoded sends
    a query as it is)."""
    return _Marked()


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def ray_processes() -> list[str]:
    """Ray's processes that are this test run's: descendants of this process, or orphans (a
    Ray left behind is re-parented to init). Another program's Ray on the machine is not."""
    me, found = os.getpid(), []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if not any(name in cmdline for name in RAY_PROCESSES):
            continue
        ancestor, ours = int(pid), False
        while ancestor > 1:
            ancestor = _parent(ancestor)
            ours = ancestor == me
            if ours:
                break
        if ours or _parent(int(pid)) == 1:
            found.append(f"{pid}: {cmdline[:80]}")
    return found


@pytest.fixture(scope="module", autouse=True)
def nothing_left_running():
    """No Ray process of this module outlives it (the shared instance is shut down first)."""
    before = set(ray_processes())
    yield
    assert not ray.is_initialized()
    deadline = time.monotonic() + 60  # a liveness bound: Ray exits slowly on a busy machine
    while (left := set(ray_processes()) - before) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"Ray processes left after the module: {sorted(left)}"


#: The SIGTERM handler of the process before ``shared_ray`` called ray.init (see the test).
SIGTERM_BEFORE_RAY: list = []


@pytest.fixture(scope="module")
def shared_ray():
    """One local Ray instance (on 127.0.0.1, 2 CPUs) for every test of the module that asks."""
    SIGTERM_BEFORE_RAY[:] = [signal.getsignal(signal.SIGTERM)]
    with ray_cluster(num_cpus=2):
        yield


def alive_actors() -> list[str]:
    from ray._private import state

    return sorted(
        f"{info.get('ActorClassName')} {info.get('Name', '')}".strip()
        for info in state.actors().values()
        if info["State"] != "DEAD"
    )


@pytest.fixture
def ray_session(shared_ray, monkeypatch):
    """The shared Ray instance for one test: ``nercc.serving.ray_cluster`` (which the serve and
    load-test commands call) joins it instead of starting one. After the test, Serve is shut
    down and no actor is left alive (a test stops the workers it started)."""
    monkeypatch.setattr(serving, "ray_cluster", _joined)
    yield
    from ray import serve

    with contextlib.suppress(Exception):
        serve.shutdown()
    deadline = time.monotonic() + 60  # a liveness bound: Ray exits slowly on a busy machine
    while (left := alive_actors()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"actors left alive after the test: {left}"


@contextlib.contextmanager
def _joined(address=None, num_cpus=None):
    assert ray.is_initialized()
    yield


@pytest.fixture
def workers_of(ray_session):
    """``workers_of(*start_workers args)``: workers stopped for good after the test."""
    started = []

    def start(*args, **kwargs):
        started.append(start_workers(*args, **kwargs))
        return started[-1]

    yield start
    for workers in started:
        stop_workers(workers)


def images(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((count, *SHAPE)).astype(np.float32)


def run_all(front: Frontend, queries: np.ndarray) -> list:
    """Submit every query at once (so that groups fill up) and return the answers."""
    futures = [front.submit(image) for image in queries]
    return [future.result(timeout=180) for future in futures]


def test_answers_are_the_decode_of_the_encoded_queries_and_coding_cuts_the_slow_tail(workers_of):
    """Each answer equals an independent reference: the queries of its group encoded, the model
    applied, the answers taken decoded. With worker 0 ten times slower, uncoded (which needs it)
    has a longer tail than NeRCC (which decodes without it); with a deadline NeRCC never waits
    for it, and counts the groups it decoded from fewer answers than inputs instead of warning."""
    model = tiny_model()
    queries = images(45)
    slow = DelayModel("shifted_exponential", shift=3.0, rate=1.0, slow_factor=10.0)
    latencies = {}
    workers = workers_of(tiny_model, 6, slow, seed=1, slow=[0])
    schemes = {
        "uncoded": (Uncoded(3), WaitPolicy(0)),
        "replication": (Replication(3, 2), WaitPolicy(0)),
        "bacc": (BACC(3, 6), WaitPolicy(2)),
        "nercc": (NeRCC(3, 6, lam_enc=1e-4, lam_dec=1e-3), WaitPolicy(2)),
        "nercc_deadline": (NeRCC(3, 6), WaitPolicy(deadline=15.0)),
    }
    for name, (scheme, policy) in schemes.items():
        with Frontend(workers, scheme, name, policy, max_wait_ms=5, keep_traces=True) as front:
            answers = run_all(front, queries)
            if name in ("uncoded", "nercc"):  # one query at a time: each group's own latency
                for image in queries[:5]:  # warm up
                    front.predict(image, timeout=120)
                latencies[name] = []
                for image in queries[:30]:
                    start = time.perf_counter()
                    front.predict(image, timeout=120)
                    latencies[name].append((time.perf_counter() - start) * 1000)
        traces = {t.group: t for t in front.traces}  # the extra groups are not checked
        groups: dict[int, list[int]] = {}
        for i, answer in enumerate(answers):
            groups.setdefault(answer.group, []).append(i)
        assert sum(len(members) for members in groups.values()) == len(queries)
        assert any(len(members) > 1 for members in groups.values())  # groups filled up
        for group, members in groups.items():
            members.sort(key=lambda i: answers[i].position)
            assert [answers[i].position for i in members] == list(range(len(members)))
            batch = queries[[members[p % len(members)] for p in range(3)]]  # padded
            coded = np.asarray(scheme.encode(batch.astype(np.float64)))
            trace = traces[group]
            np.testing.assert_allclose(trace.coded, coded, rtol=1e-5, atol=1e-6)
            with torch.no_grad():
                outputs = model(torch.from_numpy(coded.astype(np.float32))).double().numpy()
            with warnings.catch_warnings():  # fewer than K answers after the deadline
                warnings.simplefilter("ignore", FewAnswersWarning)
                expected = np.asarray(scheme.decode(outputs, trace.available))
            for i in members:
                answer = answers[i]
                assert answer.workers == tuple(np.flatnonzero(trace.available))
                np.testing.assert_allclose(
                    answer.logits, expected[answer.position], rtol=1e-4, atol=1e-5
                )
        if name in ("bacc", "nercc"):
            assert all(len(a.workers) >= 4 for a in answers)  # the first N - S = 4
        if name == "uncoded":
            assert all(a.workers == (0, 1, 2) for a in answers)
        if name == "nercc_deadline":  # worker 0 takes 30 ms or more: not waited for
            # (a frontend descheduled past 30 ms on a busy machine finds its answer too; a
            # policy that waited for every worker would have it in every answer)
            assert all(len(a.workers) >= 1 for a in answers)
            assert sum(0 in a.workers for a in answers) <= len(answers) // 4
        few = {a.group for a in answers if a.underdetermined}
        assert all(a.underdetermined == (len(a.workers) < 3) for a in answers)
        assert len(few) <= front.underdetermined_groups  # (warm-up groups count too)
        if name != "nercc_deadline":  # a quorum of N - S = 4 >= K = 3 answers
            assert front.underdetermined_groups == 0
    # one query at a time: every uncoded group waits for worker 0 (30 ms or more), NeRCC's never
    assert np.percentile(latencies["uncoded"], 50) > 25
    assert np.percentile(latencies["nercc"], 99) < np.percentile(latencies["uncoded"], 99)


def test_killed_workers_lose_no_query_and_answer_none_twice(workers_of):
    queries = images(48, seed=1)
    # 200 ms or more: a killed worker is still computing (sleeping) when the kill lands
    delays = DelayModel("shifted_exponential", shift=200.0, rate=0.5)
    workers = workers_of(tiny_model, 6, delays, seed=0)
    for name, scheme, policy in (
        ("nercc", NeRCC(3, 6), WaitPolicy(1)),
        ("uncoded", Uncoded(3), WaitPolicy(0)),
    ):
        with Frontend(workers, scheme, name, policy, max_wait_ms=3, kill_every=4) as front:
            futures = [front.submit(image) for image in queries]
            answers = [future.result(timeout=180) for future in futures]
        assert len(front.killed) >= 2
        seats = [(a.group, a.position) for a in answers]
        assert len(set(seats)) == len(queries)  # one answer per query, none shared
        if name == "nercc":  # a code decodes without the failed rows
            assert all(not set(a.failed) & set(a.workers) for a in answers)
        else:  # uncoded sends a failed row to a live worker: every row is decoded
            assert all(a.workers == (0, 1, 2) for a in answers)
            assert any(a.failed for a in answers)
        if name == "nercc":  # the killed worker's coded input is a straggler
            for group, victim in front.killed:
                used = {a.workers for a in answers if a.group == group}
                assert used and all(victim not in workers for workers in used)
        if name == "uncoded":  # a lost input was sent again: every answer is exact
            model = tiny_model()
            with torch.no_grad():
                exact = model(torch.from_numpy(queries)).numpy()
            np.testing.assert_allclose([a.logits for a in answers], exact, rtol=1e-5,
                                       atol=1e-6)  # fmt: skip


def test_a_dead_workers_input_goes_to_a_live_worker_or_fails_loudly(workers_of):
    """Uncoded with a worker that never comes back: its input is computed by the other worker
    (exact answers, the dead row reported failed); with no worker left, the queries fail. Before
    that, a model answering NaN fails its group's queries with NonFiniteOutputs, and the next
    group is served."""
    model = tiny_model()
    queries = images(4, seed=2)
    with torch.no_grad():
        exact = model(torch.from_numpy(queries)).numpy()
    workers = workers_of(marked_model, 2, None, max_restarts=0)
    marked = queries[0].copy()
    marked[0, 0, 0] = MARK
    with Frontend(workers, Uncoded(2), "uncoded", WaitPolicy(0), max_wait_ms=5) as front:
        with pytest.raises(NonFiniteOutputs, match=r"non-finite outputs .*workers \[0, 1\]"):
            front.predict(marked, timeout=120)  # alone: padded, both workers get it
        answer = front.predict(queries[1], timeout=120)  # the next group is served
        np.testing.assert_allclose(answer.logits, exact[1], rtol=1e-5, atol=1e-6)
    ray.kill(workers[1], no_restart=True)
    with Frontend(workers, Uncoded(2), "uncoded", WaitPolicy(0), max_wait_ms=50,
                  retry_s=5) as front:  # fmt: skip
        answers = [front.predict(image, timeout=120) for image in queries[:2]]
        both = [front.submit(image) for image in queries[2:]]
        answers += [future.result(timeout=120) for future in both]
    np.testing.assert_allclose([a.logits for a in answers], exact, rtol=1e-5, atol=1e-6)
    assert all(a.workers == (0, 1) for a in answers)
    assert answers[0].failed == (1,)  # found dead on the first call
    ray.kill(workers[0], no_restart=True)
    with Frontend(workers, Uncoded(2), "uncoded", WaitPolicy(0), max_wait_ms=50,
                  retry_s=0.5) as front:  # fmt: skip
        with pytest.raises(QueryFailed, match="input 0 lost, no worker computed it"):
            front.predict(queries[0], timeout=120)
        assert front.workers_down() == {0, 1}  # what /healthz answers 503 for


def test_ray_cluster_keeps_the_process_sigterm_handler(shared_ray):
    """ray.init replaces it with sys.exit(15); ray_cluster puts the caller's back (the task
    wrapper's handler exits 143 and marks the run failed)."""
    assert ray.is_initialized()
    assert signal.getsignal(signal.SIGTERM) is SIGTERM_BEFORE_RAY[0]


def no_classifier() -> torch.nn.Module:
    raise ValueError("checkpoint x.ckpt: weights are not finite")


def test_a_worker_that_cannot_start_fails_at_once_with_its_error(workers_of):
    """Ray does not restart an actor whose constructor raised: waiting would only time out."""
    with pytest.raises(RuntimeError) as failed:
        workers_of(no_classifier, 2, None)
    assert str(failed.value).endswith(
        "failed to start: ValueError: checkpoint x.ckpt: weights are not finite"
    )
    assert "\n" not in str(failed.value)


def test_replication_takes_the_first_answer_of_each_input_and_a_deadline_counts_few_answers(
    workers_of,
):
    """Replication (K=2, r=2: worker n computes input n % 2) with workers 2 and 3 a thousand
    times slower (2 s or more): every answer is decoded from workers 0 and 1 alone, the first
    answer of each input, never after waiting for every worker. NeRCC (K=3) with a 50 ms deadline
    on the same workers decodes from fewer than K answers: each group says so, and the scheme's
    FewAnswersWarning (an error under pytest) is not raised per group."""
    queries = images(8, seed=3)
    delays = DelayModel("shifted_exponential", shift=2.0, rate=1.0, slow_factor=1000.0)
    workers = workers_of(tiny_model, 4, delays, seed=0, slow=[2, 3])
    with Frontend(workers, Replication(2, 2), "replication", WaitPolicy(0), max_wait_ms=5) as front:
        answers = run_all(front, queries)
    assert [a.workers for a in answers] == [(0, 1)] * len(queries)
    model = tiny_model()
    with torch.no_grad():
        exact = model(torch.from_numpy(queries)).numpy()
    np.testing.assert_allclose([a.logits for a in answers], exact, rtol=1e-5, atol=1e-6)
    with Frontend(workers, NeRCC(3, 4), "nercc", WaitPolicy(deadline=50.0), max_wait_ms=5) as front:
        answers = run_all(front, queries)
    assert all(1 <= len(a.workers) <= 2 and a.underdetermined for a in answers)
    assert front.underdetermined_groups == len({a.group for a in answers})
    assert all(np.isfinite(a.logits).all() for a in answers)


def post(url: str, body: bytes, content_type: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def free_port() -> int:
    with contextlib.closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def raw_post(port: int, body, headers: dict[str, str]) -> tuple[int, dict]:
    """POST ``body`` (bytes, or an iterable of chunks: sent chunked) to /predict."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        chunked = not isinstance(body, bytes)
        connection.request("POST", "/predict", body=body, headers=headers, encode_chunked=chunked)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_http_predicts_a_png_and_answers_every_error_in_json(workers_of):
    """One endpoint: a PNG and a JSON array predicted; bad bodies 400 (booleans are not pixels),
    bodies over the limit 413 (chunked too), other routes 404/405, no worker alive 503, a drained
    endpoint 503, and once the application is deleted the proxy's answer 503: all JSON."""
    from ray import serve

    from nercc.serving.endpoint import APP_NAME, http_endpoint

    image = np.round(images(1, seed=5)[0] * 255) / 255  # exact in 8 bits
    model = tiny_model()
    port = free_port()
    workers = workers_of(tiny_model, 6, DelayModel(shift=1.0, rate=1.0), seed=0)
    with http_endpoint(workers, NeRCC(3, 6), "nercc", WaitPolicy(1), SHAPE, port=port,
                       max_wait_ms=2, max_body_bytes=1000, retry_s=1) as url:  # fmt: skip
        assert url == f"http://127.0.0.1:{port}"
        status, answer = post(f"{url}/predict", image_to_png(image), "image/png")
        assert status == 200, answer
        assert answer["scheme"] == "nercc" and len(answer["logits"]) == 5
        assert answer["class"] == int(np.argmax(answer["logits"]))
        assert len(answer["workers"]) >= 5 and answer["underdetermined"] is False
        with torch.no_grad():
            exact = model(torch.from_numpy(image[None].astype(np.float32)))[0].numpy()
        # one query alone in its group: the padded group repeats it, NeRCC at lam 0 is exact
        np.testing.assert_allclose(answer["logits"], exact, atol=1e-4)
        pixels = json.dumps(image[0].round(4).tolist()).encode()  # 200 bytes
        rows = image[0].round(4).tolist()
        rows[1][2] = False  # JSON false: 0 to numpy, not a pixel here
        flags = json.dumps(rows).encode()
        for body, kind, reason in [
            (b"not an image", "text/plain", "unsupported body"),
            (b"[[0.5]]", "application/json", "must have shape (1, 4, 4) or (4, 4)"),
            (b"{", "application/json", "not valid JSON"),
            (b"[[true, 0.5], [0.5, 0.5]]", "application/json", "must be numbers, got true"),
            (flags, "application/json", "must be numbers, got false"),
            (b"[[Infinity, 0.5], [0.5, 0.5]]", "application/json", "must be finite"),
        ]:
            status, error = post(f"{url}/predict", body, kind)
            assert status == 400 and reason in error["error"], (body, error)
            assert "\n" not in error["error"]
        status, answer = post(f"{url}/predict", pixels, "application/json")
        assert status == 200 and answer["class"] == int(np.argmax(exact))
        # over the limit (1000 bytes): declared, or counted while a chunked body comes in
        kind = {"Content-Type": "application/json"}
        status, error = raw_post(port, b" " * 1200 + pixels, kind)
        assert status == 413 and "at most 1000" in error["error"]
        status, error = raw_post(port, iter([b" " * 400] * 3 + [pixels]), kind)
        assert status == 413 and "more than 1000 bytes" in error["error"]
        status, answer = raw_post(port, iter([b" " * 400, pixels]), kind)  # under the limit
        assert status == 200 and answer["class"] == int(np.argmax(exact))
        with urllib.request.urlopen(f"{url}/healthz", timeout=60) as response:
            health = json.loads(response.read())
        assert health == {"status": "ok", "scheme": "nercc", "num_inputs": 3,
                          "num_workers": 6, "image_shape": [1, 4, 4]}  # fmt: skip
        status, error = post(f"{url}/nowhere", b"", "text/plain")
        assert status == 404 and "POST /predict" in error["error"]
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{url}/predict", timeout=60)  # GET
        assert refused.value.code == 405 and "use POST" in json.loads(refused.value.read())["error"]
        for worker in workers:  # no worker left: the query fails after retry_s
            ray.kill(worker, no_restart=True)
        status, error = post(f"{url}/predict", pixels, "application/json")
        assert status == 503 and "lost, no worker computed it" in error["error"]
        # shutting down: the replica takes no more queries, then the application goes
        serve.get_app_handle(APP_NAME).drain.remote().result(timeout_s=30)
        status, error = post(f"{url}/predict", pixels, "application/json")
        assert status == 503 and "shutting down" in error["error"]
        serve.delete(APP_NAME)
        status, error = post(f"{url}/predict", pixels, "application/json")
        assert status == 503 and "not available" in error["error"]
