"""Coded serving on a real local Ray instance: tiny model, N = 6, delays of a few ms.

Every test starts its own Ray instance on 127.0.0.1 and shuts it down; a fixture checks that no
Ray process outlives the test.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch

from nercc.coding import BACC, NeRCC, Replication, Uncoded
from nercc.stragglers import DelayModel, WaitPolicy

ray = pytest.importorskip("ray", reason="the serve extra (ray[serve]) is installed by make test")

from nercc.serving import Frontend, QueryFailed, ray_cluster, start_workers  # noqa: E402
from nercc.serving.images import image_to_png  # noqa: E402

SHAPE = (1, 4, 4)
RAY_PROCESSES = ("raylet", "gcs_server", "ray::", "default_worker.py")


def tiny_model() -> torch.nn.Module:
    """A fixed small classifier (4x4 images to 5 logits), the same in every process."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.Tanh(),
                               torch.nn.Linear(8, 5))  # fmt: skip


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


@pytest.fixture(autouse=True)
def nothing_left_running():
    before = set(ray_processes())
    yield
    assert not ray.is_initialized()
    deadline = time.monotonic() + 20
    while (left := set(ray_processes()) - before) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"Ray processes left after the test: {sorted(left)}"


def images(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((count, *SHAPE)).astype(np.float32)


def run_all(front: Frontend, queries: np.ndarray) -> list:
    """Submit every query at once (so that groups fill up) and return the answers."""
    futures = [front.submit(image) for image in queries]
    return [future.result(timeout=60) for future in futures]


def test_answers_are_the_decode_of_the_encoded_queries_and_coding_cuts_the_slow_tail():
    """Each answer equals an independent reference: the queries of its group encoded, the model
    applied, the answers taken decoded. With worker 0 ten times slower, uncoded (which needs it)
    has a longer tail than NeRCC (which decodes without it); with a deadline NeRCC never waits
    for it."""
    model = tiny_model()
    queries = images(45)
    slow = DelayModel("shifted_exponential", shift=3.0, rate=1.0, slow_factor=10.0)
    latencies = {}
    with ray_cluster(num_cpus=2):
        workers = start_workers(tiny_model, 6, slow, seed=1, slow=[0])
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
                        front.predict(image, timeout=30)
                    latencies[name] = []
                    for image in queries[:30]:
                        start = time.perf_counter()
                        front.predict(image, timeout=30)
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
            if name == "nercc_deadline":  # worker 0 takes 30 ms or more: never waited for
                assert all(0 not in a.workers and len(a.workers) >= 1 for a in answers)
        del workers
    # one query at a time: every uncoded group waits for worker 0 (30 ms or more), NeRCC's never
    assert np.percentile(latencies["uncoded"], 50) > 25
    assert np.percentile(latencies["nercc"], 99) < np.percentile(latencies["uncoded"], 99)


def test_killed_workers_lose_no_query_and_answer_none_twice():
    queries = images(48, seed=1)
    # 200 ms or more: a killed worker is still computing (sleeping) when the kill lands
    delays = DelayModel("shifted_exponential", shift=200.0, rate=0.5)
    with ray_cluster(num_cpus=2):
        workers = start_workers(tiny_model, 6, delays, seed=0)
        for name, scheme, policy in (
            ("nercc", NeRCC(3, 6), WaitPolicy(1)),
            ("uncoded", Uncoded(3), WaitPolicy(0)),
        ):
            with Frontend(workers, scheme, name, policy, max_wait_ms=3, kill_every=4) as front:
                futures = [front.submit(image) for image in queries]
                answers = [future.result(timeout=60) for future in futures]
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


def test_a_dead_workers_input_goes_to_a_live_worker_or_fails_loudly():
    """Uncoded with a worker that never comes back: its input is computed by the other worker
    (exact answers, the dead row reported failed); with no worker left, the queries fail."""
    model = tiny_model()
    queries = images(4, seed=2)
    with torch.no_grad():
        exact = model(torch.from_numpy(queries)).numpy()
    with ray_cluster(num_cpus=2):
        workers = start_workers(tiny_model, 2, None, max_restarts=0)
        ray.kill(workers[1], no_restart=True)
        with Frontend(workers, Uncoded(2), "uncoded", WaitPolicy(0), max_wait_ms=50,
                      retry_s=5) as front:  # fmt: skip
            answers = [front.predict(image, timeout=30) for image in queries[:2]]
            both = [front.submit(image) for image in queries[2:]]
            answers += [future.result(timeout=30) for future in both]
        np.testing.assert_allclose([a.logits for a in answers], exact, rtol=1e-5, atol=1e-6)
        assert all(a.workers == (0, 1) for a in answers)
        assert answers[0].failed == (1,)  # found dead on the first call
        ray.kill(workers[0], no_restart=True)
        with Frontend(workers, Uncoded(2), "uncoded", WaitPolicy(0), max_wait_ms=50,
                      retry_s=0.5) as front:  # fmt: skip
            with pytest.raises(QueryFailed, match="input 0 lost, no worker computed it"):
                front.predict(queries[0], timeout=30)


def post(url: str, body: bytes, content_type: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_http_predicts_a_png_and_refuses_malformed_bodies():
    from nercc.serving.endpoint import http_endpoint

    image = np.round(images(1, seed=5)[0] * 255) / 255  # exact in 8 bits
    model = tiny_model()
    with ray_cluster(num_cpus=2):
        workers = start_workers(tiny_model, 6, DelayModel(shift=1.0, rate=1.0), seed=0)
        with http_endpoint(workers, NeRCC(3, 6), "nercc", WaitPolicy(1), SHAPE, port=18265,
                           max_wait_ms=2) as url:  # fmt: skip
            assert url == "http://127.0.0.1:18265"
            status, answer = post(f"{url}/predict", image_to_png(image), "image/png")
            assert status == 200, answer
            assert answer["scheme"] == "nercc" and len(answer["logits"]) == 5
            assert answer["class"] == int(np.argmax(answer["logits"]))
            assert len(answer["workers"]) >= 5
            with torch.no_grad():
                exact = model(torch.from_numpy(image[None].astype(np.float32)))[0].numpy()
            # one query alone in its group: the padded group repeats it, NeRCC at lam 0 is exact
            np.testing.assert_allclose(answer["logits"], exact, atol=1e-4)
            for body, kind, reason in [
                (b"not an image", "text/plain", "unsupported body"),
                (b"[[0.5]]", "application/json", "must have shape (1, 4, 4) or (4, 4)"),
                (b"{", "application/json", "not valid JSON"),
            ]:
                status, error = post(f"{url}/predict", body, kind)
                assert status == 400 and reason in error["error"]
                assert "\n" not in error["error"]
            status, answer = post(f"{url}/predict", json.dumps(image[0].tolist()).encode(),
                                  "application/json")  # fmt: skip
            assert status == 200 and answer["class"] == int(np.argmax(exact))
            with urllib.request.urlopen(f"{url}/healthz", timeout=10) as response:
                health = json.loads(response.read())
            assert health == {"status": "ok", "scheme": "nercc", "num_inputs": 3,
                              "num_workers": 6, "image_shape": [1, 4, 4]}  # fmt: skip
            status, error = post(f"{url}/nowhere", b"", "text/plain")
            assert status == 404 and "POST /predict" in error["error"]
