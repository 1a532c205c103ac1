"""ParM end to end on tiny synthetic data: the evaluation runs the parity model (not the
classifier) on the parity worker, the reconstruction metrics measure the reconstructed inputs
only, a parity model trains with Lightning for one step and publishes a checkpoint that loads
and is checked against its base model, and the N = K + 1 experiment runs with it."""

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import TensorDataset

from nercc.coding import BACC, ParM
from nercc.evaluation import CodedInferenceModule, SchemeVariant
from nercc.evaluation.data import CodedEvalData
from nercc.evaluation.runner import load_parity_models
from nercc.models import load_classifier
from nercc.models.checkpoints import CheckpointError, load_parity, parity_checkpoint_path
from nercc.stragglers import FixedStragglers
from nercc.tasks.evaluate import evaluate

K, CLASSES = 3, 4


class Affine(nn.Module):
    """f(x) = W x + b: with b != 0, f of a sum is not the sum of the f (f(sum) = W sum + b, the
    sum of the outputs W sum + k b), so a parity worker that ran f would decode wrongly."""

    def __init__(self, bias_scale: float = 1.0, times: int = 1) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.weight = torch.randn(16, CLASSES, generator=g, dtype=torch.float64)
        self.bias = bias_scale * torch.randn(CLASSES, generator=g, dtype=torch.float64)
        self.times = times

    def forward(self, x):
        return (x.flatten(1).double() @ self.weight + self.times * self.bias).float()


class FakeData:
    num_workers = 0

    def __init__(self, count=60):
        g = torch.Generator().manual_seed(1)
        self.images = torch.rand(count, 1, 4, 4, generator=g)
        self.labels = torch.randint(0, CLASSES, (count,), generator=g)

    def raw_set(self, split):
        return TensorDataset(self.images, self.labels)


def run(variants, parity_models, stragglers=(1,)):
    module = CodedInferenceModule(
        Affine(), variants, list(stragglers), FixedStragglers, num_patterns=3, chunk_size=64,
        seed=2, parity_models=parity_models, reconstruction=True,
    )  # fmt: skip
    trainer = pl.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.test(module, datamodule=CodedEvalData(FakeData(), "test", 30), verbose=False)
    return {row["scheme"]: row for row in module.results}


def test_the_parity_worker_runs_the_parity_model_and_the_missing_output_is_exact():
    # g(x_1 + ... + x_k) = W sum + k b = sum f(x_i): ParM's subtraction is exact
    variants = [
        SchemeVariant("parm", ParM(K, K + 1, parity_model="g")),
        SchemeVariant("bacc", BACC(K, K + 1)),
    ]
    rows = run(variants, {"g": Affine(times=K)})
    parm = rows["parm"]
    assert parm["mse"] == pytest.approx(0.0, abs=1e-9)
    assert parm["agreement"] == 1.0 and parm["recon_agreement"] == 1.0
    # one of the K + 1 workers straggles: a data worker's input is reconstructed in K of
    # K + 1 patterns, one input of the K each time
    assert 0.0 < parm["recon_share"] < 1.0
    # BACC computes no input alone: every input is reconstructed
    assert rows["bacc"]["recon_share"] == 1.0
    assert rows["bacc"]["recon_agreement"] == pytest.approx(rows["bacc"]["agreement"])


def test_with_the_classifier_on_the_parity_worker_the_reconstruction_is_off():
    # the same run, the parity worker given f itself: its output misses (k - 1) b
    rows = run([SchemeVariant("parm", ParM(K, K + 1, parity_model="f"))], {"f": Affine()})
    assert rows["parm"]["mse"] > 1e-3


