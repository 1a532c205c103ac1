"""Benchmark the coding core against its floor (plain matmuls) and the naive refit.

Setting (from the issue): K=20 inputs of 784 features, N=100 workers, 10 logits out, 512 groups
coded at once, 20 stragglers per group, every group with its own availability pattern.

- ``encode_s``: NeRCC encoding of the 512 groups (torch float32).
- ``decode_s``: building the 512 decoder matrices (fresh scheme, empty cache) and the batched
  decode.
- ``matmul_s``: ``torch.matmul`` of the same shapes with ready-made matrices (the floor).
- ``refit_s``: the naive way, ``scipy.interpolate.make_smoothing_spline`` fitted per group and per
  feature for the encoder and the decoder (timed on ``refit_groups`` groups, scaled to 512).
- ``gcv_ratio``: ``decode_each`` of one batch of 50 patterns (40 stragglers each, 10 logits,
  torch float32) with ``lam_dec="gcv"`` over the time with a fixed ``lam_dec``, both on a fresh
  scheme (no cached eigen-decompositions); ``gcv_cached_ratio`` the same with every mask's
  decomposition already cached (a repeated pattern).

Each time is the median of ``--repeats`` runs; the JSON object printed last holds the results.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch
from scipy.interpolate import make_smoothing_spline

from nercc.coding import NeRCC

K, N, FEATURES, LOGITS, GROUPS, STRAGGLERS = 20, 100, 784, 10, 512, 20
LAM_ENC, LAM_DEC = 1e-4, 1e-3
GCV_PATTERNS, GCV_STRAGGLERS = 50, 40


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--refit-groups", type=int, default=4)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    inputs = torch.randn(K, GROUPS, FEATURES, generator=torch.Generator().manual_seed(0))
    outputs = torch.randn(N, GROUPS, LOGITS, generator=torch.Generator().manual_seed(1))
    available = np.ones((GROUPS, N), dtype=bool)
    for row in available:
        row[rng.choice(N, STRAGGLERS, replace=False)] = False
    outputs_by_group = outputs.permute(1, 0, 2)  # (G, N, logits): each group meets its pattern

    def encode() -> torch.Tensor:
        return NeRCC(K, N, LAM_ENC, LAM_DEC).encode(inputs)

    def decode() -> torch.Tensor:
        scheme = NeRCC(K, N, LAM_ENC, LAM_DEC)  # empty cache: the matrices are built every time
        decoders = torch.as_tensor(scheme.decoder_matrices(available), dtype=torch.float32)
        return torch.bmm(decoders, outputs_by_group)

    encoder_ready = torch.randn(N, K)
    decoders_ready = torch.randn(GROUPS, K, N)

    def matmul() -> None:
        torch.matmul(encoder_ready, inputs.reshape(K, -1))
        torch.bmm(decoders_ready, outputs_by_group)

    scheme = NeRCC(K, N, LAM_ENC, LAM_DEC)
    x = inputs.numpy().astype(np.float64)
    y = outputs.numpy().astype(np.float64)

    def refit() -> None:
        # scipy's lam is not mean-normalised: L = lam * n. (Its cubic extrapolation beyond the
        # end knots is not even NeRCC's linear one; the cost is what is measured here.)
        for g in range(args.refit_groups):
            make_smoothing_spline(scheme.alphas, x[:, g], lam=LAM_ENC * K)(scheme.betas)
            mask = available[g]
            sites = scheme.betas[mask]
            make_smoothing_spline(sites, y[mask, g], lam=LAM_DEC * sites.size)(scheme.alphas)

    gcv_available = np.ones((GCV_PATTERNS, N), dtype=bool)
    for row in gcv_available:
        row[rng.choice(N, GCV_STRAGGLERS, replace=False)] = False
    gcv_outputs = outputs_by_group[:GCV_PATTERNS]  # (50, N, logits)

    def decode_fixed() -> torch.Tensor:
        return NeRCC(K, N, LAM_ENC, LAM_DEC).decode_each(gcv_outputs, gcv_available)

    def decode_gcv() -> torch.Tensor:
        return NeRCC(K, N, LAM_ENC, "gcv").decode_each(gcv_outputs, gcv_available)

    warm_gcv = NeRCC(K, N, LAM_ENC, "gcv")

    def decode_gcv_cached() -> torch.Tensor:
        return warm_gcv.decode_each(gcv_outputs, gcv_available)

    for fn in (encode, decode, matmul, decode_fixed, decode_gcv, decode_gcv_cached):  # warm up
        fn()
    encode_s = median_time(encode, args.repeats)
    decode_s = median_time(decode, args.repeats)
    matmul_s = median_time(matmul, args.repeats)
    refit_s = median_time(refit, max(1, args.repeats // 3)) * GROUPS / args.refit_groups
    decode_fixed_s = median_time(decode_fixed, args.repeats)
    decode_gcv_s = median_time(decode_gcv, args.repeats)
    decode_gcv_cached_s = median_time(decode_gcv_cached, args.repeats)
    result = {
        "num_inputs": K,
        "num_workers": N,
        "features": FEATURES,
        "logits": LOGITS,
        "groups": GROUPS,
        "stragglers": STRAGGLERS,
        "threads": torch.get_num_threads(),
        "encode_s": encode_s,
        "decode_s": decode_s,
        "matmul_s": matmul_s,
        "ratio_to_matmul": (encode_s + decode_s) / matmul_s,
        "refit_s": refit_s,
        "speedup_vs_refit": refit_s / (encode_s + decode_s),
        "gcv_patterns": GCV_PATTERNS,
        "gcv_stragglers": GCV_STRAGGLERS,
        "gcv_grid_size": int(warm_gcv.lam_grid.size),
        "decode_fixed_s": decode_fixed_s,
        "decode_gcv_s": decode_gcv_s,
        "gcv_ratio": decode_gcv_s / decode_fixed_s,
        "decode_gcv_cached_s": decode_gcv_cached_s,
        "gcv_cached_ratio": decode_gcv_cached_s / decode_fixed_s,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
