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


def ray_processes() -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(name in cmdline for name in RAY_PROCESSES):
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


def test_answers_equal_offline_decode_and_coding_cuts_the_slow_worker_tail():
    """Every scheme's answers are the offline decode of the same answers; with worker 0 ten times
    slower, uncoded (which needs it) has a longer tail than NeRCC (which decodes without it)."""
    model = tiny_model()
    queries = images(60)
    slow = DelayModel("shifted_exponential", shift=3.0, rate=1.0, slow_factor=10.0)
    latencies = {}
    with ray_cluster(num_cpus=2):
        workers = start_workers(tiny_model, 6, slow, seed=1, slow=[0])
        schemes = {
            "uncoded": (Uncoded(3), WaitPolicy(0)),
            "replication": (Replication(3, 2), WaitPolicy(0)),
            "bacc": (BACC(3, 6), WaitPolicy(2)),
            "nercc": (NeRCC(3, 6, lam_enc=1e-4, lam_dec=1e-3), WaitPolicy(2)),
        }
        for name, (scheme, policy) in schemes.items():
            with Frontend(workers, scheme, name, policy, max_wait_ms=2, keep_traces=True) as front:
                times, answers = [], []
                for image in queries:
                    start = time.perf_counter()
                    answers.append(front.predict(image, timeout=30))
                    times.append((time.perf_counter() - start) * 1000)
            latencies[name] = np.array(times)
            traces = {t.group: t for t in front.traces}
            assert sum(t.size for t in traces.values()) == len(queries)
            for answer in answers:
                assert answer.scheme == name
                trace = traces[answer.group]
                # the coded inputs are the encoding of the group, the answers are f of them
                with torch.no_grad():
                    outputs = model(torch.from_numpy(trace.coded)).numpy()
                taken = trace.available
                np.testing.assert_allclose(trace.outputs[taken], outputs[taken], rtol=1e-5,
                                           atol=1e-6)  # fmt: skip
                offline = scheme.decode(torch.from_numpy(trace.outputs), taken).numpy()
                np.testing.assert_allclose(answer.logits, offline[answer.position], rtol=1e-6,
                                           atol=1e-6)  # fmt: skip
                assert answer.workers == tuple(np.flatnonzero(taken))
            if name in ("bacc", "nercc"):
                assert all(len(a.workers) >= 4 for a in answers)  # the first N - S = 4
            if name == "uncoded":
                assert all(a.workers == (0, 1, 2) for a in answers)
        del workers
    # worker 0 answers after 30 ms or more; NeRCC never waits for it
    assert np.percentile(latencies["uncoded"], 50) > 25
    assert np.percentile(latencies["nercc"], 99) < np.percentile(latencies["uncoded"], 99)


def test_killed_workers_lose_no_query_and_answer_none_twice():
    queries = images(48, seed=1)
    delays = DelayModel("shifted_exponential", shift=2.0, rate=0.5)
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
            for a in answers:
                assert not set(a.failed) & set(a.workers)
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


def test_a_query_fails_loudly_when_its_only_worker_never_comes_back():
    """Uncoded with a worker that cannot be restarted: its queries fail, the others answer."""
    with ray_cluster(num_cpus=2):
        workers = start_workers(tiny_model, 2, None, max_restarts=0)
        ray.kill(workers[1], no_restart=True)
        with Frontend(workers, Uncoded(2), "uncoded", WaitPolicy(0), max_wait_ms=50,
                      retry_s=0.5) as front:  # fmt: skip
            first, second = front.submit(images(1)[0]), front.submit(images(1, 2)[0])
            assert first.result(timeout=30).workers == (0,)
            with pytest.raises(QueryFailed, match="input 1 lost"):
                second.result(timeout=30)


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
