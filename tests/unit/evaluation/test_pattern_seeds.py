"""Straggler patterns of the coded evaluation are keyed by (seed, S, N, first input of the batch).

The reference here does not use the module's seed function: it records the patterns the module
draws and checks them against what the documented key implies, i.e. batches with different first
inputs draw different patterns, and a batch draws the same patterns whatever came before it
(other batches, another order, another process), so long as seed, S and N are the same.
"""

import torch
from torch import nn

from nercc.coding import BACC, NeRCC
from nercc.evaluation import CodedInferenceModule, SchemeVariant
from nercc.stragglers import FixedStragglers

K, BATCH = 4, 12  # three groups of K per batch


class Recording(FixedStragglers):
    """Fixed stragglers that log every draw: (S, N, the generator's seed, the patterns)."""

    def __init__(self, num_stragglers, log):
        super().__init__(num_stragglers)
        self._log = log

    def sample(self, num_patterns, num_workers, generator, scheme=None):
        seed = generator.initial_seed()
        drawn = super().sample(num_patterns, num_workers, generator, scheme)
        self._log.append((self.num_stragglers, num_workers, seed, drawn.available.clone()))
        return drawn


def images_of(first, count=BATCH):
    g = torch.Generator().manual_seed(1000 + first)  # content differs by batch, as in real data
    return torch.rand(count, 1, 4, 4, generator=g)


def make_module(seed=5, stragglers=(2, 5)):
    log = []
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    variants = [
        SchemeVariant("nercc", NeRCC(K, 10, 0.0, 1e-3)),
        SchemeVariant("bacc", BACC(K, 10)),
        SchemeVariant("nercc12", NeRCC(K, 12, 0.0, 1e-3)),
    ]
    module = CodedInferenceModule(
        net,
        variants,
        list(stragglers),
        lambda num_stragglers: Recording(num_stragglers, log),
        num_patterns=2,
        seed=seed,
    )
    return module, log


def run_batches(module, log, firsts, images=images_of):
    """Feed the batches starting at ``firsts`` in that order; the patterns by (S, N, first)."""
    drawn = {}
    for batch_idx, first in enumerate(firsts):
        start = len(log)
        x = images(first)
        labels = torch.zeros(len(x), dtype=torch.long)
        index = torch.arange(first, first + len(x))
        module.test_step((x, labels, index), batch_idx)
        for s, n, seed, available in log[start:]:
            assert (s, n, first) not in drawn  # one draw per N and S (shared by its schemes)
            drawn[(s, n, first)] = (seed, available)
    return drawn


def test_each_batch_draws_its_own_patterns():
    module, log = make_module()
    drawn = run_batches(module, log, [0, 12, 24])
    assert len(drawn) == 2 * 2 * 3  # S x N x batches
    for s in (2, 5):
        for n in (10, 12):
            patterns = [drawn[(s, n, first)][1] for first in (0, 12, 24)]
            seeds = {drawn[(s, n, first)][0] for first in (0, 12, 24)}
            assert len(seeds) == 3, (s, n, seeds)  # the first input is part of the key
            for a in range(3):
                assert patterns[a].shape == (3 * 2, n)
                assert bool(((~patterns[a]).sum(dim=1) == s).all())
                for b in range(a + 1, 3):
                    assert not torch.equal(patterns[a], patterns[b]), (s, n, a, b)


def test_same_batch_same_patterns_in_any_order_and_process():
    module, log = make_module()
    everything = run_batches(module, log, [0, 12, 24, 36])
    # Another process (a fresh module) that sees only some batches, in another order.
    other, other_log = make_module()
    some = run_batches(other, other_log, [36, 12])
    for key, (seed, available) in some.items():
        assert key[2] in (12, 36)
        assert everything[key][0] == seed
        assert torch.equal(everything[key][1], available), key
    # The patterns do not depend on the images either: only on where the batch starts.
    third, third_log = make_module()
    zeros = run_batches(third, third_log, [12], images=lambda first: torch.zeros(BATCH, 1, 4, 4))
    for key, (_, available) in zeros.items():
        assert torch.equal(everything[key][1], available), key


def test_the_other_parts_of_the_key_matter_too():
    module, log = make_module(seed=5)
    base = run_batches(module, log, [12])
    other_seed, other_log = make_module(seed=6)
    reseeded = run_batches(other_seed, other_log, [12])
    for key in base:
        assert base[key][0] != reseeded[key][0]
        assert not torch.equal(base[key][1], reseeded[key][1]), key
    # S and N: every (S, N) at the same batch has its own generator seed.
    seeds = [seed for seed, _ in base.values()]
    assert len(set(seeds)) == len(seeds) == 4
