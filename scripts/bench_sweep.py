"""Benchmark lambda sweeps: one-job grid against separate evaluations, and the output cache.

Everything runs in this one process, in the order below, on the project's own task functions:

1. ``grid``: the 8 lam_enc x 5 lam_dec NeRCC grid at 9 S on ``--images`` validation images of
   Fashion-MNIST with LeNet5 (K=20, N=100), as ``nercc.tune`` evaluates it: one job, one
   classifier pass per lam_enc (``one_job_s``);
2. the same 40 pairs as 40 separate evaluations, each the ``nercc.eval`` task with
   ``eval.cache=false`` (what a multirun over the pairs does: data, classifier, Lightning and
   the result files per job; ``separate_s``); ``speedup = separate_s / one_job_s``. The same
   pairs through ``run_coded`` alone (data and classifier loaded once, no result files) give
   ``separate_core_s`` and ``speedup_core``, the part of the gain that is not start-up cost;
3. a 2 x 2 multirun, ``scheme.nercc.lam_dec`` x ``straggler`` (fixed, bernoulli), of the
   default evaluation (NeRCC and BACC) of ``--cache-model`` on the validation split, as the
   basic launcher runs it (jobs one after another in one process), with ``eval.cache=false``
   and then with the cache, starting cold (``cache_speedup``). Only the first job runs the
   classifier; the others differ in the decoder or the straggler model and find its outputs.

Uses the published classifiers (``make models``) and the Fashion-MNIST files (``make data``).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from nercc.config import build
from nercc.eval import check_config, evaluate, run_coded
from nercc.paths import CONFIG_DIR

LAM_ENC = [0.0, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3]
LAM_DEC = [0.0, 1e-10, 1e-9, 1e-8, 1e-7]


def config(scratch: Path, overrides: list[str]) -> DictConfig:
    """The eval config as ``python -m nercc.eval <overrides>`` composes it, writing in scratch."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("eval", overrides, return_hydra_config=True)
    run = tempfile.mkdtemp(dir=scratch)
    cfg.hydra.runtime.output_dir = run
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = run
        cfg.paths.cache_dir = str(scratch / "cache")
    return cfg


@contextmanager
def timed(into: dict, key: str):
    start = time.perf_counter()
    yield
    into[key] = time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="validation images of the grid")
    parser.add_argument("--cache-model", default="repvgg", help="the model of the 2 x 2 multirun")
    parser.add_argument(
        "--cache-images", type=int, default=5000, help="validation images of the 2 x 2 multirun"
    )
    args = parser.parse_args()
    quiet = ["logger=none", "trainer.enable_progress_bar=false", "eval.split=val"]
    grid = [*quiet, "experiment=paper/lenet5", "scheme=nercc", f"eval.limit={args.images}"]
    times: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        lists = [f"scheme.nercc.lam_enc={LAM_ENC}", f"scheme.nercc.lam_dec={LAM_DEC}"]

        # 1. one job: every pair in one evaluation (no cache, so nothing is reused across runs)
        cfg = config(scratch, [*grid, *lists, "eval.cache=false", "optimized_metric=null"])
        from nercc.models import load_classifier

        data = build(cfg.data)
        data.setup("test")
        classifier = load_classifier(cfg.model_name, cfg.data.name, cfg.paths.checkpoint_dir)
        plan = check_config(cfg)
        stragglers = list(cfg.stragglers)
        with timed(times, "one_job_s"):
            one_job, _ = run_coded(cfg, plan.variants, plan.straggler_factory, data, classifier)

        # 2. separate evaluations of the same pairs
        separate, core = [], []
        with timed(times, "separate_s"):
            for a in LAM_ENC:
                for b in LAM_DEC:
                    pair = [f"scheme.nercc.lam_enc={a}", f"scheme.nercc.lam_dec={b}"]
                    cfg = config(scratch, [*grid, *pair, "eval.cache=false"])
                    separate += evaluate(cfg)[0]["rows"]
        with timed(times, "separate_core_s"):
            for a in LAM_ENC:
                for b in LAM_DEC:
                    pair = [f"scheme.nercc.lam_enc={a}", f"scheme.nercc.lam_dec={b}"]
                    cfg = config(scratch, [*grid, *pair, "eval.cache=false"])
                    plan = check_config(cfg)
                    rows, _ = run_coded(
                        cfg, plan.variants, plan.straggler_factory, data, classifier
                    )
                    core += rows
        key = lambda r: (r["lam_enc"], r["lam_dec"], r["num_stragglers"])  # noqa: E731
        metrics = ("mse", "acc", "rel_acc", "agreement")
        same_grid = [tuple(r[m] for m in metrics) for r in sorted(one_job, key=key)] == [
            tuple(r[m] for m in metrics) for r in sorted(separate, key=key)
        ]

        # 3. a 2 x 2 multirun without and with the cache (cold at its start)
        jobs = [
            [f"scheme.nercc.lam_dec={b}", f"straggler={straggler}"]
            for b in (0.0, 1e-8)
            for straggler in ("fixed", "bernoulli")
        ]
        base = [
            *quiet,
            f"experiment=paper/{args.cache_model}",
            "scheme.nercc.lam_enc=0",
            f"eval.limit={args.cache_images}",
        ]
        results: dict[bool, list] = {}
        for cached in (False, True):
            results[cached] = []
            with timed(times, f"multirun_{'cached' if cached else 'uncached'}_s"):
                for job in jobs:
                    cfg = config(scratch, [*base, *job, f"eval.cache={str(cached).lower()}"])
                    results[cached].append(evaluate(cfg)[0]["rows"])
        same_cached = results[False] == results[True]

    print(
        json.dumps(
            {
                "threads": torch.get_num_threads(),
                "grid": {"lam_enc": LAM_ENC, "lam_dec": LAM_DEC, "model": "lenet5"},
                "images": args.images,
                "stragglers": stragglers,
                "one_job_s": times["one_job_s"],
                "separate_s": times["separate_s"],
                "speedup": times["separate_s"] / times["one_job_s"],
                "separate_core_s": times["separate_core_s"],
                "speedup_core": times["separate_core_s"] / times["one_job_s"],
                "same_grid_results": same_grid,
                "multirun": {"model": args.cache_model, "images": args.cache_images, "jobs": jobs},
                "multirun_uncached_s": times["multirun_uncached_s"],
                "multirun_cached_s": times["multirun_cached_s"],
                "cache_speedup": times["multirun_uncached_s"] / times["multirun_cached_s"],
                "same_cached_results": same_cached,
            }
        )
    )


if __name__ == "__main__":
    main()
