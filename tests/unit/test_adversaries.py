"""Adversary models: each kind against its closed form, the placement, the seeded draws, the
stack of encoders against its slices, the targeted attack against random placement, the errors;
and the config check of the adversary group (rows of refusals, as tests/unit/runtime does)."""

from __future__ import annotations

import inspect
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from nercc.adversaries import (
    ADVERSARIES,
    Adversary,
    ConstantAdversary,
    GaussianAdversary,
    LabelFlipAdversary,
    NoAdversary,
    SignFlipAdversary,
    TargetedAdversary,
)
from nercc.coding import BACC, NeRCC
from nercc.runtime.checks.adversaries import check_adversaries
from nercc.utils.errors import ConfigError
from tests.processes import fresh_python

CONF = Path(__file__).resolve().parents[2] / "conf"
ATTACKING = [k for k in ADVERSARIES if k != "none"]


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def setup(p=6, n=12, c=5, mid=(), stragglers=2, seed=0):
    """Outputs (P, N, *mid, C) float64 with NaN at the stragglers' rows, and the mask (P, N)."""
    rng = np.random.default_rng(seed)
    outputs = rng.normal(size=(p, n, *mid, c)) * 3.0 + 1.0
    available = np.ones((p, n), dtype=bool)
    for row in available:
        row[rng.choice(n, stragglers, replace=False)] = False
    outputs[~available] = np.nan
    return torch.tensor(outputs), available


def sigma_ref(outputs, available):
    """Per pattern (and mid index) the std (ddof 0) over the answering workers and C."""
    values = outputs.numpy()
    return np.stack(
        [
            np.moveaxis(values[p][available[p]], -1, 0).reshape(-1, *values.shape[2:-1]).std(0)
            if values.ndim > 3
            else values[p][available[p]].std()
            for p in range(values.shape[0])
        ]
    )


def model(kind, **settings):
    return ADVERSARIES[kind](**settings)


# -- declarations --------------------------------------------------------------------------------
def test_every_kind_declares_its_constructor_and_has_a_config():
    assert list(ADVERSARIES) == [
        "none", "gaussian", "sign_flip", "constant", "label_flip", "targeted"
    ]  # fmt: skip
    for kind, cls in ADVERSARIES.items():
        assert issubclass(cls, Adversary) and cls.kind == kind
        signature = inspect.signature(cls).parameters
        assert [s.name for s in cls.settings] == list(signature)
        assert all(signature[s.name].default == s.default for s in cls.settings)
        node = OmegaConf.load(CONF / "adversary" / f"{kind}.yaml")
        built = instantiate(node)
        assert type(built) is cls and built.kind == kind
        assert set(node) - {"_target_", "_partial_"} <= {s.name for s in cls.settings}


def test_describe_and_depends_on_scheme():
    assert GaussianAdversary().describe() == {
        "adversary": "gaussian", "adversary_placement": "random"
    }  # fmt: skip
    assert not GaussianAdversary().depends_on_scheme
    assert SignFlipAdversary(placement="adversarial").depends_on_scheme
    assert TargetedAdversary(placement="random").depends_on_scheme
    assert not NoAdversary(placement="adversarial").depends_on_scheme
    assert repr(ConstantAdversary(5, 2)) == (
        "ConstantAdversary(value=5.0, target_class=2, placement='random')"
    )


def test_reading_the_declarations_imports_no_torch():
    code = (
        "import sys; from nercc.adversaries import ADVERSARIES as A; "
        "[c.settings for c in A.values()]; A['targeted'](scale=2.0).describe(); "
        "print('torch' in sys.modules)"
    )
    assert fresh_python(code) == "False"


# -- closed forms --------------------------------------------------------------------------------
def _untouched_elsewhere(attack, outputs):
    keep = torch.as_tensor(~attack.adversarial)
    torch.testing.assert_close(attack.outputs[keep], outputs[keep], rtol=0, atol=0, equal_nan=True)


def test_sign_flip_negates_and_scales_the_adversarial_answers():
    outputs, available = setup()
    attack = SignFlipAdversary(scale=2.5).attack(outputs, available, 3, gen())
    chosen = torch.as_tensor(attack.adversarial)
    torch.testing.assert_close(attack.outputs[chosen], -2.5 * outputs[chosen], rtol=0, atol=0)
    _untouched_elsewhere(attack, outputs)


