"""Every eval ``straggler=`` option, ``scheme=all`` and every ``experiment=paper/*`` file composes
with Hydra's compose API, and its straggler models and schemes instantiate and behave as the YAML
files say (read here independently of Hydra). Neither the data nor a classifier is loaded."""

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from nercc.coding import BACC, NeRCC, Replication
from nercc.paths import CONFIG_DIR
from nercc.stragglers import (
    BernoulliStragglers,
    FixedStragglers,
    LatencyStragglers,
    WorstCaseStragglers,
)
from nercc.tasks.evaluate import check_config
from nercc.utils.instantiate import build

CONF = Path(CONFIG_DIR)
STRAGGLERS = sorted(p.stem for p in (CONF / "straggler").glob("*.yaml"))
PAPER = sorted(p.stem for p in (CONF / "experiment" / "paper").glob("*.yaml"))
CLASSES = {
    "nercc.stragglers.FixedStragglers": FixedStragglers,
    "nercc.stragglers.BernoulliStragglers": BernoulliStragglers,
    "nercc.stragglers.LatencyStragglers": LatencyStragglers,
    "nercc.stragglers.WorstCaseStragglers": WorstCaseStragglers,
}
SMALL = ["coding.num_inputs=4", "coding.num_workers=12", "stragglers=[0,3,11]"]


def read_yaml(*parts):
    return yaml.safe_load((CONF.joinpath(*parts)).read_text())


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_the_options_are_the_expected_files():
    assert STRAGGLERS == ["bernoulli", "fixed", "latency", "worst_case"]
    assert PAPER == ["lenet5", "repvgg", "vit"]


def check_patterns(model, option, s, scheme, count=400):
    """Draw patterns of ``model`` for ``scheme`` and check them against the option's rule."""
    n = scheme.num_workers
    drawn = model.sample(count, n, gen(s), scheme)
    available = drawn.available
    assert available.shape == (count, n) and bool(available.any(dim=1).all())
    stragglers = (~available).sum(dim=1)
    if option == "bernoulli":
        rate = stragglers.float().mean().item() / n
        assert abs(rate - s / n) < 0.05 + (0.05 if s == n - 1 else 0.0), (rate, s, n)
        return
    assert stragglers.tolist() == [s] * count  # exactly S straggle
    if option == "latency":
        slowest_kept = torch.where(available, drawn.times, -torch.inf).max(dim=1).values
        fastest_out = torch.where(~available, drawn.times, torch.inf).min(dim=1).values
        assert bool((slowest_kept < fastest_out).all())
    if option == "worst_case" and s > 0:
        first = int(torch.nonzero(~available[0])[0])
        block = np.ones(n, dtype=bool)
        block[first : first + s] = False
        assert bool((available == torch.from_numpy(block)).all())  # one adjacent block
        # adversarial: no other offset hurts the scheme more (brute force, written out)
        errors = []
        for offset in range(n - s + 1):
            mask = np.ones(n, dtype=bool)
            mask[offset : offset + s] = False
            product = scheme.decoder_matrix(mask) @ scheme.encoder_matrix()
            errors.append(np.linalg.norm(product - np.eye(scheme.num_inputs)))
        assert errors[first] == pytest.approx(max(errors), rel=1e-9)


@pytest.mark.parametrize("option", STRAGGLERS)
def test_straggler_options_compose_and_instantiate(compose_config, option):
    cfg = compose_config("eval", [f"straggler={option}", *SMALL])
    spec = read_yaml("straggler", f"{option}.yaml")
    plan = check_config(cfg)
    # The factory is the YAML's class with the YAML's settings; S comes from the S list.
    model = plan.straggler_factory(num_stragglers=3)
    assert type(model) is CLASSES[spec["_target_"]]
    assert model.num_stragglers == 3
    for key, value in spec.items():
        if not key.startswith("_"):
            assert getattr(model, key) == value, key
    again = build(cfg.straggler)(num_stragglers=3)
    assert repr(again) == repr(model)
    nercc = next(v.scheme for v in plan.variants if v.name == "nercc")
    for s in (0, 3, 11):  # S = N - 1 is served
        check_patterns(plan.straggler_factory(num_stragglers=s), option, s, nercc)
    too_many = [f"straggler={option}", *SMALL[:2], "stragglers=[12]"]
    with pytest.raises(ValueError, match=r"- 1 = 11\b"):  # S = N: nobody would answer
        check_config(compose_config("eval", too_many))


