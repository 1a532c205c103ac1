"""Benchmark the coded evaluation against the plain classifier, per model, and the naive way.

For each model at its paper setting (K, N and the S list of ``conf/experiment/paper/<model>.yaml``:
LeNet5 K=20, N=100; RepVGG K=20, N=60; ViT K=8, N=20), on the same 10,000 images (the published
Fashion-MNIST classifier when there is one, else an untrained network of the same architecture
and cost; Fashion-MNIST test images when installed, else random ones), T patterns per group and S:

- ``plain_s``: the classifier on the 10,000 originals, in batches of ``--batch-size`` (the chunk
  size of the coded evaluation too), each batch moved to the device first;
- ``coded_s``: the full coded evaluation of NeRCC (``trainer.test`` of CodedInferenceModule), every
  S in one pass: the classifier runs once on the originals and once on the N/K x 10,000 coded
  inputs, so the floor of ``forward_ratio = coded_s / plain_s`` is ``N/K + 1``
  (``forward_ratio_floor``; ``forward_ratio_bound`` is 1.3 times it);
- ``decode_s``, ``decode_share``: the time of the coded run spent decoding (in
  ``decode_each_flagged``, parameters per pattern included) and its share of ``coded_s``.

For LeNet5 also (``--naive``, on by default for it alone):

- ``naive_s``: the same results computed the naive way, the evaluation re-run for each S;
  ``speedup_vs_naive = naive_s / coded_s`` and ``same_results``;
- ``coded_pair_s``: NeRCC and BACC together (the default eval): two encoders, so two coded
  passes; its floor is 2 N/K + 1 and ``forward_ratio_pair = coded_pair_s / plain_s``.

NeRCC decodes with fixed lambdas (``--lam-enc``, ``--lam-dec``), so each pattern's df is reported as
in a tuned run. Plain and coded times are medians of ``--repeats`` runs; the naive way runs once.
``--accelerator gpu`` times on the first GPU (``scripts/gpu_check.py`` uses this). Prints one JSON
object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from contextlib import contextmanager
from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from torch.utils.data import TensorDataset

from nercc.coding import BACC, NeRCC
from nercc.data.sources import DataNotFoundError, load_arrays
from nercc.evaluation import CodedInferenceModule, SchemeVariant
from nercc.evaluation import module as evaluation_module
from nercc.evaluation.data import CodedEvalData
from nercc.models import Classifier, LeNet5, load_classifier, repvgg, vit
from nercc.paths import project_root
from nercc.stragglers import FixedStragglers

MODELS = ("lenet5", "repvgg", "vit")
IMAGES = 10_000


class Images:
    num_workers = 0

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def raw_set(self, split: str) -> TensorDataset:
        return TensorDataset(self.images, self.labels)


def paper_setting(model: str) -> tuple[int, int, list[int]]:
    """K, N and the S list of the paper experiment of ``model``."""
    path = Path(project_root()) / "conf" / "experiment" / "paper" / f"{model}.yaml"
    config = OmegaConf.load(path)
    return (
        int(config.coding.num_inputs),
        int(config.coding.num_workers),
        [int(s) for s in config.stragglers],
    )


def classifier_for(model: str) -> tuple[Classifier, str]:
    """The published Fashion-MNIST classifier, else an untrained one of the same architecture
    (RepVGG re-parameterised, as a published one is)."""
    try:
        return load_classifier(model, "fashion_mnist"), f"published {model}_fashion_mnist"
    except FileNotFoundError:
        pass
    if model == "repvgg":
        from timm.utils import reparameterize_model

        net = reparameterize_model(repvgg(1, 10, 28))
    else:
        net = LeNet5(1, 10, 28) if model == "lenet5" else vit(1, 10, 28)
    classifier = Classifier(net, [0.5], [0.25]).eval().requires_grad_(False)
    return classifier, f"untrained {model}"


def load_images() -> tuple[torch.Tensor, torch.Tensor, str]:
    try:
        arrays = load_arrays("fashion_mnist", project_root() / "data")
    except DataNotFoundError:
        g = torch.Generator().manual_seed(0)
        images = torch.rand(IMAGES, 1, 28, 28, generator=g)
        return images, torch.randint(0, 10, (IMAGES,), generator=g), "random images"
    images = torch.from_numpy(arrays.test_images[:IMAGES]).float() / 255.0
    return images, torch.from_numpy(arrays.test_labels[:IMAGES]), "fashion_mnist test split"


@contextmanager
def timed_decoding():
    """Time every decode of the evaluation (its one entry to the schemes' decoders)."""
    spent = [0.0]
    original = evaluation_module._decode

    def decode(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - start

    evaluation_module._decode = decode
    try:
        yield spent
    finally:
        evaluation_module._decode = original


def synchronize(accelerator: str) -> None:
    if accelerator == "gpu":
        torch.cuda.synchronize()


def coded_run(classifier, data, setting, stragglers, args, with_bacc=False):
    """One coded evaluation: (seconds, seconds decoding, rows)."""
    k, n = setting
    chosen = [SchemeVariant("nercc", NeRCC(k, n, args.lam_enc, args.lam_dec))]
    if with_bacc:
        chosen.append(SchemeVariant("bacc", BACC(k, n)))
    module = CodedInferenceModule(
        classifier,
        chosen,
        stragglers,
        FixedStragglers,
        num_patterns=args.patterns,
        chunk_size=args.batch_size,
        seed=0,
    )
    trainer = pl.Trainer(
        accelerator=args.accelerator,
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with timed_decoding() as decoding:
        start = time.perf_counter()
        trainer.test(module, datamodule=CodedEvalData(data, "test", args.batch_size), verbose=False)
        synchronize(args.accelerator)
        seconds = time.perf_counter() - start
    return seconds, decoding[0], module.results


def bench_model(model: str, images, labels, args, naive: bool) -> dict:
    """The measures of one model at its paper setting (see the module docstring)."""
    k, n, stragglers = paper_setting(model)
    classifier, source = classifier_for(model)
    device = torch.device("cuda" if args.accelerator == "gpu" else "cpu")
    on_device = classifier.to(device)
    data = Images(images, labels)

    def plain() -> float:
        synchronize(args.accelerator)
        start = time.perf_counter()
        with torch.inference_mode():
            for chunk in images.split(args.batch_size):
                on_device(chunk.to(device))
        synchronize(args.accelerator)
        return time.perf_counter() - start

    plain()  # warm-up
    plain_s = statistics.median(plain() for _ in range(args.repeats))
    classifier.to("cpu")  # the trainer moves the module itself
    runs = [coded_run(classifier, data, (k, n), stragglers, args) for _ in range(args.repeats)]
    middle = sorted(runs, key=lambda run: run[0])[len(runs) // 2]
    coded_s, decode_s, coded_rows = middle
    floor = n / k + 1
    result = {
        "model": source,
        "num_inputs": k,
        "num_workers": n,
        "stragglers": stragglers,
        "plain_s": plain_s,
        "coded_s": coded_s,
        "forward_ratio": coded_s / plain_s,
        "forward_ratio_floor": floor,
        "forward_ratio_bound": 1.3 * floor,
        "decode_s": decode_s,
        "decode_share": decode_s / coded_s,
    }
    if naive:
        naive_s, naive_rows = 0.0, []
        for s in stragglers:
            seconds, _, rows = coded_run(classifier, data, (k, n), [s], args)
            naive_s += seconds
            naive_rows += rows
        key = lambda r: (r["scheme"], r["num_stragglers"])  # noqa: E731
        pair_s, _, _ = coded_run(classifier, data, (k, n), stragglers, args, with_bacc=True)
        result |= {
            "naive_s": naive_s,
            "speedup_vs_naive": naive_s / coded_s,
            "same_results": sorted(coded_rows, key=key) == sorted(naive_rows, key=key),
            "coded_pair_s": pair_s,
            "forward_ratio_pair": pair_s / plain_s,
            "forward_ratio_pair_bound": 1.3 * (2 * n / k + 1),
        }
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--patterns", type=int, default=1, help="T, patterns per group and S")
    parser.add_argument(
        "--batch-size", type=int, default=1000, help="images per batch and per classifier forward"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="median of this many plain and coded runs"
    )
    parser.add_argument("--lam-enc", type=float, default=1e-6)
    parser.add_argument("--lam-dec", type=float, default=1e-4)
    parser.add_argument(
        "--naive",
        choices=("lenet5", "all", "none"),
        default="lenet5",
        help="which models also get the naive run and the NeRCC + BACC pair",
    )
    parser.add_argument("--accelerator", choices=("cpu", "gpu"), default="cpu")
    args = parser.parse_args(argv)

    images, labels, source = load_images()
    result = {
        "images": IMAGES,
        "data": source,
        "accelerator": args.accelerator,
        "device": torch.cuda.get_device_name(0) if args.accelerator == "gpu" else "cpu",
        "threads": torch.get_num_threads(),
        "patterns": args.patterns,
        "lam_enc": args.lam_enc,
        "lam_dec": args.lam_dec,
    }
    for model in args.models:
        naive = args.naive == "all" or args.naive == model
        result[model] = bench_model(model, images, labels, args, naive)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
