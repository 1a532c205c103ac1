"""The coded evaluation under mixed precision: the classifier under autocast, the coding in float32.

``trainer.precision=bf16-mixed`` (and ``16-mixed``, which Lightning runs as bf16 on the CPU) runs
the classifier under autocast; the module casts its 16-bit outputs to float32 and encodes,
attacks and decodes with autocast off. Checked here on the CPU with bfloat16: the classifier
sees float32 coded inputs, every estimate is float32, and the rows stay within bfloat16's
rounding of the full-precision rows. ``16-true`` and ``bf16-true`` (everything in 16 bits) are
refused by the config check.
"""

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from torch import nn

from nercc.coding import BACC, NeRCC
from nercc.evaluation import CodedInferenceModule, SchemeVariant
from nercc.evaluation.data import CodedEvalData
from nercc.runtime.checks import ConfigError, check_trainer
from nercc.stragglers import FixedStragglers
from tests.spies import record_decoded_dtypes

from .test_module import FakeData, TinyNet


class DtypeRecorder(TinyNet):
    """TinyNet that records the dtype of every batch it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.dtypes: set[torch.dtype] = set()

    def forward(self, x):
        self.dtypes.add(x.dtype)
        return super().forward(x)


def run(precision, monkeypatch):
    decoded = record_decoded_dtypes(monkeypatch)
    net = DtypeRecorder()
    variants = [
        SchemeVariant("nercc", NeRCC(8, 20, 1e-5, 1e-6)),
        SchemeVariant("bacc", BACC(8, 20)),
    ]
    module = CodedInferenceModule(
        net, variants, [0, 4, 8], FixedStragglers, num_patterns=2, chunk_size=7, seed=3
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        precision=precision,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.test(module, datamodule=CodedEvalData(FakeData(50), "test", 24), verbose=False)
    return module.results, net.dtypes, decoded


def test_bf16_mixed_runs_the_coding_in_float32(monkeypatch):
    full, full_inputs, full_decoded = run("32", monkeypatch)
    mixed, mixed_inputs, mixed_decoded = run("bf16-mixed", monkeypatch)
    assert full_inputs == mixed_inputs == {torch.float32}  # coded inputs encoded in float32
    assert full_decoded == mixed_decoded == {torch.float32}
    assert [(r["scheme"], r["num_stragglers"]) for r in mixed] == [
        (r["scheme"], r["num_stragglers"]) for r in full
    ]
    for a, b in zip(full, mixed, strict=True):
        # bfloat16 keeps 8 bits: the classifier's outputs move by about 1e-2 of their size
        assert b["mse"] == pytest.approx(a["mse"], rel=0.1, abs=1e-3)
        assert abs(b["rel_acc"] - a["rel_acc"]) <= 0.1


@pytest.mark.parametrize("precision", ["16-true", "bf16-true", "transformer-engine"])
def test_half_precisions_are_refused_for_the_evaluation_only(precision):
    cfg = OmegaConf.create({"trainer": {"precision": precision, "max_epochs": 1}})
    with pytest.raises(ConfigError, match="trainer.precision: must keep the coding in float32"):
        check_trainer(cfg, training=False)
    check_trainer(cfg, training=True)  # training a model in 16 bits is the user's choice


@pytest.mark.parametrize("precision", ["32", "64", "16-mixed", "bf16-mixed", "16", "bf16"])
def test_full_and_mixed_precisions_pass(precision):
    check_trainer(OmegaConf.create({"trainer": {"precision": precision}}), training=False)


def test_half_outputs_become_float32_before_the_coding():
    class Cast(nn.Module):
        def __init__(self, dtype):
            super().__init__()
            self.dtype = dtype

        def forward(self, x):
            return x.flatten(1)[:, :3].to(self.dtype)

    for dtype, expected in [
        (torch.bfloat16, torch.float32),
        (torch.float16, torch.float32),
        (torch.float32, torch.float32),
        (torch.float64, torch.float64),  # a float64 run keeps its precision
    ]:
        module = CodedInferenceModule(
            Cast(dtype), [SchemeVariant("bacc", BACC(2, 3))], [0], FixedStragglers
        )
        assert module(torch.rand(5, 1, 2, 2)).dtype == expected, dtype