def test_scheme_all_builds_the_three_schemes_at_equal_cost(compose_config):
    k, n = 4, 12  # N a multiple of K: r = N / K replicas
    cfg = compose_config("eval", ["scheme=all", *SMALL])
    plan = check_config(cfg)
    by_name = {v.name: v for v in plan.variants}
    assert sorted(by_name) == ["bacc", "nercc", "replication"]
    assert {v.label for v in plan.variants} == {"bacc", "nercc", "replication"}
    nercc, bacc, rep = (by_name[name].scheme for name in ("nercc", "bacc", "replication"))
    assert type(nercc) is NeRCC and type(bacc) is BACC and type(rep) is Replication
    assert rep.replicas == n // k == 3
    for scheme in (nercc, bacc, rep):
        assert (scheme.num_inputs, scheme.num_workers) == (k, n)
        assert scheme.encoder_matrix().shape == (n, k)
    spec = read_yaml("scheme", "nercc.yaml")["nercc"]
    assert nercc.points == spec["points"] == bacc.points == "chebyshev"
    assert nercc.params() == {"lam_enc": 0.0, "lam_dec": 0.0}  # no table here: the defaults
    assert by_name["nercc"].source == "default" and by_name["bacc"].source == "config"
    # Replication as built: worker j computes input j % K; decoding with every worker answers
    # averages the replicas; with only replica 2 of input 0 it is that replica's output.
    np.testing.assert_array_equal(rep.encoder_matrix(), np.tile(np.eye(k), (3, 1)))
    outputs = np.arange(n * 2, dtype=float).reshape(n, 2)
    mask = np.ones(n, dtype=bool)
    mask[[0, 4]] = False
    np.testing.assert_allclose(rep.decode(outputs, mask)[0], outputs[8])
    np.testing.assert_allclose(
        rep.decode(outputs, mask)[1], (outputs[1] + outputs[5] + outputs[9]) / 3
    )
    # and the straggler models were checked against every scheme, S = N - 1 included
    assert [m.num_stragglers for m in map(plan.straggler_factory, [0, 3, 11])] == [0, 3, 11]


def paper_spec(name):
    """The experiment file: coding, S list and the data and model it overrides."""
    spec = read_yaml("experiment", "paper", f"{name}.yaml")
    overrides = {}
    for entry in spec["defaults"]:
        ((key, value),) = entry.items()
        overrides[key.replace("override ", "").strip("/")] = value
    return spec, overrides


@pytest.mark.parametrize("name", PAPER)
@pytest.mark.parametrize("option", ["fixed", "worst_case"])
def test_paper_experiments_compose_and_instantiate(compose_config, name, option):
    spec, overrides = paper_spec(name)
    cfg = compose_config("eval", [f"experiment=paper/{name}", f"straggler={option}"])
    k, n = spec["coding"]["num_inputs"], spec["coding"]["num_workers"]
    assert (cfg.coding.num_inputs, cfg.coding.num_workers) == (k, n)
    assert list(cfg.stragglers) == spec["stragglers"]
    assert cfg.model_name == overrides["model"] == name
    assert cfg.data.name == overrides["data"]
    plan = check_config(cfg)  # builds every scheme and the straggler model of every S
    assert {v.name for v in plan.variants} == {"nercc", "bacc"}
    for variant in plan.variants:
        assert (variant.scheme.num_inputs, variant.scheme.num_workers) == (k, n)
        assert variant.stragglers is None  # no table: every S
    assert max(spec["stragglers"]) <= n - 1
    nercc = next(v.scheme for v in plan.variants if v.name == "nercc")
    for s in spec["stragglers"]:
        check_patterns(plan.straggler_factory(num_stragglers=s), option, s, nercc, count=20)


@pytest.mark.parametrize("name", PAPER)
def test_paper_experiments_with_scheme_all_and_the_other_straggler_options(compose_config, name):
    spec, _ = paper_spec(name)
    k, n = spec["coding"]["num_inputs"], spec["coding"]["num_workers"]
    # replication at equal cost needs N a multiple of K (paper/vit has K = 8, N = 20: use 24)
    n = n if n % k == 0 else k * (n // k + 1)
    for option in ("bernoulli", "latency"):
        overrides = [f"experiment=paper/{name}", "scheme=all", f"straggler={option}"]
        cfg = compose_config("eval", [*overrides, f"coding.num_workers={n}"])
        plan = check_config(cfg)
        by_name = {v.name: v.scheme for v in plan.variants}
        assert sorted(by_name) == ["bacc", "nercc", "replication"]
        assert by_name["replication"].replicas == n // k
        for scheme in by_name.values():
            assert (scheme.num_inputs, scheme.num_workers) == (k, n)
        for s in spec["stragglers"]:
            model = plan.straggler_factory(num_stragglers=s)
            assert type(model) is CLASSES[read_yaml("straggler", f"{option}.yaml")["_target_"]]
            check_patterns(model, option, s, by_name["nercc"], count=50)