def test_constant_answers_the_fixed_vote():
    outputs, available = setup(c=4)
    attack = ConstantAdversary(value=-7.0, target_class=2).attack(outputs, available, 2, gen())
    chosen = torch.as_tensor(attack.adversarial)
    expected = torch.tensor([0.0, 0.0, -7.0, 0.0], dtype=torch.float64).expand(int(chosen.sum()), 4)
    torch.testing.assert_close(attack.outputs[chosen], expected, rtol=0, atol=0)
    _untouched_elsewhere(attack, outputs)


def test_label_flip_swaps_the_top_logit_with_a_uniform_other_one():
    outputs, available = setup(p=400, c=4)
    attack = LabelFlipAdversary().attack(outputs, available, 3, gen())
    chosen = torch.as_tensor(attack.adversarial)
    before, after = outputs[chosen].numpy(), attack.outputs[chosen].numpy()
    top, new_top = before.argmax(1), after.argmax(1)
    rows = np.arange(len(before))
    assert np.all(new_top != top)
    assert np.array_equal(after[rows, top], before[rows, new_top])
    assert np.array_equal(after[rows, new_top], before[rows, top])
    rest = np.ones_like(before, dtype=bool)
    rest[rows, top] = rest[rows, new_top] = False
    assert np.array_equal(after[rest], before[rest])
    # The new top relative to the old one: uniform over the C - 1 = 3 others (1200 answers,
    # each share 1/3 with std 0.014).
    shares = np.bincount((new_top - top) % 4, minlength=4)[1:] / len(rows)
    np.testing.assert_allclose(shares, 1 / 3, atol=0.06)
    _untouched_elsewhere(attack, outputs)


def test_gaussian_noise_has_the_std_of_each_patterns_answers():
    # Patterns whose answers spread by factors 1..4: the noise follows each pattern's sigma.
    outputs, available = setup(p=160, n=10, c=50)
    factors = torch.arange(160, dtype=torch.float64) % 4 + 1
    outputs = outputs * factors[:, None, None]
    attack = GaussianAdversary(scale=3.0).attack(outputs, available, 5, gen())
    chosen = torch.as_tensor(attack.adversarial)
    sigma = torch.tensor(sigma_ref(outputs, available))[:, None, None]
    z = ((attack.outputs - outputs) / (3.0 * sigma))[chosen]  # (160 * 5, 50) standard normals
    # 40,000 normals: the mean's std 0.005, the std's 0.0035; per factor 10,000 (0.007).
    assert abs(float(z.mean())) < 0.03 and abs(float(z.std()) - 1.0) < 0.03
    per_factor = z.reshape(160, 5, 50).std(dim=(1, 2)).reshape(40, 4).square().mean(0).sqrt()
    torch.testing.assert_close(per_factor, torch.ones(4, dtype=torch.float64), atol=0.05, rtol=0)
    _untouched_elsewhere(attack, outputs)
    # Linear in the scale: the same draws at another scale.
    half = GaussianAdversary(scale=1.5).attack(outputs, available, 5, gen())
    torch.testing.assert_close(
        (half.outputs - outputs)[chosen], 0.5 * (attack.outputs - outputs)[chosen]
    )


def test_targeted_pushes_from_the_top_class_to_the_runner_up():
    scheme = BACC(4, 12)
    outputs, available = setup(p=8, c=5)
    for placement in ("random", "adversarial"):
        attack = TargetedAdversary(scale=0.7, placement=placement).attack(
            outputs, available, 3, gen(), scheme
        )
        decoders = scheme.decoder_matrices(available)
        sigma = sigma_ref(outputs, available)
        expected = outputs.numpy().copy()
        for p, k in enumerate(attack.targets):
            answers = np.nan_to_num(outputs[p].numpy())
            estimate = decoders[p, k] @ answers
            t, r = np.argsort(estimate)[::-1][:2]
            direction = np.zeros(5)
            direction[r], direction[t] = 1.0, -1.0
            for n in np.flatnonzero(attack.adversarial[p]):
                push = np.sign(decoders[p, k, n]) * 0.7 * sigma[p] * math.sqrt(5 / 2)
                expected[p, n] += push * direction
        np.testing.assert_allclose(attack.outputs.numpy(), expected, rtol=1e-12, atol=1e-12)
        assert attack.targets.shape == (8,) and set(attack.targets) <= set(range(4))


