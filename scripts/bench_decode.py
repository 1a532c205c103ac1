"""Benchmark decoding one group, as a serving frontend does, against its floor (one matmul).

Setting (from the issue): K=20 inputs, N=100 workers, 20 stragglers, 10 logits per worker, torch
float32 outputs, one availability mask of shape (N,) per group. Uncoded has N = K = 20 workers;
it gets 4 stragglers (the same fifth of its workers).

- ``floor_us``: ``torch.matmul`` of a ready (20, 100) float32 tensor with the (100, 10) outputs.
- ``convert_matmul_us``: the float64 decoder converted to a float32 tensor, then the matmul (what
  a decode without cached torch copies pays on top of the check and the lookup).
- ``nercc_us``, ``bacc_us``, ``uncoded_us``: ``scheme.decode(outputs, mask)`` of a pattern whose
  decoder (and its torch copy) is cached; ``*_ratio`` each over ``floor_us``.
- ``nercc_first_us``, ``bacc_first_us``, ``uncoded_first_us``: the same decode of a pattern the
  scheme has not seen (the decoder built and converted), on a scheme whose encoder is built.
- ``groups_per_s_1_thread``, ``groups_per_s_4_threads``: groups decoded per second by one NeRCC
  shared by 1 and by 4 threads (64 cached patterns, ``--groups`` groups in all, split evenly);
  ``thread_ratio`` the second over the first (the GIL serialises the Python part of a decode).

Each decode time is the median over ``--repeats`` runs of the mean of ``--number`` calls; a first
pattern's time is the median over ``--repeats`` new patterns; the throughputs are medians over
``--repeats`` runs. Torch runs ``--threads`` intra-op threads (1 by default, as a frontend should
for matrices this small). The JSON object printed last holds the results, in microseconds and
groups/s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from collections.abc import Callable

import numpy as np
import torch

from nercc.coding import BACC, NeRCC, Uncoded

K, N, STRAGGLERS, LOGITS = 20, 100, 20, 10
LAM_ENC, LAM_DEC = 1e-4, 1e-3
THREADS, POOL = 4, 64


def mean_us(fn: Callable[[], object], number: int, repeats: int) -> float:
    """Median over ``repeats`` of the mean time of ``number`` calls, in microseconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return statistics.median(times) * 1e6


def masks(num_workers: int, stragglers: int, count: int, seed: int) -> np.ndarray:
    """``count`` distinct masks (count, num_workers) with ``stragglers`` False each."""
    rng = np.random.default_rng(seed)
    found: dict[bytes, np.ndarray] = {}
    while len(found) < count:
        mask = np.ones(num_workers, dtype=bool)
        mask[rng.choice(num_workers, stragglers, replace=False)] = False
        found.setdefault(mask.tobytes(), mask)
    return np.stack(list(found.values()))


def first_us(make: Callable[[], object], patterns: np.ndarray, outputs: torch.Tensor) -> float:
    """Median time of decoding ``patterns[1:]``, which a warm scheme (encoder built, code paths
    run once on ``patterns[0]``) has never seen."""
    scheme = make()
    scheme.encoder_matrix()
    scheme.decode(outputs, patterns[0])
    times = []
    for mask in patterns[1:]:
        start = time.perf_counter()
        scheme.decode(outputs, mask)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def groups_per_s(
    scheme: NeRCC,
    patterns: np.ndarray,
    outputs: torch.Tensor,
    threads: int,
    groups: int,
    repeats: int,
) -> float:
    """Median groups per second of ``threads`` threads decoding ``groups`` groups in all."""
    share = groups // threads
    rates = []
    for _ in range(repeats):
        start = threading.Barrier(threads + 1)

        def work(offset: int, start: threading.Barrier = start) -> None:
            start.wait()
            for g in range(share):
                scheme.decode(outputs, patterns[(offset + g) % len(patterns)])

        workers = [threading.Thread(target=work, args=(t * 7,)) for t in range(threads)]
        for worker in workers:
            worker.start()
        start.wait()
        began = time.perf_counter()
        for worker in workers:
            worker.join()
        rates.append(share * threads / (time.perf_counter() - began))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--number", type=int, default=2000, help="calls per timed run")
    parser.add_argument("--groups", type=int, default=8000, help="groups per throughput run")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (a group's matmul is too small to split: more threads only "
        "add their wake-ups, badly so on a busy machine)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    generator = torch.Generator().manual_seed(0)
    outputs = torch.randn(N, LOGITS, generator=generator)
    uncoded_outputs = torch.randn(K, LOGITS, generator=generator)
    ready = torch.randn(K, N, generator=generator)
    schemes = {
        "nercc": (lambda: NeRCC(K, N, LAM_ENC, LAM_DEC), N, STRAGGLERS, outputs),
        "bacc": (lambda: BACC(K, N), N, STRAGGLERS, outputs),
        "uncoded": (lambda: Uncoded(K), K, STRAGGLERS * K // N, uncoded_outputs),
    }

    result: dict[str, object] = {
        "num_inputs": K,
        "num_workers": N,
        "stragglers": STRAGGLERS,
        "logits": LOGITS,
        "torch_threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "number": args.number,
    }
    floor = mean_us(lambda: ready @ outputs, args.number, args.repeats)
    result["floor_us"] = floor

    nercc = NeRCC(K, N, LAM_ENC, LAM_DEC)
    mask = masks(N, STRAGGLERS, 1, seed=1)[0]
    decoder = nercc.decoder_matrix(mask)
    result["convert_matmul_us"] = mean_us(
        lambda: torch.as_tensor(np.array(decoder), dtype=torch.float32) @ outputs,
        args.number,
        args.repeats,
    )
    for name, (make, workers, stragglers, values) in schemes.items():
        scheme = make()
        mask = masks(workers, stragglers, 1, seed=1)[0]
        scheme.decode(values, mask)  # cached from here on, with its float32 copy
        took = mean_us(lambda s=scheme, m=mask, v=values: s.decode(v, m), args.number, args.repeats)
        result[f"{name}_us"] = took
        result[f"{name}_ratio"] = took / floor
    for name, (make, workers, stragglers, values) in schemes.items():
        fresh = masks(workers, stragglers, args.repeats + 1, seed=2)
        result[f"{name}_first_us"] = first_us(make, fresh, values)

    pool = masks(N, STRAGGLERS, POOL, seed=3)
    nercc.decode(outputs, pool)  # every pattern and its float32 copy cached
    one = groups_per_s(nercc, pool, outputs, 1, args.groups, args.repeats)
    many = groups_per_s(nercc, pool, outputs, THREADS, args.groups, args.repeats)
    result["groups_per_s_1_thread"] = one
    result[f"groups_per_s_{THREADS}_threads"] = many
    result["thread_ratio"] = many / one
    print(json.dumps(result))


if __name__ == "__main__":
    main()