def test_the_reconstruction_metrics_against_a_direct_count():
    variants = [SchemeVariant("parm", ParM(K, K + 1, parity_model="g"))]
    g = Affine(times=K)  # exact, then perturbed: some reconstructions disagree
    noise = torch.randn(g.weight.shape, generator=torch.Generator().manual_seed(3))
    g.weight = g.weight + 0.5 * noise.double()
    row = run(variants, {"g": g})["parm"]
    # an independent count: the same patterns, decoded by the rule, input by input
    from nercc.evaluation.module import stable_seed

    data, f = FakeData(), Affine()
    agree, total, correct = 0, 0, 0
    for first in (0, 30):
        images, labels = data.images[first : first + 30], data.labels[first : first + 30]
        gen = torch.Generator().manual_seed(stable_seed(2, 1, K + 1, first))
        available = FixedStragglers(num_stragglers=1).sample(30, K + 1, gen).available.numpy()
        groups = images.view(10, K, 1, 4, 4)
        for p, mask in enumerate(available):
            group = groups[p // 3]
            outs = f(group)
            missing = np.flatnonzero(~mask[:K])
            if len(missing) == 0:
                continue
            i = int(missing[0])
            estimate = g(group.sum(0, keepdim=True))[0] - outs.sum(0) + outs[i]
            total += 1
            agree += int(estimate.argmax() == outs[i].argmax())
            correct += int(estimate.argmax() == labels[(p // 3) * K + i])
    assert row["recon_agreement"] == pytest.approx(agree / total)
    assert row["recon_acc"] == pytest.approx(correct / total)
    assert row["recon_share"] == pytest.approx(total / (20 * 3 * K))


def test_a_scheme_with_parity_workers_needs_its_model():
    with pytest.raises(ValueError, match="parity_models must hold the model"):
        CodedInferenceModule(
            Affine(), [SchemeVariant("parm", ParM(K, K + 1, parity_model="g"))], [1],
            FixedStragglers,
        )  # fmt: skip
    with pytest.raises(ValueError, match="scheme.parm.parity_model"):
        load_parity_models([SchemeVariant("parm", ParM(K, K + 1))], Affine())


def test_training_one_step_publishes_a_parity_model_checked_against_its_base(parity):
    root, metrics = parity
    path = parity_checkpoint_path("lenet5", "synthetic", 2, root)
    assert metrics["published"] and metrics["checkpoint"] == str(path)
    assert metrics["train_seconds"] > 0 and 0.0 <= metrics["test/recon_acc"] <= 1.0
    base = load_classifier("lenet5", "synthetic", root)
    g = load_parity(path, base, 2)
    assert g.info["base_sha256"] == base.info["sha256"] and g.info["parity_k"] == 2
    assert g.info["train_seconds"] == pytest.approx(metrics["train_seconds"], abs=0.1)
    # it takes sums of two raw images, normalised by twice the mean and sqrt(2) the std
    torch.testing.assert_close(g.mean, 2 * base.mean)
    torch.testing.assert_close(g.std, 2**0.5 * base.std)
    assert g(torch.rand(3, 1, 28, 28) * 2).shape == (3, 10)
    with pytest.raises(CheckpointError, match="not k=3"):
        load_parity(path, base, 3)
    base.info = {**base.info, "sha256": "0" * 64}  # a retrained base model
    with pytest.raises(CheckpointError, match="trained against another lenet5"):
        load_parity(path, base, 2)


def test_the_one_extra_experiment_runs_parm_beside_bacc_and_nercc(parity, compose_config):
    root, _ = parity
    cfg = compose_config(
        "eval",
        ["experiment=regime/one_extra", "data=synthetic", "logger=none", "eval.cache=false",
         "trainer.enable_progress_bar=false", f"paths.checkpoint_dir={root}",
         "eval.batch_size=64"],
    )  # fmt: skip
    metrics, _ = evaluate(cfg)
    rows = {row["scheme"]: row for row in metrics["rows"]}
    assert set(rows) == {"nercc", "bacc", "parm"}
    for row in rows.values():
        assert row["num_workers"] == 3 and row["num_stragglers"] == 1
        assert row["recon_agreement_lo"] <= row["recon_agreement"] <= row["recon_agreement_hi"]
    assert rows["parm"]["recon_share"] < 1.0 == rows["bacc"]["recon_share"]
