"""One prepared run on a GPU machine: the GPU tests, training and coded-evaluation times, and the
CPU-versus-GPU and DDP comparisons, as one JSON object.

Steps (each timed, each under its own time limit and the run's deadline; a failing step is
recorded with its error and the next one runs):

1. ``device``: the GPU, torch and CUDA versions.
2. ``tests``: ``pytest -m gpu tests/gpu`` (counts, and the failures' messages).
3. ``training``: LeNet5, RepVGG and the ViT trained on the GPU with their default experiments
   (``python -m nercc.train experiment=<model>_fashion_mnist trainer=gpu``): seconds and test
   accuracy, published where the next step finds them.
4. ``forward_ratio``: ``scripts/bench_eval.py --accelerator gpu --batch-size 10000`` on those
   models at the three paper settings (coded time over plain inference time on the same 10,000
   images, in one batch, against the floor N/K + 1), with the decode share.
5. ``comparisons``: ``python -m nercc.eval experiment=paper/lenet5`` on the first
   ``--eval-limit`` test images under trainer=cpu, trainer=gpu and trainer=ddp (TF32 off):
   the largest relative mse difference and rel_acc difference of their rows, and their times.

It needs only what the GPU image has (torch, Lightning, timm, scipy) plus hydra-core, omegaconf
and antlr4-python3-runtime on ``PYTHONPATH`` and Fashion-MNIST's four ``.gz`` files under
``data/FashionMNIST/raw``: ``bash scripts/gpu_bundle.sh`` prepares both here (in ``.gpu/``), and
``bash scripts/gpu_run.sh`` installs them there and runs this script. ``--smoke`` runs every step
on the CPU with tiny settings (synthetic data, one epoch), to check the script itself.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("lenet5", "repvgg", "vit")
QUIET = ["logger=none", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


class Deadline:
    """The run's end: each step gets at most its own limit and never more than is left."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def limit(self, seconds: float) -> float:
        left = self.left()
        if left < 10:
            raise TimeoutError("skipped: the run's deadline has passed")
        return min(seconds, left)


def run(command: list[str], limit: float, env: dict | None = None) -> tuple[float, str, str]:
    """Run ``command`` in the project's root: its seconds, stdout and stderr. Raises
    RuntimeError naming the exit status and the output's tail when it fails."""
    start = time.perf_counter()
    try:
        done = subprocess.run(
            command,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=limit,
            env={**os.environ, **(env or {})},
        )
    except subprocess.TimeoutExpired as error:
        raise RuntimeError(f"timed out after {limit:.0f} s: {' '.join(command)}") from error
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-2000:]
        raise RuntimeError(f"exit {done.returncode}: {' '.join(command)}\n{tail}")
    return time.perf_counter() - start, done.stdout, done.stderr


def step(result: dict, name: str, function, *args) -> None:
    """Run one step into ``result[name]``; an error becomes ``{"error": ...}``."""
    start = time.perf_counter()
    try:
        result[name] = function(*args)
    except Exception as error:  # noqa: BLE001  (recorded: the next step still runs)
        result[name] = {"error": f"{type(error).__name__}: {error}"}
    if isinstance(result[name], dict):
        result[name]["step_s"] = round(time.perf_counter() - start, 2)
    print(f"[gpu_check] {name}: {time.perf_counter() - start:.1f} s", file=sys.stderr)


def device_info(args) -> dict:
    import torch

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpus"] = torch.cuda.device_count()
    return info


def gpu_tests(args, deadline: Deadline) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "junit.xml"
        command = [sys.executable, "-m", "pytest", "-m", "gpu", "tests/gpu", "-q",
                   "-p", "no:cacheprovider", f"--junitxml={report}"]  # fmt: skip
        start = time.perf_counter()
        done = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=deadline.limit(240)
        )
        seconds = time.perf_counter() - start
        counts = {"passed": 0, "failed": 0, "skipped": 0, "errors": 0}
        failures = []
        if report.is_file():
            for case in ElementTree.parse(report).getroot().iter("testcase"):
                outcome = "passed"
                for child in case:
                    if child.tag in ("failure", "error", "skipped"):
                        outcome = {"failure": "failed", "error": "errors"}.get(child.tag, "skipped")
                        if outcome != "skipped":
                            message = (child.get("message") or "")[:300]
                            failures.append(f"{case.get('name')}: {message}")
                counts[outcome] += 1
    return {
        "exit_code": done.returncode,
        "seconds": round(seconds, 1),
        **counts,
        "failures": failures,
        "tail": (done.stdout + done.stderr)[-1500:] if done.returncode not in (0,) else "",
    }