# -- placement and draws -------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ATTACKING)
@pytest.mark.parametrize("placement", ["random", "adversarial"])
def test_exactly_a_answering_adversaries_seeded(kind, placement):
    outputs, available = setup(p=20, stragglers=4)
    scheme = BACC(4, 12)
    adversary = model(kind, placement=placement)
    before = outputs.clone()
    attack = adversary.attack(outputs, available, 3, gen(), scheme)
    assert torch.equal(outputs.isnan(), before.isnan())
    assert torch.equal(outputs.nan_to_num(), before.nan_to_num())  # the input is never modified
    assert attack.adversarial.dtype == np.bool_ and attack.adversarial.shape == (20, 12)
    assert np.all(attack.adversarial.sum(1) == 3) and not np.any(attack.adversarial & ~available)
    assert attack.outputs.shape == outputs.shape and attack.outputs.dtype == outputs.dtype
    again = adversary.attack(outputs, available, 3, gen(), scheme)
    assert np.array_equal(again.adversarial, attack.adversarial)
    assert torch.equal(again.outputs.nan_to_num(), attack.outputs.nan_to_num())
    other = adversary.attack(outputs, available, 3, gen(1), scheme)
    differs = not torch.equal(other.outputs.nan_to_num(), attack.outputs.nan_to_num())
    if placement == "random" or kind in ("gaussian", "label_flip", "targeted"):
        assert differs
    else:  # no draw at all: the same attack for any seed
        assert not differs


def test_random_placement_is_uniform_among_the_answering():
    _, available = setup(p=3000, n=8, c=2, stragglers=0)
    available[:, 0] = False
    outputs = torch.zeros(3000, 8, 2)
    attack = SignFlipAdversary().attack(outputs, available, 2, gen())
    # Each of the 7 answering workers is chosen with probability 2/7 (std 0.008 over 3000).
    frequency = attack.adversarial.mean(0)
    assert frequency[0] == 0.0
    np.testing.assert_allclose(frequency[1:], 2 / 7, atol=0.04)


@pytest.mark.parametrize("kind", ATTACKING)
def test_adversarial_placement_takes_the_heaviest_decoder_columns(kind):
    scheme = BACC(4, 12)
    outputs, available = setup(p=10, stragglers=3)
    attack = model(kind, placement="adversarial").attack(outputs, available, 4, gen(), scheme)
    decoders = scheme.decoder_matrices(available)
    for p in range(10):
        if kind == "targeted":
            weight = np.abs(decoders[p, attack.targets[p]])
        else:
            weight = np.linalg.norm(decoders[p], axis=0)
        weight[~available[p]] = -1.0
        expected = np.sort(np.argsort(-weight, kind="stable")[:4])
        assert np.array_equal(np.flatnonzero(attack.adversarial[p]), expected)


@pytest.mark.parametrize("kind", ATTACKING)
@pytest.mark.parametrize("placement", ["random", "adversarial"])
def test_a_stack_of_encoders_is_attacked_slice_by_slice(kind, placement):
    scheme = BACC(4, 12)
    outputs, available = setup(p=5, mid=(3,), c=6)
    for dtype in (torch.float64, torch.float32):
        stacked = outputs.to(dtype)
        adversary = model(kind, placement=placement)
        whole = adversary.attack(stacked, available, 3, gen(), scheme)
        for e in range(3):
            alone = adversary.attack(stacked[:, :, e].contiguous(), available, 3, gen(), scheme)
            assert np.array_equal(alone.adversarial, whole.adversarial)
            # Bit for bit (on the CPU): the same draws, each statistic summed in the same order.
            assert torch.equal(alone.outputs.nan_to_num(), whole.outputs[:, :, e].nan_to_num())


