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
   default evaluation (NeRCC and BACC) of each of ``--cache-models`` on the whole validation
   split, as the basic launcher runs it (jobs one after another in one process), with
   ``eval.cache=false`` and then with the cache, starting cold (``cache_speedup_by_model``).
   Only the first job runs the classifier; the others differ in the decoder or the straggler
   model and find its outputs. What is left of a cached job is its fixed cost (data, classifier
   load, Lightning, result files and plots: about 1.3 s here), so the gain grows with the
   classifier's cost: ``cache_speedup`` is that of the costliest classifier, the ViT.

Uses the published classifiers (``make models``) and the Fashion-MNIST files (``make data``).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from nercc.evaluation.runner import run_coded
from nercc.paths import CONFIG_DIR
from nercc.runtime.checks import expected_input
from nercc.tasks.evaluate import check_config, evaluate
from nercc.utils.instantiate import build

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


@contextlib.contextmanager
def timed(into: dict, key: str):
    start = time.perf_counter()
    yield
    into[key] = time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="validation images of the grid")
    parser.add_argument(
        "--cache-models", default="lenet5,repvgg,vit", help="the models of the 2 x 2 multirun"
    )
    parser.add_argument(
        "--cache-images", type=int, default=5000, help="validation images of the 2 x 2 multirun"
    )
    args = parser.parse_args()
    quiet = ["logger=none", "trainer.enable_progress_bar=false", "eval.split=val"]
    grid = [*quiet, "experiment=paper/lenet5", "scheme=nercc", f"eval.limit={args.images}"]
    times: dict[str, float] = {}
    # The tasks print their result tables: only this script's JSON goes to stdout.
    with tempfile.TemporaryDirectory() as folder, contextlib.redirect_stdout(sys.stderr):
        scratch = Path(folder)
        lists = [f"scheme.nercc.lam_enc={LAM_ENC}", f"scheme.nercc.lam_dec={LAM_DEC}"]

        # 3. first, before the grid's 80 evaluations load the process: a 2 x 2 multirun without
        # and with the cache (cold at its start), per model, after one untimed warm-up run
        evaluate(config(scratch, [*quiet, "experiment=paper/lenet5", "eval.limit=1000"]))
        jobs = [
            [f"scheme.nercc.lam_dec={b}", f"straggler={straggler}"]
            for b in (0.0, 1e-8)
            for straggler in ("fixed", "bernoulli")
        ]
        cache_speedup, same_cached = {}, True
        for model in args.cache_models.split(","):
            base = [
                *quiet,
                f"experiment=paper/{model}",
                "scheme.nercc.lam_enc=0",
                f"eval.limit={args.cache_images}",
            ]
            seconds, results = {}, {}
            for cached in (False, True):
                with timed(seconds, cached):
                    results[cached] = [
                        evaluate(
                            config(scratch, [*base, *job, f"eval.cache={str(cached).lower()}"])
                        )[0]["rows"]
                        for job in jobs
                    ]
            times[f"multirun_{model}_uncached_s"] = seconds[False]
            times[f"multirun_{model}_cached_s"] = seconds[True]
            cache_speedup[model] = seconds[False] / seconds[True]
            same_cached &= results[False] == results[True]

        # 1. one job: every pair in one evaluation (no cache, so nothing is reused across runs)
        cfg = config(scratch, [*grid, *lists, "eval.cache=false", "optimized_metric=null"])
        from nercc.models import load_classifier

        data = build(cfg.data)
        data.setup("test")
        classifier = load_classifier(
            cfg.model_name, cfg.data.name, cfg.paths.checkpoint_dir, **expected_input(cfg)
        )
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
                "multirun": {"images": args.cache_images, "jobs": jobs},
                **{k: v for k, v in times.items() if k.startswith("multirun_")},
                "cache_speedup_by_model": cache_speedup,
                "cache_speedup": cache_speedup.get("vit"),
                "same_cached_results": same_cached,
            }
        )
    )


if __name__ == "__main__":
    main()
