"""Benchmark the coded evaluation against the plain classifier and the naive way.

On the same 10,000 images with LeNet5 (the published Fashion-MNIST classifier when there is one,
else an untrained LeNet5 of the same cost; Fashion-MNIST test images when installed, else random
ones), K=20, N=100, S = 0, 10, ..., 80 and T patterns per group and S:

- ``plain_s``: the classifier on the 10,000 originals, in batches of ``--batch-size`` (the
  chunk size of the coded evaluation too);
- ``coded_s``: the full coded evaluation of NeRCC (``trainer.test`` of CodedInferenceModule),
  every S in one pass: the classifier runs once on the originals and once on the N/K x 10,000
  coded inputs, so the floor of ``forward_ratio = coded_s / plain_s`` is N/K + 1;
- ``naive_s``: the same results computed the naive way, the evaluation re-run for each S;
  ``speedup_vs_naive = naive_s / coded_s``;
- ``coded_pair_s``: NeRCC and BACC together (the default eval): two encoders, so two coded
  passes; its floor is 2 N/K + 1 and ``forward_ratio_pair = coded_pair_s / plain_s``.

Plain and coded times are medians of ``--repeats`` runs; the naive way runs once. Prints one JSON
object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import pytorch_lightning as pl
import torch
from torch.utils.data import TensorDataset

from nercc.coding import BACC, NeRCC
from nercc.data.sources import DataNotFoundError, load_arrays
from nercc.evaluation import CodedInferenceModule, SchemeVariant
from nercc.evaluation.data import CodedEvalData
from nercc.models import Classifier, LeNet5, load_classifier
from nercc.paths import project_root
from nercc.stragglers import FixedStragglers

STRAGGLERS = [0, 10, 20, 30, 40, 50, 60, 70, 80]
K, N, IMAGES = 20, 100, 10_000


class Images:
    num_workers = 0

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def raw_set(self, split: str) -> TensorDataset:
        return TensorDataset(self.images, self.labels)


def variants(lam_enc: float, lam_dec: float, with_bacc: bool) -> list[SchemeVariant]:
    chosen = [SchemeVariant("nercc", NeRCC(K, N, lam_enc, lam_dec))]
    return chosen + [SchemeVariant("bacc", BACC(K, N))] if with_bacc else chosen


def coded_run(classifier, data, stragglers, args, with_bacc=False) -> tuple[float, list[dict]]:
    module = CodedInferenceModule(
        classifier,
        variants(args.lam_enc, args.lam_dec, with_bacc),
        stragglers,
        FixedStragglers,
        num_patterns=args.patterns,
        chunk_size=args.batch_size,
        seed=0,
    )
    trainer = pl.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    start = time.perf_counter()
    trainer.test(module, datamodule=CodedEvalData(data, "test", args.batch_size), verbose=False)
    return time.perf_counter() - start, module.results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patterns", type=int, default=1, help="T, patterns per group and S")
    parser.add_argument(
        "--batch-size", type=int, default=1000, help="images per batch and per classifier forward"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="median of this many plain and coded runs"
    )
    parser.add_argument("--lam-enc", type=float, default=1e-6)
    parser.add_argument("--lam-dec", type=float, default=1e-4)
    args = parser.parse_args()

    try:
        arrays = load_arrays("fashion_mnist", project_root() / "data")
        images = torch.from_numpy(arrays.test_images[:IMAGES]).float() / 255.0
        labels = torch.from_numpy(arrays.test_labels[:IMAGES])
        source = "fashion_mnist test split"
    except DataNotFoundError:
        g = torch.Generator().manual_seed(0)
        images, labels = torch.rand(IMAGES, 1, 28, 28, generator=g), torch.randint(0, 10, (IMAGES,))
        source = "random images"
    try:
        classifier = load_classifier("lenet5", "fashion_mnist")
        model = "published lenet5_fashion_mnist"
    except FileNotFoundError:
        classifier = Classifier(LeNet5(1, 10, 28), [0.5], [0.25]).eval().requires_grad_(False)
        model = "untrained LeNet5"
    data = Images(images, labels)

    def plain() -> float:
        start = time.perf_counter()
        with torch.inference_mode():
            for chunk in images.split(args.batch_size):
                classifier(chunk)
        return time.perf_counter() - start

    plain()  # warm-up
    plain_s = statistics.median(plain() for _ in range(args.repeats))
    coded = [coded_run(classifier, data, STRAGGLERS, args) for _ in range(args.repeats)]
    coded_s, coded_rows = statistics.median(c[0] for c in coded), coded[0][1]
    naive_s, naive_rows = 0.0, []
    for s in STRAGGLERS:
        seconds, rows = coded_run(classifier, data, [s], args)
        naive_s += seconds
        naive_rows += rows
    key = lambda r: (r["scheme"], r["num_stragglers"])  # noqa: E731
    same = sorted(coded_rows, key=key) == sorted(naive_rows, key=key)
    coded_pair_s, _ = coded_run(classifier, data, STRAGGLERS, args, with_bacc=True)
    result = {
        "images": IMAGES,
        "data": source,
        "model": model,
        "num_inputs": K,
        "num_workers": N,
        "stragglers": STRAGGLERS,
        "patterns": args.patterns,
        "threads": torch.get_num_threads(),
        "plain_s": plain_s,
        "coded_s": coded_s,
        "forward_ratio": coded_s / plain_s,
        "forward_ratio_bound": 1.3 * (N / K + 1),
        "naive_s": naive_s,
        "speedup_vs_naive": naive_s / coded_s,
        "same_results": same,
        "coded_pair_s": coded_pair_s,
        "forward_ratio_pair": coded_pair_s / plain_s,
        "forward_ratio_pair_bound": 1.3 * (2 * N / K + 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