@pytest.mark.parametrize("kind", list(ADVERSARIES))
def test_no_adversaries_change_nothing_and_draw_nothing(kind):
    outputs, available = setup()
    generator = gen()
    state = generator.get_state()
    attack = model(kind).attack(outputs, available, 0, generator, BACC(4, 12))
    assert attack.outputs is not outputs
    torch.testing.assert_close(attack.outputs, outputs, rtol=0, atol=0, equal_nan=True)
    assert attack.adversarial.shape == (6, 12) and not attack.adversarial.any()
    assert torch.equal(generator.get_state(), state)


def test_targeted_moves_its_input_more_than_random_placement():
    """BACC K=4, N=12 on a smooth f: the same budget and target, the heaviest workers move the
    plain estimate of the target input further than random ones."""
    scheme = BACC(4, 12)
    inputs = np.linspace(-1, 1, 4)[:, None] * np.array([[1.0, 0.5]])  # (K, 2)
    coded = scheme.encode(inputs)  # (N, 2)
    f = np.stack([np.sin(coded[:, 0]), np.cos(coded[:, 1]), coded[:, 0] ** 2, coded.sum(1)], 1)
    p = 40
    rng = np.random.default_rng(3)
    available = np.ones((p, 12), dtype=bool)
    for row in available:
        row[rng.choice(12, 2, replace=False)] = False
    outputs = torch.tensor(np.broadcast_to(f, (p, 12, 4)).copy())
    clean = scheme.decode_each(outputs, available)
    moved = {}
    for placement in ("adversarial", "random"):
        attack = TargetedAdversary(placement=placement).attack(outputs, available, 2, gen(), scheme)
        shift = scheme.decode_each(attack.outputs, available) - clean  # (P, K, C)
        moved[placement] = shift[torch.arange(p), torch.as_tensor(attack.targets)].norm(dim=1)
    # The push is signed by D[k, n], so the shift is proportional to sum |D[k, n]| of the chosen:
    # largest for the heaviest workers in every pattern.
    assert bool((moved["adversarial"] >= moved["random"] - 1e-12).all())
    assert float(moved["adversarial"].mean()) > 1.5 * float(moved["random"].mean())
    # And further than Gaussian noise of the same expected norm at the same workers.
    noise = GaussianAdversary(placement="adversarial").attack(outputs, available, 2, gen(), scheme)
    shift = scheme.decode_each(noise.outputs, available) - clean
    noisy = shift[torch.arange(p), torch.as_tensor(attack.targets)].norm(dim=1)
    assert float(moved["adversarial"].mean()) > 1.5 * float(noisy.mean())


