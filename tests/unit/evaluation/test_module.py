"""The coded-inference module against a direct computation on a tiny model."""

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import TensorDataset

from nercc.coding import BACC, NeRCC, Replication
from nercc.evaluation import CodedInferenceModule, SchemeVariant
from nercc.evaluation.data import CodedEvalData, ShardedBatchSampler
from nercc.evaluation.module import stable_seed
from nercc.stragglers import FixedStragglers


class TinyNet(nn.Module):
    """A small nonlinear classifier over 1x4x4 images that counts the images it sees."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.Tanh(), nn.Linear(12, 3))
        self.seen = 0

    def forward(self, x):
        self.seen += x.shape[0]
        return self.layers(x)


class FakeData:
    """Stands in for ImageDataModule: raw images in [0, 1] with labels."""

    num_workers = 0

    def __init__(self, count=50):
        g = torch.Generator().manual_seed(1)
        self.images = torch.rand(count, 1, 4, 4, generator=g)
        self.labels = torch.randint(0, 3, (count,), generator=g)

    def raw_set(self, split):
        return TensorDataset(self.images, self.labels)


def run_module(
    variants, stragglers, patterns=2, batch_size=24, count=50, seed=3, cache=None, factory=None
):
    net = TinyNet()
    module = CodedInferenceModule(
        net,
        variants,
        stragglers,
        factory or FixedStragglers,
        num_patterns=patterns,
        chunk_size=7,
        seed=seed,
        cache=cache,
    )
    trainer = pl.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    data = FakeData(count)
    trainer.test(module, datamodule=CodedEvalData(data, "test", batch_size), verbose=False)
    return module, net, data


def direct(variant, s, net, data, patterns, batch_size, seed):
    """Encode, classify, decode and score each group with numpy, one group at a time."""
    scheme, k, n = variant.scheme, variant.scheme.num_inputs, variant.scheme.num_workers
    sq, pairs, correct, base, agree = 0.0, 0, 0, 0, 0
    classify = lambda x: net.layers(torch.as_tensor(x, dtype=torch.float32)).double().numpy()  # noqa: E731
    images, labels = data.images.numpy().astype(np.float64), data.labels.numpy()
    for start in range(0, len(images), batch_size):
        x, y = images[start : start + batch_size], labels[start : start + batch_size]
        groups = -(-len(x) // k)
        generator = torch.Generator().manual_seed(stable_seed(seed, s, n, start))
        masks = FixedStragglers(s).sample(groups * patterns, n, generator).available.numpy()
        for g in range(groups):
            members = [(g * k + j) % len(x) for j in range(k)]
            real = [g * k + j < len(x) for j in range(k)]
            reference = classify(x[members])
            worker_outputs = classify(scheme.encoder_matrix() @ x[members].reshape(k, -1))
            for t in range(patterns):
                decoded = scheme.decoder_matrix(masks[g * patterns + t]) @ worker_outputs
                for j in range(k):
                    if not real[j]:
                        continue
                    pairs += 1
                    sq += np.mean((decoded[j] - reference[j]) ** 2)
                    lost = not decoded[j].any()
                    correct += (decoded[j].argmax() == y[members[j]]) and not lost
                    base += reference[j].argmax() == y[members[j]]
                    agree += (decoded[j].argmax() == reference[j].argmax()) and not lost
    return {
        "mse": sq / pairs,
        "acc": correct / pairs,
        "base_acc": base / pairs,
        "agreement": agree / pairs,
        "pairs": pairs,
    }


def test_module_matches_direct_computation_with_remainders():
    # The first and third share a decoder (their outputs are decoded side by side), the first
    # two an encoder.
    variants = [
        SchemeVariant("nercc", NeRCC(8, 20, 1e-5, 1e-3), "a"),
        SchemeVariant("nercc", NeRCC(8, 20, 1e-5, 0.0), "b"),
        SchemeVariant("nercc", NeRCC(8, 20, 0.0, 1e-3), "c"),
        SchemeVariant("bacc", BACC(8, 20)),
        SchemeVariant("replication", Replication(8, 2)),
    ]
    module, net, data = run_module(variants, [0, 5, 12])
    assert len(module.results) == 15
    assert [sorted(g) for g in module.decoder_groups] == [[0, 2], [1], [3], [4]]
    for row in module.results:
        variant = next(v for v in variants if v.label == row["variant"])
        assert {k: row[k] for k in variant.params} == variant.params
        expected = direct(variant, row["num_stragglers"], net, data, 2, 24, 3)
        for metric in ("mse", "acc", "base_acc", "agreement"):
            assert row[metric] == pytest.approx(expected[metric], rel=1e-5, abs=1e-9), (row, metric)
        assert row["rel_acc"] == pytest.approx(row["acc"] / row["base_acc"])
        assert row["num_inputs_evaluated"] == 50  # 24 + 24 + 2: the remainders count
        assert row["num_patterns"] == 2 * (3 + 3 + 1)
        assert row["stragglers_mean"] == row["stragglers_max"] == row["num_stragglers"]


def test_classifier_runs_once_per_input_and_coded_input():
    variants = [
        SchemeVariant("nercc", NeRCC(8, 20, 0.0, lam), f"nercc{lam}") for lam in (0.0, 1e-4, 1e-2)
    ]
    variants.append(SchemeVariant("bacc", BACC(8, 20)))
    module, net, data = run_module(variants, [0, 4, 8, 12, 16], batch_size=24)
    groups = 3 + 3 + 1
    encoders = 2  # the three NeRCC variants share one encoder, BACC has its own
    assert net.seen == 50 + encoders * groups * 20


def test_no_stragglers_and_interpolation_are_exact_for_replication():
    module, _, _ = run_module([SchemeVariant("replication", Replication(8, 3))], [0])
    row = module.results[0]
    assert row["mse"] < 1e-12 and row["agreement"] == 1.0 and row["rel_acc"] == 1.0


def test_sharded_batches_cover_everything_once():
    shards = [list(ShardedBatchSampler(53, 10, rank, 2)) for rank in (0, 1)]
    assert [b[0] for b in shards[0]] == [0, 20, 40] and [b[0] for b in shards[1]] == [10, 30, 50]
    flat = sorted(i for shard in shards for batch in shard for i in batch)
    assert flat == list(range(53))


def test_bad_settings():
    variants = [SchemeVariant("bacc", BACC(8, 20))]
    with pytest.raises(ValueError, match="at most num_workers - 1 = 19"):
        CodedInferenceModule(TinyNet(), variants, [20], FixedStragglers)
    with pytest.raises(ValueError, match="num_patterns must be >= 1, got 0"):
        CodedInferenceModule(TinyNet(), variants, [1], FixedStragglers, num_patterns=0)


def test_cached_outputs_give_identical_rows_without_the_classifier(tmp_path):
    from nercc.evaluation.cache import OutputCache

    variants = [
        SchemeVariant("nercc", NeRCC(8, 20, 1e-5, 1e-3)),
        SchemeVariant("bacc", BACC(8, 20)),
    ]
    plain, _, _ = run_module(variants, [0, 5])
    first, net1, _ = run_module(variants, [0, 5], cache=OutputCache(tmp_path))
    assert net1.seen == 50 + 2 * (3 + 3 + 1) * 20  # a cold cache runs the classifier
    # Another decoder, other S and patterns: every classifier output comes from the cache.
    again = [SchemeVariant("nercc", NeRCC(8, 20, 1e-5, 0.5)), SchemeVariant("bacc", BACC(8, 20))]
    second, net2, _ = run_module(again, [3, 12], patterns=3, cache=OutputCache(tmp_path))
    assert net2.seen == 0
    uncached, _, _ = run_module(again, [3, 12], patterns=3)
    assert first.results == plain.results
    assert second.results == uncached.results


def test_adversarial_stragglers_decode_each_scheme_with_its_own_patterns():
    from functools import partial

    from nercc.stragglers import WorstCaseStragglers

    # Two NeRCC variants with one decoder but different encoders: the worst block differs, so
    # they must not be decoded side by side with one set of patterns.
    variants = [
        SchemeVariant("nercc", NeRCC(8, 20, 0.0, 1e-3), "smooth"),
        SchemeVariant("nercc", NeRCC(8, 20, 1e-2, 1e-3), "rough"),
    ]
    factory = partial(WorstCaseStragglers, placement="adversarial")
    module, net, data = run_module(variants, [6], factory=factory)
    for variant, row in zip(variants, module.results, strict=True):
        alone, _, _ = run_module([variant], [6], factory=factory)
        assert alone.results[0]["mse"] == pytest.approx(row["mse"], rel=1e-12)


def test_a_mixed_precision_run_does_not_hit_full_precision_entries(tmp_path):
    from nercc.evaluation.cache import OutputCache, fingerprint

    cache = OutputCache(tmp_path)
    module, _, data = run_module([SchemeVariant("bacc", BACC(8, 20))], [0], cache=cache)
    images = data.images[:24]
    digest = fingerprint(images)
    full = module._classify(images, digest)
    assert full.dtype == torch.float32 and cache.hits == 1  # the run stored it
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = module._classify(images, digest)  # its own entry: a miss, then stored
        again = module._classify(images, digest)
    # the coding works on float32 outputs: a mixed run's come back (and are stored) as float32
    assert mixed.dtype == again.dtype == torch.float32 and cache.hits == 2
    assert not torch.equal(mixed, full)  # computed in bfloat16, not the full entry's
    torch.testing.assert_close(again, mixed, rtol=0, atol=0)
