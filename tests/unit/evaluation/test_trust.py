"""Numbers an evaluation can trust: every input of a cache key counts, a damaged or unwritable
cache never changes a result, non-finite outputs are refused, fewer answers than K are counted.

The reference of every cached run is the same run without a cache: its rows must be equal.
"""

import errno
import json
import logging
import pickle
from functools import partial

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import TensorDataset

from nercc.coding import BACC, NeRCC, Replication
from nercc.evaluation import CodedInferenceModule, SchemeVariant
from nercc.evaluation import cache as cache_module
from nercc.evaluation.cache import OutputCache, fingerprint
from nercc.evaluation.data import CodedEvalData
from nercc.evaluation.metrics import CodedMetrics
from nercc.evaluation.module import NonFiniteOutputsError
from nercc.evaluation.report import few_answers_note, print_results
from nercc.stragglers import BernoulliStragglers, FixedStragglers
from tests.unit.evaluation.test_straggler_counts import drawn_counts

CACHE_LOG = "nercc.evaluation.cache"
VARIANTS = [SchemeVariant("nercc", NeRCC(8, 20, 1e-5, 1e-3)), SchemeVariant("bacc", BACC(8, 20))]


class Net(nn.Module):
    """A small nonlinear classifier over 1x4x4 images (weights from ``seed``) that counts the
    images it sees."""

    def __init__(self, seed: int = 0, activation: type[nn.Module] = nn.Tanh) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), activation(), nn.Linear(12, 3))
        self.seen = 0

    def forward(self, x):
        self.seen += x.shape[0]
        return self.layers(x)


class ReluNet(Net):
    """The same tensors as a Net, another forward."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed, nn.ReLU)


class BatchNet(Net):
    """Outputs that depend on how many inputs one forward gets (as float rounding may: kernels
    differ with the batch size), so a chunk size gives outputs of its own."""

    def forward(self, x):
        return super().forward(x) + 1e-3 * x.shape[0]


class Data:
    """Raw images in [0, 1] with labels (from ``seed``), as ImageDataModule gives them."""

    num_workers = 0

    def __init__(self, count: int = 50, seed: int = 1, dtype: torch.dtype = torch.float32):
        g = torch.Generator().manual_seed(seed)
        self.images = torch.rand(count, 1, 4, 4, generator=g).to(dtype)
        self.labels = torch.randint(0, 3, (count,), generator=g)

    def raw_set(self, split):
        return TensorDataset(self.images, self.labels)


def evaluate(
    net=None,
    variants=VARIANTS,
    stragglers=(0, 5),
    cache=None,
    chunk_size=7,
    data=None,
    patterns=2,
    factory=FixedStragglers,
):
    """The module's result rows, and the module."""
    net = Net() if net is None else net
    module = CodedInferenceModule(
        net,
        variants,
        list(stragglers),
        factory,
        num_patterns=patterns,
        chunk_size=chunk_size,
        seed=3,
        cache=cache,
    )
    trainer = pl.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    data = Data() if data is None else data
    trainer.test(module, datamodule=CodedEvalData(data, "test", 24), verbose=False)
    return module.results, module


def cache_warnings(caplog) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == CACHE_LOG and r.levelno >= logging.WARN
    ]


# -- every input of the key ----------------------------------------------------------------------


def retrained() -> Net:
    net = Net()
    with torch.no_grad():
        net.layers[3].weight.mul_(1.5)  # a retrained model: same class, other weights
    return net


# (first run's arguments, second run's arguments): each pair differs in one input of the key.
CHANGES = {
    "classifier weights": ({}, {"net": retrained}),
    "classifier class": ({}, {"net": ReluNet}),
    "images": ({}, {"data": lambda: Data(seed=2)}),
    "encoder matrix": (
        {"variants": [SchemeVariant("bacc", BACC(8, 20))]},
        {"variants": [SchemeVariant("nercc", NeRCC(8, 20, 1e-2, 0.0))]},
    ),
    "chunk size": ({"net": BatchNet}, {"net": BatchNet, "chunk_size": 5}),
}


def arguments(given: dict) -> dict:
    return {k: v() if callable(v) and k in ("net", "data") else v for k, v in given.items()}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_run_that_differs_in_one_input_of_the_key_gets_its_own_outputs(tmp_path, change):
    first, second = CHANGES[change]
    evaluate(cache=OutputCache(tmp_path), **arguments(first))
    run = arguments(second)
    cached, _ = evaluate(cache=OutputCache(tmp_path), **run)
    plain, _ = evaluate(**arguments(second))
    assert cached == plain
    assert run.get("net") is None or run["net"].seen > 0  # its classifier ran


def test_the_same_run_again_is_served_by_the_cache(tmp_path):
    first, _ = evaluate(net=BatchNet(), cache=OutputCache(tmp_path))
    again = BatchNet()
    second, _ = evaluate(net=again, cache=OutputCache(tmp_path))
    assert again.seen == 0 and second == first


