"""Benchmark ordering and grouping the inputs before encoding, against the classifier's cost.

Setting: a batch of ``--batch`` Fashion-MNIST-sized images (1 x 28 x 28, uniform noise unless
``--published``: the first test images), K = ``--k`` inputs per group, one thread.

- ``classifier_ms_per_group``: the base classifier (``--model``, LeNet5 by default: the
  published one with ``--published``, else an untrained LeNet5) on the batch in one forward, per
  group of K: what the K inputs of a group cost f once (the workers pay it N / K times over).
- per ``<order>/<grouping>``: ``arrange_ms_per_group``, :func:`nercc.coding.order.arrange` of
  the batch per group (for ``proxy``, with the linear proxy's forward that gives its features),
  and ``ratio``, that over ``classifier_ms_per_group``.

Each time is the median over ``--repeats`` runs. The JSON object printed last holds the results.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch

from nercc.coding.order import arrange, principal_direction
from nercc.models import LeNet5, LinearClassifier

SETTINGS = [
    ("pc1", "arrival"), ("spectral", "arrival"), ("path", "arrival"), ("proxy", "arrival"),
    ("none", "sorted"), ("path", "sorted"), ("none", "clustered"), ("path", "clustered"),
    ("proxy", "clustered"),
]  # fmt: skip


def median_s(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def models(published: bool, model: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    if published:
        from nercc.models import load_classifier

        return (
            load_classifier(model, "fashion_mnist"),
            load_classifier("linear", "fashion_mnist"),
        )
    torch.manual_seed(0)
    return LeNet5().eval(), LinearClassifier().eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--published", action="store_true")
    parser.add_argument("--model", default="lenet5", help="with --published: lenet5, repvgg, vit")
    args = parser.parse_args()
    torch.set_num_threads(1)
    classifier, proxy = models(args.published, args.model)
    if args.published:
        from nercc.data.sources import load_arrays

        arrays = load_arrays("fashion_mnist", "data")
        images = torch.from_numpy(arrays.test_images[: args.batch]).float() / 255.0
        images = images.reshape(-1, 1, 28, 28)
    else:
        images = torch.rand(args.batch, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    groups = -(-args.batch // args.k)
    with torch.inference_mode():
        f_s = median_s(lambda: classifier(images), args.repeats)
        logits = proxy(images).double().numpy()
    pixels = images.flatten(1).double().numpy()
    directions = {"pixels": principal_direction(pixels), "proxy": principal_direction(logits)}
    result: dict[str, object] = {
        "batch": args.batch,
        "k": args.k,
        "published": args.published,
        "model": args.model if args.published else "lenet5 (untrained)",
        "classifier_ms_per_group": 1e3 * f_s / groups,
    }
    for order, grouping in SETTINGS:
        if order == "proxy":

            def run(order=order, grouping=grouping) -> object:
                with torch.inference_mode():
                    features = proxy(images).double().numpy()
                return arrange(features, args.k, order, grouping, directions["proxy"])
        else:

            def run(order=order, grouping=grouping) -> object:
                return arrange(pixels, args.k, order, grouping, directions["pixels"])

        seconds = median_s(run, args.repeats)
        result[f"{order}/{grouping}"] = {
            "arrange_ms_per_group": 1e3 * seconds / groups,
            "ratio": seconds / f_s,
        }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
