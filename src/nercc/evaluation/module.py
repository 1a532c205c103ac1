"""The coded-inference experiment as a LightningModule (``trainer.test`` runs it).

For each test batch, split into groups of K inputs (a remainder group is padded with inputs of the
same batch, and only its real inputs are counted):

1. the classifier runs once on the original inputs: the reference logits;
2. for each distinct encoder among the schemes, the groups are encoded and the classifier runs once
   on all coded inputs (in chunks of ``chunk_size``);
3. for every S in the list, T patterns per group are drawn (the same draws for every scheme with the
   same N, unless the straggler model depends on the scheme), and every scheme and decoder lambda
   decodes all of them in one batched product.

Patterns are drawn from a generator seeded by (seed, S, N, index of the batch's first input), so
that one process or several evaluating the same batches draw the same patterns.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn

from nercc.evaluation.metrics import CodedMetrics
from nercc.evaluation.variants import SchemeVariant
from nercc.stragglers import StragglerModel

__all__ = ["CodedInferenceModule", "straggler_models"]


def _stable_seed(*parts: int) -> int:
    digest = hashlib.sha256(np.asarray(parts, dtype=np.int64).tobytes()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def straggler_models(
    factory: Callable[..., StragglerModel],
    stragglers: Sequence[int],
    variants: Sequence[SchemeVariant],
) -> dict[int, StragglerModel]:
    """Build the straggler model of every S and check it against every scheme that runs at S.

    Raises ``ValueError`` naming S and the scheme when a model cannot serve a scheme's workers.
    """
    models = {}
    for s in stragglers:
        model = factory(num_stragglers=int(s))
        for variant in (v for v in variants if v.runs_at(s)):
            try:
                model.check(variant.scheme.num_workers)
            except ValueError as error:
                raise ValueError(f"stragglers: S={s} for scheme {variant.name}: {error}") from None
        models[int(s)] = model
    return models


class CodedInferenceModule(pl.LightningModule):
    """Evaluates coding schemes against a frozen classifier for a list of straggler counts.

    Parameters
    ----------
    classifier : nn.Module
        Raw images (B, C, H, W) to logits (B, classes); frozen.
    variants : list of SchemeVariant
        The schemes (all with the same K).
    stragglers : list of int
        The S values; each gets ``straggler_factory(num_stragglers=S)``.
    straggler_factory : callable
        Builds the straggler model for one S.
    num_patterns : int
        T, patterns drawn per group and S.
    chunk_size : int
        Most coded inputs per classifier forward.
    seed : int
        Seed of the pattern draws.
    """

    def __init__(
        self,
        classifier: nn.Module,
        variants: Sequence[SchemeVariant],
        stragglers: Sequence[int],
        straggler_factory: Callable[..., StragglerModel],
        num_patterns: int = 1,
        chunk_size: int = 4096,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if num_patterns < 1:
            raise ValueError(f"num_patterns must be >= 1, got {num_patterns}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        if not stragglers:
            raise ValueError(f"stragglers must list at least one S, got {list(stragglers)}")
        self.classifier = classifier.eval().requires_grad_(False)
        self.variants = list(variants)
        self.num_inputs = self.variants[0].scheme.num_inputs
        self.stragglers = [int(s) for s in stragglers]
        self.models = straggler_models(straggler_factory, self.stragglers, self.variants)
        self.num_patterns = int(num_patterns)
        self.chunk_size = int(chunk_size)
        self.seed = int(seed)
        # Variants that share an encoder share the coded forward pass; each distinct encoder
        # matrix is a buffer, so it follows the module to its device.
        groups: dict[bytes, list[int]] = {}
        for i, variant in enumerate(self.variants):
            key = hashlib.sha256(variant.scheme.encoder_matrix().tobytes()).digest()
            groups.setdefault(key, []).append(i)
        self.encoder_groups = list(groups.values())
        for j, members in enumerate(self.encoder_groups):
            matrix = torch.tensor(
                self.variants[members[0]].scheme.encoder_matrix(), dtype=torch.float32
            )
            self.register_buffer(f"encoder_{j}", matrix, persistent=False)
        # metrics[i][j]: variant i at S = stragglers[j] (unused where the variant does not run)
        self.metrics = nn.ModuleList(
            nn.ModuleList(CodedMetrics() for _ in self.stragglers) for _ in self.variants
        )
        self.results: list[dict[str, Any]] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.classifier(chunk) for chunk in images.split(self.chunk_size)])

    def test_step(self, batch: Any, batch_idx: int) -> None:
        images, labels, index = batch
        k, t = self.num_inputs, self.num_patterns
        count = images.shape[0]
        groups = -(-count // k)
        take = torch.arange(groups * k, device=images.device) % count  # padding repeats inputs
        valid = (torch.arange(groups * k, device=images.device) < count).view(groups, 1, k)
        grouped = images[take].view(groups, k, *images.shape[1:])
        labels = labels[take].view(groups, 1, k)
        reference = self(images)[take].view(groups, 1, k, -1)
        first = int(index[0])

        for j, members in enumerate(self.encoder_groups):
            if not any(self.variants[i].runs_at(s) for i in members for s in self.stragglers):
                continue
            n = self.variants[members[0]].scheme.num_workers
            matrix = getattr(self, f"encoder_{j}").to(images.dtype)
            coded = matrix @ grouped.reshape(groups, k, -1)  # (G, N, C*H*W)
            outputs = self(coded.view(groups * n, *images.shape[1:]))
            outputs = outputs.view(groups, n, -1)
            repeated = outputs.repeat_interleave(t, dim=0)  # pattern g * T + j meets group g
            for s_index, s in enumerate(self.stragglers):
                shared = None
                for i in members:
                    if not self.variants[i].runs_at(s):
                        continue
                    scheme = self.variants[i].scheme
                    model = self.models[s]
                    if shared is None or model.depends_on_scheme:
                        generator = torch.Generator().manual_seed(
                            _stable_seed(self.seed, s, scheme.num_workers, first)
                        )
                        drawn = model.sample(groups * t, scheme.num_workers, generator, scheme)
                        shared = drawn.available.numpy()
                    estimates = scheme.decode_each(repeated, shared).view(groups, t, k, -1)
                    lost = torch.as_tensor(scheme.lost(shared), device=outputs.device)
                    lost = lost.view(groups, t, k)
                    self.metrics[i][s_index].update(
                        estimates, reference, labels, valid.expand(groups, t, k), lost, groups * t
                    )

    def on_test_epoch_end(self) -> None:
        rows = []
        for i, variant in enumerate(self.variants):
            for s_index, s in enumerate(self.stragglers):
                if not variant.runs_at(s):
                    continue
                values = self.metrics[i][s_index].compute()
                pairs = values.pop("pairs")
                patterns = values.pop("patterns")
                rows.append(
                    {
                        "scheme": variant.name,
                        "variant": variant.label,
                        "num_inputs": variant.scheme.num_inputs,
                        "num_workers": variant.scheme.num_workers,
                        "num_stragglers": s,
                        "lam_enc": variant.lam_enc,
                        "lam_dec": variant.lam_dec,
                        **values,
                        "num_inputs_evaluated": pairs // self.num_patterns,
                        "num_patterns": patterns,
                    }
                )
        self.results = rows
