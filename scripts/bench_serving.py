"""Benchmark the serving path: what coding costs beside uncoded serving, on one machine.

Setting: LeNet5-sized work on a tiny stand-in (no checkpoint needed) or the published LeNet5 with
``--published``; K=4 queries per group, N=12 workers, S=4, no injected delay, one query at a
time (no batching wait, no queueing), so each number is one group's own path.

- ``<scheme>_group_ms``: median time of one query through the frontend (encode, N calls,
  ``ray.wait`` for the policy, decode), for uncoded (K calls), replication, BACC and NeRCC (N).
- ``<scheme>_ratio``: that over uncoded's.
- ``call_ms``: median time of one round trip to one worker (the per-call cost of Ray here).
- ``encode_decode_us``: NeRCC's encode of a group and decode of its answers in the frontend
  (numpy float32, cached pattern): the coding itself.
- ``encode_decode_k20_n100_us``: the same for K=20, N=100.

The JSON object printed last holds the results.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch


def stand_in() -> torch.nn.Module:
    """A LeNet5-shaped network with fixed random weights (28x28 to 10 logits)."""
    from nercc.models.lenet5 import LeNet5

    torch.manual_seed(0)
    return LeNet5()


def published() -> torch.nn.Module:
    from nercc.models import load_classifier

    return load_classifier("lenet5", "fashion_mnist")


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def coding_us(k: int, n: int, repeats: int) -> float:
    from nercc.coding import NeRCC

    scheme = NeRCC(k, n, lam_enc=1e-4, lam_dec=1e-3)
    images = np.random.default_rng(0).random((k, 1, 28, 28)).astype(np.float32)
    outputs = np.random.default_rng(1).random((n, 10)).astype(np.float32)
    available = np.ones(n, dtype=bool)
    available[np.random.default_rng(2).choice(n, size=n // 3, replace=False)] = False
    scheme.decode(outputs, available)  # cache the pattern's decoder

    def both():
        scheme.encode(images)
        scheme.decode(outputs, available)

    return median_ms(both, repeats) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--published", action="store_true", help="the published LeNet5")
    args = parser.parse_args()
    import ray

    from nercc.coding import BACC, NeRCC, Replication, Uncoded
    from nercc.serving import Frontend, ray_cluster, start_workers, stop_workers
    from nercc.serving.workers import pack_input
    from nercc.stragglers import WaitPolicy

    k, n, s = 4, 12, 4
    images = np.random.default_rng(0).random((64, 1, 28, 28)).astype(np.float32)
    schemes = {
        "uncoded": (Uncoded(k), WaitPolicy(0)),
        "replication": (Replication(k, n // k), WaitPolicy(0)),
        "bacc": (BACC(k, n), WaitPolicy(s)),
        "nercc": (NeRCC(k, n), WaitPolicy(s)),
    }
    result: dict[str, float | int | str] = {"num_inputs": k, "num_workers": n, "stragglers": s}
    result["model"] = "published lenet5" if args.published else "lenet5 stand-in"
    with ray_cluster():
        workers = start_workers(published if args.published else stand_in, n, None)
        message = pack_input(0, 0, images[:1])
        result["call_ms"] = median_ms(
            lambda: ray.get(workers[0].compute.remote(message)), args.repeats
        )
        for name, (scheme, policy) in schemes.items():
            with Frontend(workers, scheme, name, policy, max_wait_ms=0) as frontend:
                for image in images[:20]:  # warm up
                    frontend.predict(image)
                cycle = iter(range(10**9))
                result[f"{name}_group_ms"] = median_ms(
                    lambda f=frontend, c=cycle: f.predict(images[next(c) % len(images)]),
                    args.repeats,
                )
        stop_workers(workers)
    for name in schemes:
        result[f"{name}_ratio"] = result[f"{name}_group_ms"] / result["uncoded_group_ms"]
    result["encode_decode_us"] = coding_us(k, n, args.repeats)
    result["encode_decode_k20_n100_us"] = coding_us(20, 100, args.repeats)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