def training(args, deadline: Deadline) -> dict:
    times = {}
    for model in MODELS:
        if args.smoke:
            overrides = ["data=synthetic", f"model={model}", "trainer.max_epochs=1"]
            overrides += [f"paths.checkpoint_dir={args.checkpoints}", "trainer=cpu"]
        else:
            overrides = [f"experiment={model}_fashion_mnist", "trainer=gpu"]
        command = [sys.executable, "-m", "nercc.train", *overrides, *QUIET,
                   f"hydra.run.dir={args.scratch / ('train_' + model)}"]  # fmt: skip
        try:
            seconds, out, err = run(command, deadline.limit(args.train_limit))
        except (RuntimeError, TimeoutError) as error:
            times[model] = {"error": str(error)[-1500:]}
            continue
        accuracy = re.search(r"test/acc ([0-9]+\.[0-9]+)", out + err)
        times[model] = {
            "seconds": round(seconds, 1),
            "test_acc": float(accuracy.group(1)) if accuracy else None,
            "overrides": overrides,
        }
    return times


def forward_ratio(args, deadline: Deadline) -> dict:
    if args.smoke:
        command = [sys.executable, "scripts/bench_eval.py", "--models", "lenet5",
                   "--repeats", "1", "--naive", "none", "--accelerator", "cpu"]  # fmt: skip
    else:
        # one batch (and classifier chunk) of all 10,000 images: what a GPU holds easily, and
        # the per-batch host work (pattern draws, decoders) is paid once per S, not ten times
        command = [sys.executable, "scripts/bench_eval.py", "--accelerator", "gpu",
                   "--naive", "none", "--repeats", "3", "--batch-size", "10000"]  # fmt: skip
    _, out, _ = run(command, deadline.limit(180))
    found = json.loads(out.strip().splitlines()[-1])  # the benchmark's one JSON line
    for model in MODELS:
        if model in found:
            entry = found[model]
            entry["ratio_over_floor"] = entry["forward_ratio"] / entry["forward_ratio_floor"]
    return found


def eval_rows(args, trainer: str, deadline: Deadline) -> tuple[float, list[dict]]:
    folder = args.scratch / f"eval_{trainer}"
    if args.smoke:
        setting = ["data=synthetic", "coding.num_inputs=8", "coding.num_workers=20",
                   "stragglers=[0,5,10]", "eval.batch_size=64",
                   f"paths.checkpoint_dir={args.checkpoints}"]  # fmt: skip
    else:
        setting = ["experiment=paper/lenet5", f"eval.limit={args.eval_limit}"]
    command = [sys.executable, "-m", "nercc.eval", *setting, f"trainer={trainer}", *QUIET,
               "scheme.nercc.lam_enc=1e-6", "scheme.nercc.lam_dec=1e-4",
               f"hydra.run.dir={folder}"]  # fmt: skip
    seconds, _, _ = run(command, deadline.limit(150), env={"NVIDIA_TF32_OVERRIDE": "0"})
    return seconds, json.loads((folder / "results.json").read_text())["rows"]


def compare(reference: list[dict], other: list[dict]) -> dict:
    pairs = list(zip(reference, other, strict=True))
    same_cells = all(
        (a["variant"], a["num_stragglers"]) == (b["variant"], b["num_stragglers"]) for a, b in pairs
    )
    mse = max(abs(b["mse"] - a["mse"]) / max(abs(a["mse"]), 1e-300) for a, b in pairs)
    rel_acc = max(abs(b["rel_acc"] - a["rel_acc"]) for a, b in pairs)
    return {
        "rows": len(pairs),
        "same_cells": same_cells,
        "max_mse_rel_diff": mse,
        "max_rel_acc_diff": rel_acc,
        "mse_within_1e-4": mse <= 1e-4,
    }


def comparisons(args, deadline: Deadline) -> dict:
    """The rows of trainer=gpu against trainer=cpu, and of trainer=ddp against trainer=gpu."""
    names = ("cpu", "cpu", "ddp_cpu") if args.smoke else ("cpu", "gpu", "ddp")
    runs = {}
    for label, trainer in zip(("cpu", "gpu", "ddp"), names, strict=True):
        runs[label] = eval_rows(args, trainer, deadline)
    return {
        "trainers": list(names),
        "seconds": {label: round(seconds, 1) for label, (seconds, _) in runs.items()},
        "cpu_vs_gpu": compare(runs["cpu"][1], runs["gpu"][1]),
        "ddp_vs_gpu": compare(runs["gpu"][1], runs["ddp"][1]),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="every step on the CPU, tiny")
    parser.add_argument("--deadline", type=float, default=460.0, help="seconds for the run")
    parser.add_argument("--train-limit", type=float, default=110.0, help="seconds per model")
    parser.add_argument("--eval-limit", type=int, default=2000, help="test images compared")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    deadline = Deadline(args.deadline)
    result: dict = {"smoke": args.smoke, "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as scratch:
        args.scratch = Path(scratch)
        args.checkpoints = args.scratch / "checkpoints"
        step(result, "device", device_info, args)
        if not args.smoke and not result["device"].get("cuda_available"):
            result["error"] = "no CUDA device: run with --smoke to check the script on the CPU"
        else:
            step(result, "tests", gpu_tests, args, deadline)
            step(result, "training", training, args, deadline)
            step(result, "forward_ratio", forward_ratio, args, deadline)
            step(result, "comparisons", comparisons, args, deadline)
    result["seconds"] = round(args.deadline - deadline.left(), 1)
    text = json.dumps(result)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return result


if __name__ == "__main__":
    main()
