"""The Lightning runner of a coded evaluation: variants against a classifier on one split.

:func:`run_coded` is what the evaluation, the calibration of ``auto`` lambdas and every search of
a tuning run call; they share this process's output cache of each folder (:func:`output_cache`).
Lightning, torch and the evaluation module load on the first run.
"""

from __future__ import annotations

import os
from typing import Any

from omegaconf import DictConfig

from nercc.evaluation.variants import SchemeVariant
from nercc.utils.instantiate import build

__all__ = ["build_arranger", "load_parity_models", "load_proxy", "output_cache", "run_coded"]

#: Training images the direction of an order or grouping is fitted on (the first ones).
DIRECTION_IMAGES = 10_000

#: The output cache of each folder, one per process: a cache that turned itself off (a full or
#: read-only folder) stays off, with its one warning, for every evaluation of the run (the
#: calibration of ``auto``, a tuning's searches, the jobs of a multirun in one process).
_CACHES: dict[str, Any] = {}


def output_cache(folder: str) -> Any:
    """This process's :class:`~nercc.evaluation.cache.OutputCache` of ``folder``."""
    from nercc.evaluation.cache import OutputCache

    key = os.path.abspath(folder)
    if key not in _CACHES:
        _CACHES[key] = OutputCache(folder)
    return _CACHES[key]


def load_parity_models(variants: list[SchemeVariant], classifier: Any) -> dict[str, Any]:
    """The models that schemes run on some of their workers instead of the classifier (a
    scheme's ``parity_workers``; ParM's parity worker), loaded from each scheme's
    ``parity_model`` checkpoint and checked against the classifier
    (:func:`nercc.models.checkpoints.load_parity`: a parity model trained against another base
    model is refused), by path.

    Raises
    ------
    ValueError
        A scheme with parity workers names no ``parity_model``; a checkpoint the check refuses.
    FileNotFoundError
        No checkpoint at a scheme's ``parity_model``; the message names the command that
        trains it.
    """
    models: dict[str, Any] = {}
    for variant in variants:
        scheme = variant.scheme
        workers = tuple(scheme.parity_workers)
        if not workers:
            continue
        path = scheme.parity_model
        if not path:
            raise ValueError(
                f"scheme.{variant.name}.parity_model: the scheme runs a parity model on its "
                f"workers {list(workers)}, so it needs that model's checkpoint, got {path!r}"
            )
        if path not in models:
            from nercc.models.checkpoints import load_parity

            device = next(classifier.parameters()).device
            models[path] = load_parity(path, classifier, scheme.num_inputs, device)
    return models


def build_arranger(cfg: DictConfig, data: Any, num_inputs: int, embedding: Any = None) -> Any:
    """The :class:`~nercc.coding.order.Arranger` of ``cfg.coding.order`` and
    ``cfg.coding.grouping`` (``none`` and ``arrival`` when absent) for groups of ``num_inputs``.

    Its direction (for ``pc1``, ``sorted``, ``clustered``) is the first principal direction of
    the embeddings of the first :data:`DIRECTION_IMAGES` training images: their pixels, or the
    ``embedding`` model's outputs (the proxy's logits) when one is given. Deterministic: the
    same split and model, the same direction.
    """
    from nercc.coding.order import NEEDS_DIRECTION, Arranger, principal_direction

    order = str(cfg.coding.get("order", "none"))
    grouping = str(cfg.coding.get("grouping", "arrival"))
    direction = None
    if NEEDS_DIRECTION & {order, grouping}:
        import torch

        images = data.raw_train(DIRECTION_IMAGES)
        if embedding is not None:
            with torch.inference_mode():
                device = next(embedding.parameters()).device
                images = embedding(images.to(device)).cpu()
        direction = principal_direction(images.flatten(1).double().numpy())
    return Arranger(num_inputs, order, grouping, direction)


def load_proxy(cfg: DictConfig, device: Any = "cpu") -> Any:
    """The cheap model whose outputs order the inputs when ``coding.order`` is ``proxy``: the
    published classifier ``coding.proxy`` (e.g. ``linear``) for the run's dataset, on
    ``device``; None for the other orders.

    Raises
    ------
    FileNotFoundError
        It is not trained: the message names the command that trains it.
    """
    if cfg.coding.get("order", "none") != "proxy":
        return None
    from nercc.models import load_classifier

    return load_classifier(
        str(cfg.coding.proxy), cfg.data.name, cfg.paths.checkpoint_dir, device,
        num_classes=int(cfg.data.num_classes),
        image_shape=(int(cfg.data.channels), int(cfg.data.image_size), int(cfg.data.image_size)),
    )  # fmt: skip


def run_coded(
    cfg: DictConfig,
    variants: list[SchemeVariant],
    straggler_factory: Any,
    data: Any,
    classifier: Any,
    loggers: list | None = None,
    adversaries: list[int] | None = None,
    adversary: Any = None,
) -> tuple[list[dict[str, Any]], Any]:
    """Evaluate ``variants`` on ``cfg.eval``'s split with Lightning.

    Parameters
    ----------
    cfg : DictConfig
        A checked evaluation config (``stragglers``, ``eval``, ``seed``, ``trainer``,
        ``paths.cache_dir``).
    variants : list of SchemeVariant
        The schemes to evaluate, each at its straggler counts.
    straggler_factory : callable
        Builds the straggler model of each S.
    data : LightningDataModule
        The data, set up.
    classifier : torch.nn.Module
        The classifier whose outputs are coded; a scheme's parity workers run its parity model
        instead (:func:`load_parity_models`).
    loggers : list, optional
        Lightning loggers for the trainer (none by default).
    adversaries : list of int, optional
        The A values (``[0]``, every answer honest, by default).
    adversary : nercc.adversaries.Adversary, optional
        How the A adversarial workers answer; required when some A is above 0.

    Returns
    -------
    rows : list of dict
        One result row per variant, S and A, on every process.
    trainer : pytorch_lightning.Trainer
        The trainer that ran the test loop.
    """
    from nercc.evaluation.data import CodedEvalData
    from nercc.evaluation.module import CodedInferenceModule

    proxy = load_proxy(cfg, next(classifier.parameters()).device)
    module = CodedInferenceModule(
        classifier,
        variants,
        list(cfg.stragglers),
        straggler_factory,
        num_patterns=cfg.eval.num_patterns,
        chunk_size=cfg.eval.chunk_size,
        seed=cfg.seed,
        cache=output_cache(cfg.paths.cache_dir) if cfg.eval.get("cache", True) else None,
        adversaries=adversaries or [0],
        adversary=adversary,
        parity_models=load_parity_models(variants, classifier),
        reconstruction=bool(cfg.eval.get("reconstruction", False)),
        arranger=build_arranger(cfg, data, variants[0].scheme.num_inputs, proxy),
        embedding=proxy,
    )
    eval_data = CodedEvalData(data, cfg.eval.split, cfg.eval.batch_size, cfg.eval.get("limit"))
    # CodedEvalData deals whole batches to the processes: Lightning must not re-shard them.
    trainer = build(
        cfg.trainer, logger=loggers or False, callbacks=[], use_distributed_sampler=False
    )
    trainer.test(module, datamodule=eval_data, verbose=False)
    return module.results, trainer