def test_the_key_changes_with_dtype_device_and_autocast():
    # What the outputs depend on beyond the tensors: each changes the description, hence the key.
    module = CodedInferenceModule(Net(), VARIANTS, [0], FixedStragglers, chunk_size=7)
    x = torch.zeros(4, 1, 4, 4)
    base = module.cache_description(x, "img", "enc")
    others = {
        "dtype": module.cache_description(x.double(), "img", "enc"),
        "device": module.cache_description(x.to("meta"), "img", "enc"),
        "originals": module.cache_description(x, "img"),
    }
    with torch.autocast("cpu", dtype=torch.bfloat16):
        others["autocast"] = module.cache_description(x, "img", "enc")
    for name, description in others.items():
        assert fingerprint(description) != fingerprint(base), name
    assert base["dtype"] == "torch.float32" and base["device"] == "cpu"
    assert others["device"]["device"] == "meta" and others["autocast"]["autocast"] is not None


def test_entries_record_the_description_of_their_key(tmp_path):
    net = Net()
    evaluate(net=net, variants=VARIANTS[1:], stragglers=[0], cache=OutputCache(tmp_path))
    recorded = [json.loads(p.read_text()) for p in tmp_path.rglob("*.json")]
    assert len(recorded) == 3 + 3  # the originals and the coded inputs of 3 batches
    images = {fingerprint(Data().images[start : start + 24]) for start in (0, 24, 48)}
    encoder = fingerprint(torch.tensor(BACC(8, 20).encoder_matrix(), dtype=torch.float32))
    for record in recorded:
        what = record["description"]
        assert record["key"] == fingerprint(what)
        assert what["classifier"] == fingerprint(net)
        assert what["classifier_class"].endswith("test_trust.Net")
        assert what["images"] in images and what["chunk_size"] == 7
        assert (what["dtype"], what["device"], what["autocast"]) == ("torch.float32", "cpu", None)
        coded = what["inputs"] == "coded"
        assert what["encoder"] == (encoder if coded else None)
        assert record["shape"][1] == 3  # groups of K = 8: 3 in a batch of 24, 1 in the last 2
        assert record["shape"][0] in ((60, 20) if coded else (24, 2))


# -- damaged entries, a cache that cannot be written --------------------------------------------


def reference_entry(root):
    """The entry of the first batch's original images (24 of them)."""
    for record_path in sorted(root.rglob("*.json")):
        record = json.loads(record_path.read_text())
        if record["description"]["inputs"] == "originals" and record["shape"][0] == 24:
            return record_path.with_suffix(".npy")
    raise AssertionError("no entry of the originals")


def save_npy(path, array):
    with open(path, "wb") as file:
        np.save(file, array, allow_pickle=False)


DAMAGES = {
    "same shape, other values": lambda a: a[::-1].copy(),
    "float64": lambda a: a.astype(np.float64),
    "NaN": lambda a: np.full_like(a, np.nan),
    "cut to another shape": lambda a: a[:10],
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_entry_is_recomputed_and_the_rows_are_right(tmp_path, caplog, damage):
    evaluate(cache=OutputCache(tmp_path))
    path = reference_entry(tmp_path)
    save_npy(path, DAMAGES[damage](np.load(path)))
    with caplog.at_level(logging.WARNING, logger=CACHE_LOG):
        cached, _ = evaluate(cache=OutputCache(tmp_path))
    (warning,) = cache_warnings(caplog)
    assert str(path) in warning and "discarded" in warning
    plain, _ = evaluate()
    assert cached == plain
    # Rewritten: the next run is served whole by the cache, without a warning.
    caplog.clear()
    net = Net()
    with caplog.at_level(logging.WARNING, logger=CACHE_LOG):
        again, _ = evaluate(net=net, cache=OutputCache(tmp_path))
    assert cache_warnings(caplog) == [] and net.seen == 0 and again == plain


def test_a_cache_that_cannot_be_written_is_off_and_the_rows_are_right(
    tmp_path, monkeypatch, caplog
):
    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache_module, "write_bytes_atomic", full)
    with caplog.at_level(logging.WARNING, logger=CACHE_LOG):
        cached, _ = evaluate(cache=OutputCache(tmp_path / "cache"))
    (warning,) = cache_warnings(caplog)
    assert str(tmp_path / "cache") in warning and "No space left on device" in warning
    plain, _ = evaluate()
    assert cached == plain


def test_a_full_tmpfs_cache_is_off_and_the_rows_are_right(full_tmpfs, caplog):
    with caplog.at_level(logging.WARNING, logger=CACHE_LOG):
        cached, _ = evaluate(cache=OutputCache(full_tmpfs / "cache"))
    (warning,) = cache_warnings(caplog)
    assert str(full_tmpfs / "cache") in warning and "No space left on device" in warning
    plain, _ = evaluate()
    assert cached == plain


# -- outputs that are not finite ----------------------------------------------------------------


class NaNNet(Net):
    def forward(self, x):
        return super().forward(x) * float("nan")


class InfOnCodedNet(Net):
    """Finite on images in [0, 1]; infinite on an input with a negative pixel (coded inputs of
    weights of both signs have some)."""

    def forward(self, x):
        out = super().forward(x)
        negative = (x.flatten(1) < 0).any(dim=1, keepdim=True)
        return torch.where(negative, torch.full_like(out, float("inf")), out)


