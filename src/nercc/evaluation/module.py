"""The coded-inference experiment as a LightningModule (``trainer.test`` runs it).

For each test batch, split into groups of K inputs (a remainder group is padded with inputs of the
same batch, and only its real inputs are counted):

1. the classifier runs once on the original inputs: the reference logits;
2. for each distinct encoder among the schemes, the groups are encoded and the classifier runs once
   on all coded inputs (in chunks of ``chunk_size``);
3. for every S in the list, T patterns per group are drawn (the same draws for every scheme with the
   same N, unless the straggler model depends on the scheme), and every distinct decoder decodes
   them once, for the outputs of all the encoders whose variants share it side by side (a grid of
   lam_enc x lam_dec costs one decode per lam_dec).

Every pattern is decoded with :meth:`~nercc.coding.CodingScheme.decode_each_with_params`, and each
row reports the parameters its patterns were actually decoded with. For each parameter a scheme
reports (NeRCC: ``lam_enc``, ``lam_dec``, ``df_enc``, ``df_dec``), the column of its name holds the
lower median over the row's (group, pattern) draws (one of the values used); for the decoder's
parameters that change from pattern to pattern (a lambda chosen by GCV or from df_dec; the
decoder's df, a property of each pattern's answering workers; as the scheme declares, see
:meth:`~nercc.evaluation.variants.SchemeVariant.varies`) ``<name>_min`` and ``<name>_max`` follow
it. Every row of a run has the same keys, None where its scheme has no such parameter or no such
spread. All are exact under DDP (:class:`~nercc.evaluation.metrics.ParamStats`).

Each result row holds S as asked (``num_stragglers``) and as realised over the row's patterns
(``stragglers_mean``, ``stragglers_max``: workers that did not answer); the two differ for straggler
models that draw a random count (Bernoulli, a latency deadline). Right after ``mse`` and after
``rel_acc`` come their standard errors and 95 % intervals over the (group, pattern) draws
(``mse_se``, ``mse_lo``, ``mse_hi``, ``rel_acc_se``, ``rel_acc_lo``, ``rel_acc_hi``; defined in
:class:`~nercc.evaluation.metrics.CodedMetrics`): a draw is one observation, with its mean over
its group's real inputs, so a padded remainder group weighs by its real inputs only.

With an :class:`~nercc.evaluation.cache.OutputCache`, the classifier's outputs of steps 1 and 2 are
kept on disk and found again by a later evaluation of the same inputs, classifier and encoder (the
key and the record of an entry: :meth:`CodedInferenceModule.cache_description`).

A metric is never computed from outputs that are not finite: a classifier whose outputs on the
original inputs, or whose decoded outputs, hold NaN or infinities stops the evaluation with
:class:`NonFiniteOutputsError`, one line naming the classifier (its checkpoint).

Where fewer workers answer than there are inputs (S > N - K), NeRCC and BACC still decode, from an
underdetermined fit: the module silences their :class:`~nercc.coding.FewAnswersWarning` and reports
in each row ``few_answers``, the fraction of the row's (group, pattern) draws decoded from fewer
than K answers (exact under DDP, see :class:`~nercc.evaluation.metrics.CodedMetrics`).

A scheme may run another model than the classifier on some workers (its ``parity_workers``:
ParM's parity worker runs the parity model of its ``parity_model`` checkpoint): those workers'
outputs come from that model, run on their coded inputs (``parity_models``; not cached), and
variants with the same encoder but another such model do not share a forward pass.

With ``reconstruction`` (``eval.reconstruction``), each row also holds the metrics of the
*reconstructed* inputs only, those no answering worker computed alone (:func:`direct_workers`):
the straggler's input of ParM, Uncoded and Replication, every input of NeRCC and BACC.
``recon_share`` is their share of the row's (input, pattern) pairs, ``recon_agreement`` the
agreement of their estimates with the classifier on the original input (ParM's "reconstruction
accuracy", its degraded mode) and ``recon_acc`` their accuracy against the labels, each with its
``_se``, ``_lo``, ``_hi`` (None where no input was reconstructed).

Patterns are drawn from a generator seeded by (seed, S, N, index of the batch's first input), so
that one process or several evaluating the same batches draw the same patterns.

Byzantine workers: for every S and every A of ``adversaries``, A of each pattern's answering
workers answer adversarially (:class:`nercc.adversaries.Adversary`: how they answer, and where they
sit), from a generator seeded by (seed, S, N, first input, A); every scheme with the same N meets
the same attack unless the adversary aims at each scheme's decoder (``depends_on_scheme``: then
every scheme decodes alone). The classifier's outputs are computed once for all S and A; A = 0 is
the honest evaluation, row for row. Each row holds ``num_adversaries``, ``adversary`` and
``adversary_placement``, and for a scheme that screens its answers (``screens``) how well it found
the adversaries: ``detection_precision``, ``detection_recall`` and ``flagged_mean``
(:class:`~nercc.evaluation.metrics.DetectionStats`; None for the others). A variant tuned per
(S, A), from a table with per-A entries, runs only in its own cells
(:meth:`~nercc.evaluation.variants.SchemeVariant.runs_in`).
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn

from nercc.coding import FewAnswersWarning
from nercc.evaluation.cache import OutputCache, fingerprint
from nercc.evaluation.metrics import CodedMetrics, DetectionStats, ParamStats
from nercc.evaluation.variants import SPREAD_SUFFIXES, SchemeVariant
from nercc.stragglers import StragglerModel, several_s_refusal

if TYPE_CHECKING:
    from nercc.adversaries import Adversary

__all__ = [
    "CodedInferenceModule",
    "NonFiniteOutputsError",
    "direct_workers",
    "parity_workers",
    "straggler_models",
]


def parity_workers(scheme: Any) -> list[int]:
    """The workers on which ``scheme`` runs another model than the classifier (its
    ``parity_workers``: ParM's parity worker), none for most schemes."""
    return [int(n) for n in scheme.parity_workers]


def direct_workers(scheme: Any, parity: tuple[list[int], int] | None = None) -> np.ndarray:
    """(N, K) int: 1 where worker n computes input k alone with the classifier (its encoder row
    is the unit vector of k, to 1e-9, and it is not a parity worker), else 0.

    An input is *reconstructed* in a pattern when none of its direct workers answered: every
    input of NeRCC and BACC (no worker computes one input alone), the straggler's input of
    ParM, Uncoded and Replication (where it is lost: counted wrong).
    """
    encoder = np.asarray(scheme.encoder_matrix(), dtype=np.float64)
    unit = (np.abs(encoder - 1.0) <= 1e-9) & (
        np.abs(encoder).sum(axis=1, keepdims=True) - 1.0 <= 1e-9
    )
    if parity is not None:
        unit[parity[0]] = False
    return unit.astype(np.int64)


class NonFiniteOutputsError(ValueError):
    """The classifier's outputs, or their decoded estimates, hold NaN or infinities: no metric
    is computed from them. The message is one line naming the classifier (its checkpoint)."""


def _decode(
    scheme: Any, outputs: Any, available: np.ndarray
) -> tuple[Any, dict[str, Any], np.ndarray]:
    """``scheme.decode_each_flagged`` without its FewAnswersWarning: the rows count the
    patterns with fewer than K answers themselves (``few_answers``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FewAnswersWarning)
        return scheme.decode_each_flagged(outputs, available)


def _full_precision(device: torch.device) -> Any:
    """A context in which autocast is off on ``device``: the coding's products run in their
    operands' dtype (float32 or float64), not in a mixed-precision run's 16 bits."""
    return torch.autocast(device.type, enabled=False)


def _kinds(values: torch.Tensor) -> str:
    """Which non-finite values ``values`` holds: ``NaN``, ``inf`` or ``NaN, inf``."""
    kinds = [
        name for name, found in (("NaN", values.isnan()), ("inf", values.isinf())) if found.any()
    ]
    return ", ".join(kinds)


def stable_seed(*parts: int) -> int:
    """A seed in [0, 2**63) from integers (the run's seed, S, N, the first input): the same on
    every process, platform and Python run (a hash of their int64 bytes, not ``hash()``)."""
    digest = hashlib.sha256(np.asarray(parts, dtype=np.int64).tobytes()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def straggler_models(
    factory: Callable[..., StragglerModel],
    stragglers: Sequence[int],
    variants: Sequence[SchemeVariant],
) -> dict[int, StragglerModel]:
    """Build the straggler model of every S and check it against every scheme that runs at S.

    Raises ``ValueError`` naming S and the scheme when a model cannot serve a scheme's workers,
    and when a model that ignores S (``uses_num_stragglers`` False: a Bernoulli ``p``, a latency
    ``deadline``) is asked for several S, whose rows would be one experiment under several labels.
    """
    models = {}
    for s in stragglers:
        model = factory(num_stragglers=int(s))
        refusal = None if model.uses_num_stragglers else several_s_refusal(repr(model), stragglers)
        if refusal is not None:
            raise ValueError(f"stragglers: {refusal}")
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
    cache : OutputCache, optional
        Where to keep and find the classifier's outputs (on the original and the coded inputs),
        so that evaluations differing only in decoders, S or patterns skip the classifier.
    adversaries : list of int
        The A values: at each S and A, A of the answering workers of every pattern answer
        adversarially (``adversary``); ``[0]`` by default (every answer honest).
    adversary : Adversary, optional
        How the adversarial workers answer and where they sit
        (:class:`nercc.adversaries.Adversary`); required when some A is above 0.
    parity_models : mapping of str to nn.Module, optional
        The models that run on the workers a scheme names in ``parity_workers`` (ParM's parity
        worker), by the scheme's ``parity_model`` (its checkpoint path): raw coded images to
        logits, like the classifier. Required for every scheme with parity workers.
    reconstruction : bool
        Add the metrics of the reconstructed inputs to every row (``recon_share``,
        ``recon_agreement``, ``recon_acc`` and their intervals; see :func:`direct_workers` and
        :class:`~nercc.evaluation.metrics.CodedMetrics`); off by default (``eval.reconstruction``).
    arranger : nercc.coding.order.Arranger, optional
        Which inputs of a batch share a group and where each sits on the curve
        (``coding.order``, ``coding.grouping``), from the images' pixels; the same for every
        scheme, every metric counted per input whatever its slot. None: groups of consecutive
        inputs as they came.
    embedding : nn.Module, optional
        What the arranger reads of each image: this model's outputs (a cheap proxy classifier's
        logits, ``coding.order=proxy``); None: the flattened pixels.
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
        cache: OutputCache | None = None,
        adversaries: Sequence[int] = (0,),
        adversary: Adversary | None = None,
        parity_models: Mapping[str, nn.Module] | None = None,
        reconstruction: bool = False,
        arranger: Any = None,
        embedding: nn.Module | None = None,
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
        self.adversaries = [int(a) for a in adversaries]
        if not self.adversaries or min(self.adversaries) < 0:
            raise ValueError(f"adversaries must list A values >= 0, got {list(adversaries)}")
        if adversary is None and max(self.adversaries) > 0:
            raise ValueError(
                f"adversaries={self.adversaries} needs an adversary (how adversarial workers "
                f"answer), got None"
            )
        self.adversary = adversary
        self.num_patterns = int(num_patterns)
        self.chunk_size = int(chunk_size)
        self.seed = int(seed)
        self.cache = cache
        self.arranger = None if arranger is None or arranger.identity else arranger
        self.embedding = None if embedding is None else embedding.eval().requires_grad_(False)
        if self.arranger is not None and self.arranger.num_inputs != self.num_inputs:
            raise ValueError(
                f"arranger must group K={self.num_inputs} inputs, got "
                f"num_inputs={self.arranger.num_inputs}"
            )
        self._classifier_digest: str | None = None
        # Variants that share an encoder share the coded forward pass; each distinct encoder
        # matrix is a buffer, so it follows the module to its device.
        groups: dict[tuple[bytes, Any], list[int]] = {}
        for i, variant in enumerate(self.variants):
            key = hashlib.sha256(variant.scheme.encoder_matrix().tobytes()).digest()
            # the same encoder with another model on some workers gives other outputs
            parity = (
                tuple(parity_workers(variant.scheme)),
                variant.scheme.parity_model,
            )
            groups.setdefault((key, parity), []).append(i)
        self.encoder_groups = list(groups.values())
        # Workers that run another model than the classifier (a scheme's ``parity_workers``)
        self.parity_models = nn.ModuleList()
        self.parity_of = self._parity_workers(parity_models or {})
        self.reconstruction = bool(reconstruction)
        self.direct = [
            direct_workers(v.scheme, self.parity_of.get(i)) for i, v in enumerate(self.variants)
        ]
        self.encoder_of = {i: j for j, members in enumerate(self.encoder_groups) for i in members}
        # Variants that share a decoder decode the outputs of all their encoders in one pass.
        decoders: dict[Any, list[int]] = {}
        for i, variant in enumerate(self.variants):
            decoders.setdefault(variant.scheme.decoder_key(), []).append(i)
        self.decoder_groups = list(decoders.values())
        # An encoder that mixes inputs (``mixes_inputs``) codes the arranged groups; one that
        # sends each worker one input (uncoded, replication) the groups as they came, so that
        # ordering never changes its results.
        self.encoder_arranged = []
        #: The encoders with a variant evaluated in some (S, A) cell.
        self.running_encoders = [
            j for j, m in enumerate(self.encoder_groups) if any(self._runs(i) for i in m)
        ]
        for j, members in enumerate(self.encoder_groups):
            matrix = torch.tensor(
                self.variants[members[0]].scheme.encoder_matrix(), dtype=torch.float32
            )
            self.register_buffer(f"encoder_{j}", matrix, persistent=False)
            mixes = self.variants[members[0]].scheme.mixes_inputs
            self.encoder_arranged.append(self.arranger is not None and mixes)
        # metrics[i][c]: variant i in cell c = (S, A) (see _cell; unused where it does not run)
        cells = len(self.stragglers) * len(self.adversaries)
        self.metrics = nn.ModuleList(
            nn.ModuleList(CodedMetrics() for _ in range(cells)) for _ in self.variants
        )
        self.detection = nn.ModuleList(
            nn.ModuleList(DetectionStats() for _ in range(cells)) for _ in self.variants
        )
        # The parameters each variant reports when it decodes (as its scheme declares), and
        # their histograms per S. Variants decoded side by side share the decoder's per-pattern
        # values; the parameters their encoders fix may differ, and are each variant's own.
        self.reported = [v.scheme.reported for v in self.variants]
        self.encoder_params = [v.scheme.encoder_params() for v in self.variants]
        self.param_stats = nn.ModuleList(
            nn.ModuleList(ParamStats(list(self.reported[i])) for _ in range(cells))
            for i in range(len(self.variants))
        )
        self.results: list[dict[str, Any]] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The classifier's outputs on ``images``, in chunks; at least float32 (a classifier
        under mixed precision returns 16-bit outputs: the coding works on them in float32)."""
        outputs = torch.cat([self.classifier(chunk) for chunk in images.split(self.chunk_size)])
        if outputs.is_floating_point() and torch.finfo(outputs.dtype).bits < 32:
            return outputs.float()
        return outputs

    def classifier_name(self) -> str:
        """The classifier as error messages name it: its checkpoint file when it was loaded from
        one (``info["path"]``), else its class."""
        info = getattr(self.classifier, "info", None) or {}
        return str(info.get("path") or type(self.classifier).__qualname__)

    def _retrain_hint(self) -> str:
        """What to do about a classifier with non-finite outputs."""
        info = getattr(self.classifier, "info", None) or {}
        if info.get("model") and info.get("dataset"):
            from nercc.models.checkpoints import rebuild_command

            return f"retrain it ({rebuild_command(info['model'], info['dataset'])})"
        return "retrain it"

    def cache_description(
        self, inputs: torch.Tensor, images: str, encoder: str | None = None
    ) -> dict[str, Any]:
        """Everything the classifier's outputs on ``inputs`` depend on, in readable form: the
        key of their cache entry is its :func:`~nercc.evaluation.cache.fingerprint`, and the
        entry's record keeps it.

        Parameters
        ----------
        inputs : torch.Tensor
            What the classifier runs on (only its dtype and device are read).
        images : str
            The fingerprint of the batch's images the inputs are made of.
        encoder : str, optional
            The fingerprint of the encoder matrix of coded inputs (None for the originals).

        Returns
        -------
        dict
            ``classifier`` (the fingerprint of its class and tensors) and ``classifier_class``,
            ``inputs`` (``originals`` or ``coded``), ``images``, ``encoder``, ``chunk_size``
            (a forward on another number of inputs may round differently), ``dtype``,
            ``device`` (the device type: kernels differ), ``autocast`` (the precision of a
            mixed-precision run, or None) and ``float32_precision`` (on CUDA, the matmul
            precision and cuDNN's TF32 switch; None elsewhere).
        """
        if self._classifier_digest is None:
            self._classifier_digest = fingerprint(self.classifier)
        device = inputs.device.type
        try:  # a mixed-precision run computes other outputs from the same float32 inputs
            mixed = torch.is_autocast_enabled(device)
        except RuntimeError:  # a device type without autocast
            mixed = False
        autocast = str(torch.get_autocast_dtype(device)) if mixed else None
        # TF32 on CUDA computes float32 products at lower precision: other outputs, other key
        precision = (
            f"matmul={torch.get_float32_matmul_precision()},"
            f"cudnn_tf32={torch.backends.cudnn.allow_tf32}"
            if device == "cuda"
            else None
        )
        kind = type(self.classifier)
        return {
            "classifier": self._classifier_digest,
            "classifier_class": f"{kind.__module__}.{kind.__qualname__}",
            "inputs": "originals" if encoder is None else "coded",
            "images": images,
            "encoder": encoder,
            "chunk_size": self.chunk_size,
            "dtype": str(inputs.dtype),
            "device": device,
            "autocast": autocast,
            "float32_precision": precision,
        }

    def _classify(
        self, inputs: torch.Tensor, images: str | None, encoder: str | None = None
    ) -> torch.Tensor:
        """The classifier's outputs on ``inputs``, through the cache when there is one.

        ``images`` and ``encoder`` are the fingerprints of what the inputs are made of (the
        batch's images, and the encoder matrix for coded inputs); with the classifier and the
        rest of :meth:`cache_description`, they key the cache entry.
        """
        if self.cache is None or images is None:
            return self(inputs)
        description = self.cache_description(inputs, images, encoder)
        return self.cache.get_or_compute(
            fingerprint(description),
            lambda: self(inputs),
            device=inputs.device,
            description=description,
        )

    def _arrange(self, images: torch.Tensor, arranger: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """``take`` (G*K,) the input in each slot of the batch's groups and ``real`` (G*K,)
        whether the slot holds it for the first time: ``arranger``'s
        (:class:`~nercc.coding.order.Arranger`) of the flattened pixels, or, for None,
        consecutive inputs, the remainder group padded with the batch's first inputs."""
        count, k = images.shape[0], self.num_inputs
        slots = torch.arange(-(-count // k) * k, device=images.device)
        if arranger is None:
            return slots % count, slots < count
        features = images.detach()
        if self.embedding is not None:
            features = self.embedding(features)
        take, real = arranger(features.flatten(1).to("cpu", torch.float64).numpy())
        return (
            torch.as_tensor(take, device=images.device),
            torch.as_tensor(real, device=images.device),
        )

    def _arrangement_of(self, i: int) -> dict[str, str]:
        """How variant i's inputs were ordered and grouped (as they came for an encoder that
        does not mix inputs)."""
        if not self.encoder_arranged[self.encoder_of[i]]:
            return {"order": "none", "grouping": "arrival"}
        assert self.arranger is not None
        return {"order": self.arranger.order, "grouping": self.arranger.grouping}

    def _check_reference(self, reference: torch.Tensor, first: int) -> None:
        """Refuse a classifier whose outputs on the original inputs are not finite."""
        finite = torch.isfinite(reference).all(dim=-1)
        if bool(finite.all()):
            return
        bad, count = int((~finite).sum()), finite.numel()
        raise NonFiniteOutputsError(
            f"model: the classifier {self.classifier_name()} returned non-finite outputs "
            f"({_kinds(reference)}) on {bad} of the {count} images of the batch from input "
            f"{first}: no metric is computed from them; {self._retrain_hint()}"
        )

    def _check_decoded(
        self, i: int, s: int, estimates: torch.Tensor, outputs: torch.Tensor
    ) -> None:
        """Refuse variant i's decoded estimates (G*T, K, C) at S = s when they are not finite;
        ``outputs`` (G*T, N, C) are the classifier's outputs on its coded inputs."""
        finite = torch.isfinite(estimates).flatten(1).all(dim=1)
        if bool(finite.all()):
            return
        t = self.num_patterns
        coded = ~torch.isfinite(outputs[::t]).all(dim=-1)  # each coded input once
        where = (
            f"{int(coded.sum())} of its {coded.numel()} outputs on coded inputs are not finite"
            if bool(coded.any())
            else "its outputs on the coded inputs are finite: the decoder overflowed"
        )
        raise NonFiniteOutputsError(
            f"model: the classifier {self.classifier_name()} gave finite outputs on the original "
            f"images, but {self.variants[i].label} at S={s} decoded non-finite estimates "
            f"({_kinds(estimates)}) in {int((~finite).sum())} of {finite.numel()} (group, "
            f"pattern) draws ({where}): no metric is computed from them; {self._retrain_hint()}"
        )

    def test_step(self, batch: Any, batch_idx: int) -> None:
        images, labels, index = batch
        k, t = self.num_inputs, self.num_patterns
        count = images.shape[0]
        groups = -(-count // k)
        first = int(index[0])
        digest = fingerprint(images) if self.cache is not None else None
        outputs_of_originals = self._classify(images, digest)
        self._check_reference(outputs_of_originals, first)
        # slot -> input (a padding slot repeats an input), as they came and as arranged (for
        # the encoders that mix inputs: a curve through them), each only where some running
        # encoder needs it
        running = self.running_encoders
        arrangements = {
            arranged: self._arrange(images, self.arranger if arranged else None)
            for arranged in sorted({self.encoder_arranged[j] for j in running})
        }
        slots = {}  # per arrangement: the groups' images and what each slot is counted against
        for arranged, (take, real) in arrangements.items():
            slots[arranged] = (
                images[take].view(groups, k, *images.shape[1:]),
                (
                    outputs_of_originals[take].view(groups, 1, k, -1),
                    labels[take].view(groups, 1, k),
                    real.view(groups, 1, k).expand(groups, t, k),
                ),
            )

        # The classifier once per distinct encoder, on the coded inputs of every group.
        outputs = {}
        for j in running:
            members = self.encoder_groups[j]
            n = self.variants[members[0]].scheme.num_workers
            matrix = getattr(self, f"encoder_{j}").to(images.dtype)
            arranged = self.encoder_arranged[j]
            grouped = slots[arranged][0]
            with _full_precision(images.device):
                coded = matrix @ grouped.reshape(groups, k, -1)
            coded = coded.view(groups * n, *images.shape[1:])
            # pattern g * T + j meets group g
            encoder = fingerprint(matrix) if digest is not None else None
            if encoder is not None and arranged:  # the coded inputs differ
                encoder = fingerprint(encoder, self.arranger.describe(), arrangements[True][0])
            answers = self._classify(coded, digest, encoder).view(groups, n, -1)
            answers = self._run_parity(
                members[0], coded.view(groups, n, *images.shape[1:]), answers
            )
            outputs[j] = answers.repeat_interleave(t, 0)

        counted = {  # the variants of the running encoders
            i: slots[self.encoder_arranged[j]][1] for j in running for i in self.encoder_groups[j]
        }
        # Attacks, decoding and counting in full precision, whatever autocast the classifier
        # ran under.
        with _full_precision(images.device):
            stacks: dict[tuple[int, ...], torch.Tensor] = {}  # outputs of encoders side by side
            for s_index, s in enumerate(self.stragglers):
                model = self.models[s]
                shared: dict[int, np.ndarray] = {}  # patterns per N, the same for every scheme
                alone = model.depends_on_scheme or self._attack_depends_on_scheme()
                for members in self.decoder_groups:
                    running = [i for i in members if self.variants[i].runs_at(s)]
                    if not running:
                        continue
                    if alone:  # patterns or attacks differ by scheme: decode one by one
                        for i in running:
                            scheme = self.variants[i].scheme
                            available = self._draw(model, scheme, s, groups * t, first, shared)
                            own = outputs[self.encoder_of[i]]
                            for a_index, a in enumerate(self.adversaries):
                                if not self.variants[i].runs_in(s, a):
                                    continue
                                attack = self._attack(own, available, a, scheme, s, first)
                                estimates, params, flagged = _decode(scheme, attack[0], available)
                                cell = self._cell(s_index, a_index)
                                self._check_decoded(i, s, estimates, attack[0])
                                self._count(i, cell, estimates, available, counted[i])
                                self.param_stats[i][cell].update(params)
                                self.detection[i][cell].update(flagged, attack[1])
                        continue
                    # One decoder for all: decode the outputs of their encoders side by side.
                    available = self._draw(
                        model, self.variants[running[0]].scheme, s, groups * t, first, shared
                    )
                    for a_index, a in enumerate(self.adversaries):
                        # a variant tuned per (S, A) runs only in its own cells
                        in_cell = [i for i in running if self.variants[i].runs_in(s, a)]
                        if not in_cell:
                            continue
                        decoding = in_cell[0]
                        scheme = self.variants[decoding].scheme
                        encoders = tuple(dict.fromkeys(self.encoder_of[i] for i in in_cell))
                        if encoders not in stacks:
                            stacks[encoders] = torch.stack([outputs[j] for j in encoders], dim=2)
                        # (G*T, N, E, C): the same attack on every encoder's outputs
                        attacked, adversarial = self._attack(
                            stacks[encoders], available, a, scheme, s, first
                        )
                        # (G*T, K, E, C) and the decoder's parameters per pattern
                        estimates, params, flagged = _decode(scheme, attacked, available)
                        cell = self._cell(s_index, a_index)
                        for i in in_cell:
                            position = encoders.index(self.encoder_of[i])
                            own = estimates[:, :, position]
                            self._check_decoded(i, s, own, attacked[:, :, position])
                            self._count(i, cell, own, available, counted[i])
                            self.param_stats[i][cell].update(self._own(i, decoding, params))
                            self.detection[i][cell].update(flagged, adversarial)

    def _parity_workers(self, models: Mapping[str, nn.Module]) -> dict[int, tuple[list[int], int]]:
        """Per variant whose scheme runs another model on some workers: those workers and the
        index of that model in :attr:`parity_models` (each distinct model once, frozen)."""
        found: dict[int, tuple[list[int], int]] = {}
        index: dict[str, int] = {}
        for i, variant in enumerate(self.variants):
            workers = parity_workers(variant.scheme)
            if not workers:
                continue
            name = variant.scheme.parity_model
            if name not in models:
                raise ValueError(
                    f"parity_models must hold the model that scheme {variant.name} runs on its "
                    f"workers {workers} ({name!r}), got {sorted(map(str, models))}"
                )
            if name not in index:
                index[name] = len(self.parity_models)
                self.parity_models.append(models[name].eval().requires_grad_(False))
            found[i] = (workers, index[name])
        return found

    def _run_parity(self, i: int, coded: torch.Tensor, answers: torch.Tensor) -> torch.Tensor:
        """The answers (G, N, C) of variant i's workers with those of its parity workers from
        their model, run on their coded inputs (G, N, ...); not cached."""
        if i not in self.parity_of:
            return answers
        workers, index = self.parity_of[i]
        model = self.parity_models[index]
        inputs = coded[:, workers].flatten(0, 1)
        parity = torch.cat([model(chunk) for chunk in inputs.split(self.chunk_size)])
        answers = answers.clone()
        answers[:, workers] = parity.view(coded.shape[0], len(workers), -1).to(answers.dtype)
        return answers

    def _runs(self, i: int) -> bool:
        """Whether variant i is evaluated in some (S, A) cell of the run."""
        variant = self.variants[i]
        return any(variant.runs_in(s, a) for s in self.stragglers for a in self.adversaries)

    def _cell(self, s_index: int, a_index: int) -> int:
        """The index of the (S, A) cell in the per-variant metric lists."""
        return s_index * len(self.adversaries) + a_index

    def _attack_depends_on_scheme(self) -> bool:
        """Whether the adversary aims at each scheme's decoder (then schemes decode alone)."""
        return (
            self.adversary is not None
            and max(self.adversaries) > 0
            and bool(self.adversary.depends_on_scheme)
        )

    def _attack(
        self, outputs: torch.Tensor, available: np.ndarray, a: int, scheme: Any, s: int, first: int
    ) -> tuple[torch.Tensor, np.ndarray]:
        """The workers' outputs (P, N, ...) with A = ``a`` of the answering workers of every
        pattern adversarial, and where they are (P, N); drawn from the seed of (seed, S, N,
        first input, A), so that every scheme with the same N meets the same attack (unless the
        adversary aims at each scheme's decoder)."""
        if a == 0:
            return outputs, np.zeros(available.shape, dtype=bool)
        n = scheme.num_workers
        generator = torch.Generator().manual_seed(stable_seed(self.seed, s, n, first, a))
        attack = self.adversary.attack(outputs, available, a, generator, scheme)
        return attack.outputs, attack.adversarial

    def _own(self, i: int, decoding: int, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Variant i's parameters per pattern, from those of variant ``decoding``, which decoded
        for both (the same decoder): where their encoders fix a parameter differently, i's own
        fixed value."""
        if i == decoding:
            return params
        mine, theirs = self.encoder_params[i], self.encoder_params[decoding]
        return {
            name: (
                np.full(len(values), mine[name])
                if name in mine and mine[name] != theirs.get(name)
                else values
            )
            for name, values in params.items()
        }

    def _draw(
        self,
        model: StragglerModel,
        scheme: Any,
        s: int,
        count: int,
        first: int,
        shared: dict[int, np.ndarray],
    ) -> np.ndarray:
        """``count`` patterns for S = ``s`` from the seed of (seed, S, N, first input); drawn
        once per N and shared unless the straggler model depends on the scheme."""
        n = scheme.num_workers
        if n not in shared or model.depends_on_scheme:
            generator = torch.Generator().manual_seed(stable_seed(self.seed, s, n, first))
            shared[n] = model.sample(count, n, generator, scheme).available.numpy()
        return shared[n]

    def _count(
        self,
        i: int,
        cell: int,
        estimates: torch.Tensor,
        available: np.ndarray,
        counted: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    ) -> None:
        """Add variant i's estimates (G*T, K, C) in (S, A) cell ``cell`` to its metrics."""
        reference, labels, valid = counted
        groups, t, k = valid.shape
        scheme = self.variants[i].scheme
        lost = torch.as_tensor(scheme.lost(available), device=estimates.device)
        # inputs no answering worker computed alone: their estimates are reconstructions
        reconstructed = None
        if self.reconstruction:
            reconstructed = torch.as_tensor(
                available @ self.direct[i] == 0, device=estimates.device
            )
            reconstructed = reconstructed.view(groups, t, k)
        # The realised number of non-answering workers of each pattern (random for some models).
        stragglers = torch.as_tensor(available.shape[1] - available.sum(axis=1))
        self.metrics[i][cell].update(
            estimates.reshape(groups, t, k, -1),
            reference,
            labels,
            valid,
            lost.view(groups, t, k),
            groups * t,
            stragglers,
            few_answers=torch.as_tensor(scheme.underdetermined(available)),
            reconstructed=reconstructed,
        )

    def _param_columns(self) -> list[tuple[str, str, str]]:
        """(column, parameter, statistic) of every parameter column of this run's rows: each
        reported parameter's median under its name, followed by its ``_min`` and ``_max`` where
        some variant reports a spread (:meth:`SchemeVariant.varies`)."""
        names = list(dict.fromkeys(name for reported in self.reported for name in reported))
        columns = []
        for name in names:
            columns.append((name, name, "median"))
            if any(v.varies(name) for v in self.variants):
                columns += [(name + suffix, name, suffix[1:]) for suffix in SPREAD_SUFFIXES]
        return columns

    def on_test_epoch_end(self) -> None:
        # Every row has every parameter column (None where a scheme has no such parameter, or
        # no spread of it).
        columns = self._param_columns()
        attack = self._attack_columns()
        rows = []
        for i, variant in enumerate(self.variants):
            for s_index, s in enumerate(self.stragglers):
                if not variant.runs_at(s):
                    continue
                for a_index, a in enumerate(self.adversaries):
                    if not variant.runs_in(s, a):
                        continue
                    cell = self._cell(s_index, a_index)
                    rows.append(self._row(i, s, a, cell, columns, attack))
        self.results = rows

    def _attack_columns(self) -> dict[str, Any]:
        """The adversary's columns of every row: its kind and placement (those of
        :class:`~nercc.adversaries.NoAdversary` without one)."""
        from nercc.adversaries import NoAdversary

        return (self.adversary or NoAdversary()).describe()

    def _row(
        self,
        i: int,
        s: int,
        a: int,
        cell: int,
        columns: list[tuple[str, str, str]],
        attack: dict[str, Any],
    ) -> dict[str, Any]:
        """The result row of variant i at S = ``s`` and A = ``a`` (cell ``cell``)."""
        variant = self.variants[i]
        used = self.param_stats[i][cell].compute()
        params = {
            column: (
                used[name][stat]
                if name in used and (stat == "median" or variant.varies(name))
                else None
            )
            for column, name, stat in columns
        }
        values = self.metrics[i][cell].compute()
        pairs = values.pop("pairs")
        patterns = values.pop("patterns")
        # S as asked, then as realised over this row's patterns (they differ for models that
        # draw a random count; see StragglerModel.uses_num_stragglers).
        counts = {
            key: values.pop(key) for key in ("stragglers_mean", "stragglers_max", "few_answers")
        }
        # How well a screening decoder found the adversaries (None for one that does not screen).
        detection = self.detection[i][cell].compute()
        if not variant.scheme.screens:
            detection = dict.fromkeys(detection)
        return {
            "scheme": variant.name,
            "variant": variant.label,
            "num_inputs": variant.scheme.num_inputs,
            "num_workers": variant.scheme.num_workers,
            **self._arrangement_of(i),
            "num_stragglers": s,
            **counts,
            "num_adversaries": a,
            **attack,
            **params,
            "params_source": variant.source,
            **values,
            **detection,
            "num_inputs_evaluated": pairs // self.num_patterns,
            "num_patterns": patterns,
        }
