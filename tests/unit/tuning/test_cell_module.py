"""The evaluation module with variants tuned per (S, A) cell: each runs only in its cells, its
rows there are those it gives when run in every cell, and the classifier still runs once for all
cells."""

import pytest
import pytorch_lightning as pl

from nercc.adversaries import SignFlipAdversary, TargetedAdversary
from nercc.coding import BACC, NeRCC, RobustBACC
from nercc.evaluation import CodedInferenceModule, SchemeVariant
from nercc.evaluation.data import CodedEvalData
from nercc.stragglers import FixedStragglers
from tests.unit.evaluation.test_module import FakeData, TinyNet

K, N, S = 4, 16, 2
#: Two cells each: a diagonal and its complement over S in (0, 2) and A in (0, 3).
DIAGONAL = frozenset({(0, 0), (S, 3)})
ACROSS = frozenset({(0, 3), (S, 0)})


def schemes():
    """(name, scheme, cells): NeRCC with two encoders and one decoder (decoded side by side),
    robust BACC with two screening cuts (two decoders), and plain BACC in every cell."""
    return [
        ("nercc", NeRCC(K, N, 0.0, 1e-3), DIAGONAL),
        ("nercc", NeRCC(K, N, 1e-2, 1e-3), ACROSS),
        ("bacc_robust", RobustBACC(K, N, screen=8.0), DIAGONAL),
        ("bacc_robust", RobustBACC(K, N, screen=3.0), ACROSS),
        ("bacc", BACC(K, N), None),
    ]


def run(variants, adversary):
    net = TinyNet()
    module = CodedInferenceModule(
        net, variants, [0, S], FixedStragglers, num_patterns=2, chunk_size=64, seed=5,
        adversaries=[0, 3], adversary=adversary,
    )  # fmt: skip
    trainer = pl.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.test(module, datamodule=CodedEvalData(FakeData(48), "test", 24), verbose=False)
    return module.results, net.seen


def _key(row):
    return row["variant"], row["num_stragglers"], row["num_adversaries"]


@pytest.mark.parametrize(
    "adversary", [SignFlipAdversary(scale=20.0), TargetedAdversary(scale=20.0)], ids=repr
)
def test_each_variant_runs_only_in_its_cells_as_it_would_in_every_cell(adversary):
    # labels tell the variants apart; the targeted attack aims at each decoder (decoded alone)
    per_cell = [SchemeVariant(n, s, f"{n}{i}", c) for i, (n, s, c) in enumerate(schemes())]
    everywhere = [SchemeVariant(n, s, f"{n}{i}") for i, (n, s, _) in enumerate(schemes())]
    rows, seen = run(per_cell, adversary)
    full, seen_full = run(everywhere, adversary)
    assert seen == seen_full  # the classifier once for every cell, cells or not
    cells = {i: c for i, (_, _, c) in enumerate(schemes())}
    expected = [
        _key(r) for r in full if cells[int(r["variant"][-1])] is None
        or (r["num_stragglers"], r["num_adversaries"]) in cells[int(r["variant"][-1])]
    ]  # fmt: skip
    assert [_key(r) for r in rows] == expected
    assert len(rows) == 4 * 2 + 4  # two cells per tuned variant, every cell for bacc
    by_key = {_key(r): r for r in full}
    for row in rows:
        same = by_key[_key(row)]
        assert row.keys() == same.keys()
        for key, value in row.items():
            if isinstance(value, float):
                assert value == pytest.approx(same[key], rel=1e-9, abs=1e-12), (_key(row), key)
            else:
                assert value == same[key], (_key(row), key)
    # the parameters a row shows are those its cell used
    for row in rows:
        if row["scheme"] == "nercc":
            used = 0.0 if (row["num_stragglers"], row["num_adversaries"]) in DIAGONAL else 1e-2
            assert row["lam_enc"] == used