def test_a_classifier_with_nan_outputs_is_refused_naming_it(tmp_path):
    net = NaNNet()
    net.info = {"path": "/ck/lenet5_synthetic.ckpt", "model": "lenet5", "dataset": "synthetic"}
    with pytest.raises(NonFiniteOutputsError) as error:
        evaluate(net=net, cache=OutputCache(tmp_path))
    message = str(error.value)
    assert message.startswith("model: the classifier /ck/lenet5_synthetic.ckpt returned non-finite")
    assert "(NaN) on 24 of the 24 images" in message and "\n" not in message
    assert "retrain it (python -m nercc.train model=lenet5 data=synthetic)" in message
    assert list(tmp_path.rglob("*.npy")) == []  # never cached
    assert isinstance(error.value, ValueError)  # the task wrapper prints it as one line
    copy = pickle.loads(pickle.dumps(error.value))
    assert type(copy) is NonFiniteOutputsError and str(copy) == message


def test_decoded_outputs_that_are_not_finite_are_refused():
    assert bool((torch.tensor(BACC(8, 20).encoder_matrix()) < 0).any())  # coded inputs < 0
    with pytest.raises(NonFiniteOutputsError) as error:
        evaluate(net=InfOnCodedNet(), variants=VARIANTS[1:], stragglers=[0])
    message = str(error.value)
    assert message.startswith("model: the classifier InfOnCodedNet gave finite outputs on the")
    assert "bacc at S=0 decoded non-finite estimates" in message
    assert "outputs on coded inputs are not finite" in message and "\n" not in message


def test_metrics_refuse_estimates_that_are_not_finite():
    metric = CodedMetrics()
    estimates = torch.zeros(1, 2, 3)
    estimates[0, 1, 2] = float("nan")
    ok = (torch.zeros(1, 2, 3), torch.zeros(1, 2, dtype=torch.long), torch.ones(1, 2, dtype=bool))
    with pytest.raises(ValueError, match="estimates must be finite"):
        metric.update(estimates, *ok, torch.zeros(1, 2, dtype=bool), 1)
    with pytest.raises(ValueError, match="reference must be finite"):
        metric.update(torch.zeros(1, 2, 3), estimates, *ok[1:], torch.zeros(1, 2, dtype=bool), 1)


# -- fewer answers than inputs ------------------------------------------------------------------


def test_few_answers_is_the_fraction_of_draws_decoded_from_fewer_than_k():
    # N = 20, K = 8: S = N - K = 12 leaves K answers, S = 13 leaves K - 1. The decoders' own
    # FewAnswersWarning (an error under this test suite's warning filter) is counted, not raised.
    variants = [*VARIANTS, SchemeVariant("replication", Replication(8, 2))]  # N = 16
    rows, _ = evaluate(variants=variants, stragglers=[0, 12, 13])
    few = {(r["scheme"], r["num_stragglers"]): r["few_answers"] for r in rows}
    assert few == {
        **{(name, s): float(s == 13) for name in ("nercc", "bacc") for s in (0, 12, 13)},
        **{("replication", s): 0.0 for s in (0, 12, 13)},  # it loses inputs instead
    }
    assert all(isinstance(r["few_answers"], float) for r in rows)


def test_few_answers_counts_random_draws_exactly():
    factory = partial(BernoulliStragglers, p=0.6)
    rows, _ = evaluate(stragglers=[3], patterns=20, factory=factory)
    counts = drawn_counts(BernoulliStragglers(num_stragglers=3, p=0.6), 3, patterns=20)
    expected = float(np.mean(counts > 20 - 8))
    assert 0 < expected < 1
    for row in rows:
        assert row["few_answers"] == pytest.approx(expected, rel=1e-12)


def test_few_answers_is_a_sum_reduced_exactly():
    # Two processes' states add up: the fraction of the union, not a mean of fractions.
    parts = []
    for few in ([True, False, False], [True]):
        metric = CodedMetrics()
        draws = len(few)
        metric.update(
            torch.zeros(draws, 2, 3),
            torch.zeros(draws, 2, 3),
            torch.zeros(draws, 2, dtype=torch.long),
            torch.ones(draws, 2, dtype=bool),
            torch.zeros(draws, 2, dtype=bool),
            draws,
            few_answers=torch.tensor(few),
        )
        parts.append(metric)
    assert parts[0].clone().compute()["few_answers"] == pytest.approx(1 / 3)
    assert parts[1].clone().compute()["few_answers"] == 1.0
    parts[0].merge_state(parts[1])
    assert parts[0].compute()["few_answers"] == 0.5  # 2 of 4 draws (not the mean 2/3)


def test_the_table_notes_rows_with_few_answers():
    from rich.console import Console

    rows, _ = evaluate(stragglers=[12, 13])
    console = Console(width=200, record=True)
    print_results(rows, "t", console=console)
    text = console.export_text()
    assert "few_answers: fewer than K=8 workers answered (the estimates are" in text
    assert "nercc at S=13 100%" in text and "bacc at S=13 100%" in text and "S=12" not in text
    assert few_answers_note([{**r, "few_answers": 0.0} for r in rows]) is None
