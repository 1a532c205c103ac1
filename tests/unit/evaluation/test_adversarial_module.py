"""The evaluation module under adversaries: one classifier pass for every S and A, A = 0 rows the
honest rows, the detection columns recomputed from the decoder's own flags, and the attacks that
aim at each scheme's decoder decoded scheme by scheme."""

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from nercc.adversaries import SignFlipAdversary, TargetedAdversary
from nercc.coding import BACC, NeRCC, RobustBACC
from nercc.evaluation import CodedInferenceModule, SchemeVariant
from nercc.evaluation.data import CodedEvalData
from nercc.evaluation.module import stable_seed
from nercc.stragglers import FixedStragglers
from tests.unit.evaluation.test_module import FakeData, TinyNet

K, N, S = 4, 16, 2
VARIANTS = [
    SchemeVariant("nercc", NeRCC(K, N)),
    SchemeVariant("bacc", BACC(K, N)),
    SchemeVariant("bacc_robust", RobustBACC(K, N, screen=8.0)),
]


def run(adversaries, adversary, count=48, batch_size=24):
    net = TinyNet()
    module = CodedInferenceModule(
        net, VARIANTS, [0, S], FixedStragglers, num_patterns=2, chunk_size=64, seed=5,
        adversaries=adversaries, adversary=adversary,
    )  # fmt: skip
    trainer = pl.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    data = FakeData(count)
    trainer.test(module, datamodule=CodedEvalData(data, "test", batch_size), verbose=False)
    return module, net, data


def test_one_classifier_pass_for_every_a_and_a_zero_is_the_honest_run():
    honest, net_honest, _ = run([0], None)
    attacked, net_attacked, _ = run([0, 1, 3], SignFlipAdversary(scale=20.0))
    assert net_attacked.seen == net_honest.seen  # the attack is on the answers, not the inputs
    assert len(attacked.results) == 3 * 2 * 3
    same = {(r["variant"], r["num_stragglers"]): r for r in honest.results}
    attack_columns = ("adversary", "adversary_placement", "num_adversaries")
    for row in attacked.results:
        if row["num_adversaries"] == 0:
            mine = {k: v for k, v in row.items() if k not in attack_columns}
            theirs = {k: v for k, v in same[row["variant"], row["num_stragglers"]].items()}
            assert mine == {k: v for k, v in theirs.items() if k not in attack_columns}
        else:
            plain = same[row["variant"], row["num_stragglers"]]
            if row["variant"] != "bacc_robust":
                assert row["mse"] > 100 * plain["mse"]


def test_the_detection_columns_are_the_decoders_flags_against_the_attack():
    adversary = SignFlipAdversary(scale=20.0)
    module, net, data = run([2], adversary, count=24, batch_size=24)  # one batch
    (row,) = [
        r for r in module.results if r["variant"] == "bacc_robust" and r["num_stragglers"] == S
    ]
    # the same patterns, attack and decode, by hand
    scheme = VARIANTS[2].scheme
    images = data.images.double().reshape(6, K, -1).float()
    with torch.no_grad():
        coded = torch.einsum("nk,gkd->gnd", torch.tensor(scheme.encoder_matrix()).float(), images)
        outputs = net.layers(coded.reshape(-1, 1, 4, 4)).reshape(6, N, -1).repeat_interleave(2, 0)
    generator = torch.Generator().manual_seed(stable_seed(5, S, N, 0))
    masks = FixedStragglers(S).sample(12, N, generator).available.numpy()
    attack = adversary.attack(
        outputs, masks, 2, torch.Generator().manual_seed(stable_seed(5, S, N, 0, 2)), scheme
    )
    _, _, flagged = scheme.decode_each_flagged(attack.outputs, masks)
    caught = (flagged & attack.adversarial).sum()
    assert row["detection_recall"] == pytest.approx(caught / attack.adversarial.sum())
    assert row["detection_precision"] == pytest.approx(caught / flagged.sum())
    assert row["flagged_mean"] == pytest.approx(flagged.sum() / 12)
    assert 0 < caught  # the screening found some of them


def test_an_attack_aimed_at_each_decoder_decodes_scheme_by_scheme():
    random_rows = run([0, 2], SignFlipAdversary(scale=5.0))[0].results
    aimed_rows = run([0, 2], TargetedAdversary(scale=5.0, placement="adversarial"))[0].results
    for a, b in zip(random_rows, aimed_rows, strict=True):
        assert (a["variant"], a["num_stragglers"], a["num_adversaries"]) == (
            b["variant"], b["num_stragglers"], b["num_adversaries"]
        )  # fmt: skip
        if a["num_adversaries"] == 0:
            assert a["mse"] == b["mse"]
        else:
            assert b["adversary"] == "targeted" and b["adversary_placement"] == "adversarial"
            assert np.isfinite(b["mse"]) and b["mse"] != a["mse"]