# -- errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cls", "settings", "message"),
    [
        (GaussianAdversary, {"scale": 0.0}, "scale must be a finite number > 0, got 0.0"),
        (GaussianAdversary, {"scale": float("nan")}, "scale must be a finite number > 0"),
        (SignFlipAdversary, {"scale": -1}, "scale must be a finite number >= 0, got -1"),
        (TargetedAdversary, {"scale": -0.5}, "scale must be a finite number > 0, got -0.5"),
        (ConstantAdversary, {"value": float("inf")}, "value must be a finite number, got inf"),
        (ConstantAdversary, {"target_class": 1.5}, "target_class must be an integer >= 0, got 1.5"),
        (ConstantAdversary, {"target_class": -1}, "target_class must be a finite number >= 0"),
        (ConstantAdversary, {"target_class": True}, "target_class must be an integer >= 0"),
        (LabelFlipAdversary, {"placement": "middle"}, "placement must be 'random' or 'advers"),
        (NoAdversary, {"placement": None}, "placement must be 'random' or 'adversarial', got None"),
    ],
)
def test_bad_settings_are_named(cls, settings, message):
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(")):
        cls(**settings)


def test_bad_attack_arguments_are_named():
    outputs, available = setup(stragglers=4)
    scheme = BACC(4, 12)
    cases = [
        (NoAdversary(), (outputs, available, 2, gen()), "num_adversaries must be 0 without an "
         "adversary (NoAdversary answers honestly), got 2; choose an adversary kind (gaussian"),
        (GaussianAdversary(), (outputs, available, 9, gen()), "num_adversaries must be at most "
         "the smallest answer count of a pattern, 8, got 9"),
        (GaussianAdversary(), (outputs, available, -1, gen()), "num_adversaries must be an "
         "integer >= 0, got -1"),
        (GaussianAdversary(), (outputs, available, 1.0, gen()), "num_adversaries must be an "
         "integer >= 0, got 1.0"),
        (GaussianAdversary(), (outputs.numpy(), available, 1, gen()), "outputs must be a "
         "floating torch tensor, got a ndarray"),
        (GaussianAdversary(), (outputs.long(), available, 1, gen()), "outputs must be a "
         "floating torch tensor, got dtype torch.int64"),
        (GaussianAdversary(), (outputs[:, :, 0], available, 1, gen()), "outputs must have "
         "shape (P, N, ..., C), got shape (6, 12)"),
        (GaussianAdversary(), (outputs, available[:, :5], 1, gen()), "available must be a bool "
         "array of shape (6, 12)"),
        (GaussianAdversary(), (outputs, available.astype(int), 1, gen()), "available must be a "
         "bool array"),
        (GaussianAdversary(), (outputs, available, 1, 0), "generator must be a CPU "
         "torch.Generator, got 0"),
        (GaussianAdversary(placement="adversarial"), (outputs, available, 1, gen()),
         "placement='adversarial' of gaussian needs the scheme's decoder matrices, got "
         "scheme=None"),
        (TargetedAdversary(), (outputs, available, 1, gen()), "targeted needs the scheme's "
         "decoder matrices, got scheme=None"),
        (TargetedAdversary(), (outputs, available, 1, gen(), NeRCC(4, 12, lam_dec="gcv")),
         "targeted needs decoder matrices, and NeRCC("),
        (ConstantAdversary(target_class=5), (outputs, available, 1, gen()), "target_class must "
         "be below the C=5 output coordinates, got 5"),
        (LabelFlipAdversary(), (outputs[..., :1], available, 1, gen()), "label_flip needs "
         "outputs with C >= 2 coordinates, got C=1"),
        (TargetedAdversary(), (outputs[..., :1], available, 1, gen(), scheme), "targeted needs "
         "outputs with C >= 2 coordinates, got C=1"),
    ]  # fmt: skip
    for adversary, arguments, message in cases:
        with pytest.raises(ValueError) as error:
            adversary.attack(*arguments)
        assert str(error.value).startswith(message), str(error.value)
    # The smallest answer count is that of the worst pattern.
    available[2] = np.arange(12) >= 7  # 5 answer
    with pytest.raises(ValueError, match="smallest answer count of a pattern, 5, got 6"):
        SignFlipAdversary().attack(outputs, available, 6, gen())
    assert SignFlipAdversary().attack(outputs, available, 5, gen()).adversarial.sum() == 30
    assert SignFlipAdversary().attack(outputs[:0], available[:0], 5, gen()).adversarial.shape == (
        0, 12
    )  # fmt: skip


# -- the config check ----------------------------------------------------------------------------
def adversary_config(kind="none", adversaries=(0,), **more):
    """A config with the adversary group ``kind`` (its yaml) and the A list, NeRCC and BACC
    schemes, 10 classes; ``more`` as dotted keys (``**{"adversary.scale": 2}``)."""
    cfg = OmegaConf.create(
        {
            "adversaries": list(adversaries) if isinstance(adversaries, tuple) else adversaries,
            "adversary": OmegaConf.load(CONF / "adversary" / f"{kind}.yaml"),
            "data": {"num_classes": 10},
            "scheme": {
                "nercc": {"_target_": "nercc.coding.NeRCC", "lam_dec": 0.0},
                "bacc": {"_target_": "nercc.coding.BACC"},
            },
        }
    )
    for key, value in more.items():
        OmegaConf.update(cfg, key, value, force_add=True)
    return cfg


CHECK_CASES = [
    # (kind, A list, more keys, S list, N) -> key, what the line shows
    ("none", 3, {}, [0], 100, "adversaries", "non-empty list of integers >= 0, got 3"),
    ("none", [], {}, [0], 100, "adversaries", "got []"),
    ("none", [-1], {}, [0], 100, "adversaries", "got [-1]"),
    ("none", [1.5], {}, [0], 100, "adversaries", "got [1.5]"),
    ("gaussian", [0, 2, 2], {}, [0], 100, "adversaries", "must not repeat a value, got [0, 2, 2]"),
    ("none", [0, 5], {}, [0], 100, "adversaries",
     "adversary=none cannot place A=5 adversaries; choose an adversary kind (adversary=gaussian, "
     "adversary=sign_flip, adversary=constant, adversary=label_flip, adversary=targeted), "
     "got [0, 5]"),
    ("gaussian", [0, 90], {}, [0, 20], 100, "adversaries",
     "A=90 exceeds the N - S = 80 workers that answer at S=20, got [0, 90]"),
    ("gaussian", [81], {}, [20], 100, "adversaries", "N - S = 80"),
    ("gaussian", [0], {"adversary.scale": 0}, [0], 100, "adversary.scale",
     "must be a finite number > 0, got 0"),
    ("sign_flip", [0], {"adversary.scale": -1}, [0], 100, "adversary.scale", "got -1"),
    ("gaussian", [0], {"adversary.placement": "middle"}, [0], 100, "adversary.placement",
     "must be one of random, adversarial, got 'middle'"),
    ("gaussian", [0], {"adversary.value": 3}, [0], 100, "adversary.value",
     "is not a setting of GaussianAdversary (its settings: scale, placement; the adversaries "
     "list gives A), got 3"),
    ("label_flip", [0], {"adversary.scale": 2}, [0], 100, "adversary.scale",
     "its settings: placement"),
    ("constant", [0], {"adversary.target_class": 1.5}, [0], 100, "adversary.target_class",
     "ConstantAdversary refuses it (target_class must be an integer >= 0, got 1.5), got 1.5"),
    ("constant", [0], {"adversary.target_class": 10}, [0], 100, "adversary.target_class",
     "must be below data.num_classes=10, got 10"),
    ("constant", [0], {"adversary.value": "big"}, [0], 100, "adversary.value", "got 'big'"),
    ("targeted", [2], {"scheme.nercc.lam_dec": "gcv"}, [0], 100, "scheme.nercc.lam_dec",
     "'gcv' decodes each pattern from its answers, so it has no decoder matrix for "
     "adversary=targeted to read; use another adversary kind, or a number or auto, got 'gcv'"),
    ("gaussian", [2], {"adversary.placement": "adversarial", "scheme.nercc.lam_dec": [0, "gcv"]},
     [0], 100, "scheme.nercc.lam_dec", "use adversary.placement=random"),
    ("gaussian", [2], {"adversary._target_": "nercc.stragglers.FixedStragglers"}, [0], 100,
     "adversary._target_", "must name an adversary class (nercc.adversaries: NoAdversary"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "counts", "more", "stragglers", "n", "key", "got"), CHECK_CASES)
def test_the_check_refuses(kind, counts, more, stragglers, n, key, got):
    cfg = adversary_config(kind, counts, **more)
    with pytest.raises(ConfigError) as error:
        check_adversaries(cfg, stragglers, n)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{key}: "), message
    assert got in message, message


GOOD = [
    ("none", [0], {}, [0, 99], 100),
    ("gaussian", [0, 80], {}, [0, 20], 100),  # the last A accepted: N - S
    ("gaussian", [0, 2, 5, 10], {"adversary.placement": "adversarial"}, [20], 100),
    ("sign_flip", [10], {"adversary.scale": 0}, [0], 100),
    ("constant", [1], {"adversary.target_class": 9, "adversary.value": -1e3}, [0], 100),
    ("label_flip", [3], {}, [0], 100),
    ("targeted", [10], {"adversary.scale": 4.0}, [20], 100),
    ("targeted", [0], {"scheme.nercc.lam_dec": "gcv"}, [0], 100),  # no adversary, no decoder read
    ("gaussian", [5], {"scheme.nercc.lam_dec": "gcv"}, [0], 100),  # random placement reads none
]  # fmt: skip


@pytest.mark.parametrize(("kind", "counts", "more", "stragglers", "n"), GOOD)
def test_the_check_passes_good_configs(kind, counts, more, stragglers, n):
    assert check_adversaries(adversary_config(kind, counts, **more), stragglers, n) == counts
