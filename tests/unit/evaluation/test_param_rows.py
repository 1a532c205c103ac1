"""The parameters a row reports are those its patterns were decoded with: recomputed here pattern
by pattern from the same answers (GCV's choice, the effective degrees of freedom)."""

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from rich.console import Console
from torch import nn

from nercc.coding import BACC, NeRCC, choose_lam_gcv, effective_df
from nercc.evaluation import CodedInferenceModule, SchemeVariant
from nercc.evaluation.data import CodedEvalData
from nercc.evaluation.metrics import ParamStats, lower_median
from nercc.evaluation.module import stable_seed
from nercc.evaluation.report import param_columns, print_results, spread_columns
from nercc.stragglers import FixedStragglers
from tests.unit.evaluation.test_module import FakeData

K, N, PATTERNS, BATCH, SEED = 8, 20, 2, 24, 3


class RoughNet(nn.Module):
    """A classifier whose logits are rough along the workers' betas (a high-frequency sine of
    the coded image), so that GCV chooses different lambdas for different patterns."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.hidden = nn.Linear(16, 32)
        self.out = nn.Linear(32, 3)
        with torch.no_grad():
            self.hidden.weight.mul_(10.0)

    def forward(self, x):
        return self.out(torch.sin(self.hidden(x.flatten(1))))


def run(variants, stragglers, net=None, count=50):
    net = net or RoughNet()
    module = CodedInferenceModule(
        net, variants, stragglers, FixedStragglers, num_patterns=PATTERNS, chunk_size=4096,
        seed=SEED,
    )  # fmt: skip
    trainer = pl.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    data = FakeData(count)
    trainer.test(module, datamodule=CodedEvalData(data, "test", BATCH), verbose=False)
    return module, net, data


def patterns_and_answers(scheme, s, net, data):
    """Every (group, pattern) draw of the run, as the module makes it: its availability mask and
    the workers' outputs (float32 classifier on the float32 coded group, as in test_step)."""
    images = data.images
    encoder = torch.tensor(scheme.encoder_matrix(), dtype=torch.float32)
    for start in range(0, len(images), BATCH):
        x = images[start : start + BATCH]
        groups = -(-len(x) // K)
        take = torch.arange(groups * K) % len(x)
        grouped = x[take].view(groups, K, *x.shape[1:])
        coded = (encoder @ grouped.reshape(groups, K, -1)).view(groups * N, *x.shape[1:])
        with torch.no_grad():
            outputs = net(coded).view(groups, N, -1).double().numpy()
        generator = torch.Generator().manual_seed(stable_seed(SEED, s, N, start))
        masks = FixedStragglers(s).sample(groups * PATTERNS, N, generator).available.numpy()
        for index, mask in enumerate(masks):
            yield mask, outputs[index // PATTERNS][mask]


def stats(values):
    return {"median": lower_median(values), "min": min(values), "max": max(values)}


def test_gcv_rows_report_the_lambdas_gcv_chooses_on_the_same_answers():
    gcv = SchemeVariant("nercc", NeRCC(K, N, 1e-5, "gcv"), "gcv")
    module, net, data = run([gcv], [0, 5, 12])
    varied = False
    for row in module.results:
        lams, dfs = [], []
        for mask, answers in patterns_and_answers(gcv.scheme, row["num_stragglers"], net, data):
            lam = choose_lam_gcv(gcv.scheme.betas[mask], answers)
            lams.append(lam)
            dfs.append(effective_df(gcv.scheme.betas[mask], lam))
        assert len(lams) == row["num_patterns"] == PATTERNS * (3 + 3 + 1)
        expected = stats(lams)
        # lambdas of the grid: equal, not close
        assert [row["lam_dec"], row["lam_dec_min"], row["lam_dec_max"]] == [
            expected["median"], expected["min"], expected["max"],
        ], row["num_stragglers"]  # fmt: skip
        assert row["lam_dec"] in lams  # the lower median is a lambda some pattern used
        expected = stats(dfs)
        for stat, column in (("median", "df_dec"), ("min", "df_dec_min"), ("max", "df_dec_max")):
            assert row[column] == pytest.approx(expected[stat], rel=1e-9), column
        assert row["lam_enc"] == 1e-5
        assert row["df_enc"] == pytest.approx(effective_df(gcv.scheme.alphas, 1e-5), rel=1e-12)
        varied |= expected["min"] < expected["max"] and row["lam_dec_min"] < row["lam_dec_max"]
    assert varied  # the rough classifier makes GCV choose differently across patterns


def test_df_columns_are_the_effective_df_of_each_side():
    # "a" and "b" share a decoder (decoded side by side, from "a"'s call): "b" still reports
    # its own encoder. "d" gives both sides as degrees of freedom.
    variants = [
        SchemeVariant("nercc", NeRCC(K, N, 1e-4, 1e-3), "a"),
        SchemeVariant("nercc", NeRCC(K, N, 0.0, 1e-3), "b"),
        SchemeVariant("nercc", NeRCC(K, N, df_enc=6.0, df_dec=10.0), "d"),
        SchemeVariant("bacc", BACC(K, N)),
    ]
    module, net, data = run(variants, [0, 5, 12])
    assert [sorted(g) for g in module.decoder_groups] == [[0, 1], [2], [3]]
    for row in module.results:
        variant = next(v for v in variants if v.label == row["variant"])
        scheme, s = variant.scheme, row["num_stragglers"]
        if variant.name == "bacc":
            assert all(row[c] is None for c in ("lam_enc", "lam_dec", "df_enc", "df_dec"))
            continue
        assert row["df_enc"] == pytest.approx(effective_df(scheme.alphas, scheme.lam_enc), rel=1e-9)
        masks = [mask for mask, _ in patterns_and_answers(scheme, s, net, data)]
        if variant.label == "d":
            assert row["df_enc"] == pytest.approx(6.0, rel=1e-9)
            # the lambda of each pattern gives df_dec on its own sites (fewer: interpolated)
            lams = [float(scheme.decode_each_with_params(
                np.zeros((1, N, 1)), mask[None])[1]["lam_dec"][0]) for mask in masks]  # fmt: skip
            dfs = [effective_df(scheme.betas[m], lam) for m, lam in zip(masks, lams, strict=True)]
            assert dfs == pytest.approx([min(10.0, N - s)] * len(masks), rel=1e-9)
            assert row["lam_dec"] == lower_median(lams)
            assert (row["lam_dec_min"], row["lam_dec_max"]) == (min(lams), max(lams))
        else:
            assert row["lam_dec"] == 1e-3 and row["lam_dec_min"] is None
            dfs = [effective_df(scheme.betas[m], 1e-3) for m in masks]
        expected = stats(dfs)
        for stat, column in (("median", "df_dec"), ("min", "df_dec_min"), ("max", "df_dec_max")):
            assert row[column] == pytest.approx(expected[stat], rel=1e-9), (row["variant"], s)
    # the same keys in every row, in one order: medians, each followed by its spread if any
    keys = {tuple(row) for row in module.results}
    assert len(keys) == 1
    params = [c for c in next(iter(keys)) if c.startswith(("lam_", "df_"))]
    assert params == [
        "lam_enc", "lam_dec", "lam_dec_min", "lam_dec_max", "df_enc", "df_dec", "df_dec_min",
        "df_dec_max",
    ]  # fmt: skip


def test_without_a_varying_lambda_there_is_no_lambda_spread_column():
    module, _, _ = run([SchemeVariant("nercc", NeRCC(K, N, 0.0, 0.0))], [0, 5])
    row = module.results[0]
    assert "lam_dec_min" not in row and "lam_enc_min" not in row
    # interpolation at S stragglers: df_dec = N - S answers, in every pattern
    assert [(r["df_dec"], r["df_dec_min"], r["df_dec_max"]) for r in module.results] == [
        (20.0, 20.0, 20.0), (15.0, 15.0, 15.0),
    ]  # fmt: skip


def test_param_stats_merge_exactly_in_any_order():
    rng = np.random.default_rng(0)
    grid = np.array([0.0, 1e-8, 1e-6, 1e-4])
    draws = [{"lam": rng.choice(grid, 7), "df": rng.uniform(3, 9, 7)} for _ in range(5)]
    one = ParamStats(["lam", "df"])
    for d in draws:
        one.update(d)
    # Two processes with some of the updates each. torchmetrics' own sync, with the all_gather
    # of a DDP run replaced by what it returns there: every process's (concatenated) state.
    first, second = ParamStats(["lam", "df"]), ParamStats(["lam", "df"])
    for i, d in enumerate(draws):
        (first if i % 2 else second).update({k: torch.as_tensor(v) for k, v in d.items()})
    gathered = [torch.cat(second.triples), torch.cat(first.triples)]
    first._sync_dist(lambda tensor, group=None: gathered)
    everything = {k: np.concatenate([d[k] for d in draws]) for k in ("lam", "df")}
    for name, values in everything.items():
        expected = {"median": np.sort(values)[(len(values) - 1) // 2]}
        expected |= {"min": values.min(), "max": values.max()}
        assert one.compute()[name] == first.compute()[name] == expected
    with pytest.raises(ValueError, match=r"params must give exactly \['lam', 'df'\]"):
        one.update({"lam": np.zeros(2)})


def test_lower_median():
    assert lower_median([3.0, 1.0, 2.0, 4.0]) == 2.0  # of two middle values the smaller
    assert lower_median([5.0, 1.0, 2.0]) == 2.0
    assert lower_median([1.0, 2.0, 3.0], counts=[1, 1, 5]) == 3.0
    assert np.isnan(lower_median([]))


ROWS = [
    {"variant": "gcv", "num_stragglers": 5, "lam_enc": 1e-6, "lam_dec": 1e-4,
     "lam_dec_min": 1e-6, "lam_dec_max": 0.01, "df_enc": 7.91, "df_dec": 12.34,
     "df_dec_min": 9.1, "df_dec_max": 15.0},
    {"variant": "fixed", "num_stragglers": 5, "lam_enc": 0.0, "lam_dec": 0.0, "lam_dec_min": None,
     "lam_dec_max": None, "df_enc": 8.0, "df_dec": 15.0, "df_dec_min": 15.0, "df_dec_max": 15.0},
    {"variant": "bacc", "num_stragglers": 5, "lam_enc": None, "lam_dec": None,
     "lam_dec_min": None, "lam_dec_max": None, "df_enc": None, "df_dec": None,
     "df_dec_min": None, "df_dec_max": None},
]  # fmt: skip
for _row in ROWS:
    _row |= {"scheme": "nercc" if _row["lam_enc"] is not None else "bacc", "params_source": "x"}
    _row |= {m: 0.5 for m in ("mse", "acc", "base_acc", "rel_acc", "agreement")}


def test_spread_columns_are_not_parameters_and_show_beside_their_median():
    assert param_columns(ROWS) == ["lam_enc", "lam_dec", "df_enc", "df_dec"]
    assert spread_columns(ROWS) == ["lam_dec_min", "lam_dec_max", "df_dec_min", "df_dec_max"]
    console = Console(record=True, width=250)
    print_results(ROWS, "title", console)
    text = console.export_text()
    assert "lam_enc (df)" in text and "lam_dec (df)" in text and "df_dec_min" not in text
    assert "1e-06 (7.91)" in text  # the encoder: lambda, then its df
    assert "0.0001 [1e-06, 0.01] (12.3 [9.1, 15])" in text  # medians with their spread
    assert "0 (15)" in text  # no spread where min = max
    assert "nercc parameters: x" in text and "bacc parameters" not in text
