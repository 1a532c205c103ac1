"""The evaluation honours coding.order and coding.grouping: a run with an arranger gives the rows
of a run without one on the inputs already arranged, every scheme gets the same arrangement,
replication and uncoded results do not change, and the output cache keys the arrangement."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import TensorDataset

from nercc.coding import BACC, NeRCC, Replication, Uncoded
from nercc.coding.order import Arranger, arrange, principal_direction
from nercc.evaluation import CodedInferenceModule, SchemeVariant
from nercc.evaluation.cache import OutputCache
from nercc.evaluation.data import CodedEvalData
from nercc.stragglers import FixedStragglers

K, N, CLASSES, COUNT, BATCH = 4, 8, 3, 48, 24
METRICS = ("mse", "rel_acc", "agreement", "acc", "base_acc", "num_inputs_evaluated")


class Smooth(nn.Module):
    """A smooth classifier of 2x2 images: tanh of a fixed linear map."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.weight = torch.randn(4, CLASSES, generator=g)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(3.0 * x.flatten(1) @ self.weight)


class Data:
    num_workers = 0

    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def raw_set(self, split):
        return TensorDataset(self.images, self.labels)


def images_and_labels():
    g = torch.Generator().manual_seed(1)
    images = torch.rand(COUNT, 1, 2, 2, generator=g)
    return images, torch.randint(0, CLASSES, (COUNT,), generator=g)


def variants():
    return [
        SchemeVariant("nercc", NeRCC(K, N, lam_enc=1e-4, lam_dec=1e-4)),
        SchemeVariant("bacc", BACC(K, N)),
        SchemeVariant("replication", Replication(K, 2)),
        SchemeVariant("uncoded", Uncoded(K)),
    ]


def rows(images, labels, arranger=None, cache=None, stragglers=(2,), embedding=None):
    module = CodedInferenceModule(
        Smooth(), variants(), list(stragglers), FixedStragglers, num_patterns=2, seed=3,
        arranger=arranger, cache=cache, embedding=embedding,
    )  # fmt: skip
    trainer = pl.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    data = CodedEvalData(Data(images, labels), "test", BATCH)
    trainer.test(module, datamodule=data, verbose=False)
    return {(r["scheme"], r["num_stragglers"]): r for r in module.results}


@pytest.mark.parametrize(("order", "grouping"), [("path", "arrival"), ("pc1", "sorted"),
                                                 ("spectral", "clustered")])  # fmt: skip
def test_an_arranged_run_equals_a_plain_run_on_the_arranged_inputs(order, grouping):
    """Each batch of 24 (six whole groups) arranged by the module, against the same batches
    arranged beforehand and evaluated as they come: the same rows, to the last digit but the
    order and grouping columns (the patterns are drawn per group, so each group meets the same
    pattern either way)."""
    images, labels = images_and_labels()
    flat = images.flatten(1).double().numpy()
    direction = principal_direction(flat)
    arranger = Arranger(K, order, grouping, direction)
    arranged = rows(images, labels, arranger)
    takes = [arrange(flat[b : b + BATCH], K, order, grouping, direction).take + b
             for b in range(0, COUNT, BATCH)]  # fmt: skip
    take = torch.as_tensor(np.concatenate(takes))
    plain = rows(images[take], labels[take])
    arrival = rows(images, labels)
    for key in (("replication", 2), ("uncoded", 2)):  # as they came, exactly
        assert all(arranged[key][m] == arrival[key][m] for m in METRICS)
        plain[key] = arrival[key]
    for key, row in arranged.items():
        coded = key[0] in ("nercc", "bacc")  # uncoded and replication keep the arrival order
        assert (row["order"], row["grouping"]) == (
            (order, grouping) if coded else ("none", "arrival")
        )
        assert (plain[key]["order"], plain[key]["grouping"]) == ("none", "arrival")
        for metric in METRICS:
            assert row[metric] == plain[key][metric], (key, metric)


def test_a_proxy_orders_by_its_outputs_not_the_pixels():
    """order=proxy with an embedding model: the module arranges by the model's outputs (the
    rows of a plain run on the inputs arranged by those outputs), which differ from the
    pixels' path."""
    images, labels = images_and_labels()
    proxy = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    torch.nn.init.normal_(proxy[1].weight, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        outputs = proxy(images).double().numpy()
    direction = principal_direction(outputs)
    arranged = rows(images, labels, Arranger(K, "proxy", "clustered", direction), embedding=proxy)
    takes = [arrange(outputs[b : b + BATCH], K, "proxy", "clustered", direction).take + b
             for b in range(0, COUNT, BATCH)]  # fmt: skip
    take = torch.as_tensor(np.concatenate(takes))
    plain = rows(images[take], labels[take])
    for scheme in ("nercc", "bacc"):
        for metric in METRICS:
            assert arranged[(scheme, 2)][metric] == plain[(scheme, 2)][metric], (scheme, metric)
    pixels = images.flatten(1).double().numpy()
    by_pixels = arrange(pixels[:BATCH], K, "proxy", "clustered", principal_direction(pixels))
    assert not np.array_equal(takes[0], by_pixels.take)


def test_ordering_never_changes_replication_or_uncoded_and_helps_a_smooth_model():
    images, labels = images_and_labels()
    direction = principal_direction(images.flatten(1).double().numpy())
    plain = rows(images, labels, stragglers=(1,))
    arranged = rows(images, labels, Arranger(K, "path", "clustered", direction), stragglers=(1,))
    for scheme in ("replication", "uncoded"):
        for metric in METRICS:
            assert arranged[(scheme, 1)][metric] == plain[(scheme, 1)][metric]
    assert arranged[("nercc", 1)]["mse"] < plain[("nercc", 1)]["mse"]
    assert arranged[("bacc", 1)]["mse"] < plain[("bacc", 1)]["mse"]


def test_the_output_cache_keys_the_arrangement(tmp_path):
    """A cached run without an arranger must not answer an arranged one (other coded inputs),
    and the arranged run, repeated, reads its own entries: same rows."""
    images, labels = images_and_labels()
    direction = principal_direction(images.flatten(1).double().numpy())
    cache = OutputCache(tmp_path / "cache")
    plain = rows(images, labels, cache=cache)
    arranger = Arranger(K, "path", "sorted", direction)
    fresh = rows(images, labels, arranger)
    cached = rows(images, labels, arranger, cache=cache)
    again = rows(images, labels, arranger, cache=cache)
    for key in fresh:
        for metric in METRICS:
            assert cached[key][metric] == fresh[key][metric] == again[key][metric]
    assert cached[("nercc", 2)]["mse"] != plain[("nercc", 2)]["mse"]


def test_an_arranger_for_another_k_is_refused():
    with pytest.raises(ValueError, match="arranger must group K=4 inputs, got num_inputs=5"):
        CodedInferenceModule(
            Smooth(), variants(), [1], FixedStragglers, arranger=Arranger(5, "path")
        )
